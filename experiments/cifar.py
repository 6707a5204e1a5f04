"""CIFAR-10 image classification, tracked by Sacred.

    python experiments/cifar.py with lr=0.01           # train; the run is recorded in MongoDB
    python experiments/cifar.py with smoke             # a one-minute run on generated data
    python experiments/cifar.py print_config with smoke

`tracker rerun` and `tracker resume` start this file again for an earlier run, passing the new run's origin
and the checkpoint to resume from in environment variables (RUN_INFO_ENV, RESUME_CHECKPOINT_ENV in tracker/launch.py).
"""
import json
import os
import sys
import tempfile
from pathlib import Path

import ingredients  # noqa: F401  (first: silences Sacred's pkg_resources warning)
from sacred import SETTINGS, Experiment
from sacred.utils import apply_backspaces_and_linefeeds

from ingredients.data import data_ingredient
from ingredients.model import model_ingredient
from ingredients.trainer import train, trainer_ingredient
from observers.choose import choose_observers
from observers.git_state import record_uncommitted_changes
from tracker.errors import UserError
from tracker.launch import RESUME_CHECKPOINT_ENV, RUN_INFO_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent

# File-descriptor capture also records what DataLoader worker processes and C extensions print.
SETTINGS.CAPTURE_MODE = "fd"

ex = Experiment("cifar", ingredients=[data_ingredient, model_ingredient, trainer_ingredient], base_dir=REPO_ROOT)
ex.captured_out_filter = apply_backspaces_and_linefeeds  # store progress bars as their final state


# The learning rate is the one top-level key, not `trainer.lr`: Sacred evaluates ingredient configs
# before this one, so a trainer.lr could not follow `with lr=...` and the config would hold two values.
@ex.config
def config():
    lr = 0.1  # learning rate of the optimizer (the only one in the config)


@ex.named_config
def smoke():
    # Generated data and a small CNN: under a minute on 2 CPU cores, validation accuracy >= 0.6.
    lr = 0.05
    data = {"dataset": "synthetic", "batch_size": 64, "limit": 6000}
    model = {"arch": "simple", "width": 16}
    trainer = {"steps": 300, "val_every": 100, "log_every": 10, "print_every": 100, "checkpoint_every": 100}


# Sacred's -u/--unobserved flag, read by the option hook for the config hook below.
OBSERVE = {"enabled": True}
AUTO_OBSERVERS = []


@ex.option_hook
def read_unobserved_flag(options):
    OBSERVE["enabled"] = not options.get("--unobserved")


@ex.config_hook
def validate_and_attach_observers(config, command_name, logger):
    """Check `lr`, then choose the run store. This is the last config hook, so a bad value anywhere
    in the config fails before any database wait; print_config and --help never touch the database."""
    lr = config["lr"]
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise UserError(f"lr={lr!r} must be a positive number, e.g. with lr=0.01")
    for observer in AUTO_OBSERVERS:
        ex.observers.remove(observer)
    AUTO_OBSERVERS.clear()
    if command_name == ex.default_command and OBSERVE["enabled"]:
        AUTO_OBSERVERS.extend(choose_observers())
        ex.observers.extend(AUTO_OBSERVERS)
    return {}


@ex.pre_run_hook
def record_origin(_run):
    """Put what `tracker rerun/resume` says about this run's origin (e.g. rerun_of) into its info."""
    _run.info.update(json.loads(os.environ.get(RUN_INFO_ENV, "{}")))


@ex.main
def main(lr, _run):
    """Train on CIFAR-10 (or `smoke` data); the run's result is the best validation accuracy."""
    with tempfile.TemporaryDirectory(prefix="tracker-git-") as workdir:
        record_uncommitted_changes(_run, REPO_ROOT, Path(workdir))
    return train(lr=lr, resume_from=os.environ.get(RESUME_CHECKPOINT_ENV))["best_val_acc"]


if __name__ == "__main__":
    try:
        ex.run_commandline()
    except KeyboardInterrupt:  # Sacred has recorded the run as INTERRUPTED and re-raises; no traceback for Ctrl-C
        sys.exit(130)
