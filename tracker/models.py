"""Trained networks back from recorded runs: `load_model(RUN)` rebuilds a run's network with its weights.

The network is built by the run's experiment, from this checkout (as `tracker rerun` chooses it), through the
experiment's `rebuild` command (ingredients.rebuild) with the run's stored config; the config stays data and the
weights load with weights_only=True, so nothing stored in the run can run code.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstore.errors import UserError
from runstore.run_store import open_run

if TYPE_CHECKING:
    import sacred
    import torch

    from runstore.run_store import StoredRun

WEIGHTS = {"best": "model_best.pt", "last": "model_last.pt"}  # the trainer's artifacts (ingredients.trainer)


def load_model(run: object, which: str = "best", device: str = "cpu") -> torch.nn.Module:
    """The network of `run` (a run id, as in Omniboard, or a file-store run folder), in eval mode on `device`.

    `which`: "best" (the weights of the best validation score) or "last" (those at the end of training).
    Reads MONGO_URL/SACRED_DB from the environment or .env, like the tracker command.
    """
    return rebuild(open_run(str(run)), which, device)[2]


def rebuild(stored: StoredRun, which: str = "best", device: str = "cpu") -> tuple[Any, Any, torch.nn.Module]:
    """(task, data, network) of a StoredRun (the task and its data as the experiment's ingredients.task makes them):
    the network holds the run's `which` weights, in eval mode."""
    import torch  # here: the tracker command imports this module, and torch takes seconds to load

    if which not in WEIGHTS:
        raise UserError(f"which={which!r} is not one of {', '.join(map(repr, WEIGHTS))}")
    weights = stored.artifact(WEIGHTS[which])
    if weights is None:
        raise UserError(f"{stored.label} has no {WEIGHTS[which]}: it stopped before the trainer stored its models "
                        f"(at the end of training); resume it with 'tracker resume {stored.origin}'")
    task, task_data, network = run_command(stored, "rebuild")
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except Exception as error:  # noqa: BLE001 - whatever torch raises, these weights do not fit this network
        raise UserError(f"{WEIGHTS[which]} of {stored.label} does not fit the network this checkout builds from "
                        f"its config ({type(error).__name__}); check out the run's commit") from None
    return task, task_data, network.to(device).eval()


def run_command(stored: StoredRun, command: str) -> Any:
    """The result of the experiment's `command`, run in this process with the run's stored config, unobserved."""
    import compat.sacred  # noqa: F401  (first: it imports Sacred without its pkg_resources warning)
    from sacred.utils import SacredError

    ex = experiment_of(stored)
    if command not in ex.commands:
        raise UserError(f"{stored.label}'s experiment has no '{command}' command; make it with "
                        f"ingredients.experiment.trainer_experiment, which adds it")
    from tracker.launch import check_data_root

    # --capture no: the command's output is the caller's (Sacred's "fd" capture breaks notebooks).
    options = {"--loglevel": "ERROR", "--capture": "no"}
    try:
        with tempfile.TemporaryDirectory(prefix="tracker-defaults-") as folder:
            defaults_file = Path(folder) / "defaults.json"
            ex.run("save_config", config_updates={"config_filename": str(defaults_file)}, options=options)
            defaults = json.loads(defaults_file.read_text())
        check_data_root(stored, defaults, ())  # building the data writes into data.root, as a rerun does
        return ex.run(command, config_updates=stored.config, options=options).result
    except SacredError as error:
        raise UserError(f"{stored.label}'s config does not fit this checkout's code ({error}); "
                        f"check out the run's commit") from None


def experiment_of(stored: StoredRun) -> sacred.Experiment:
    """The sacred.Experiment of the run's main file in this checkout (tracker.launch.trusted_script), imported here."""
    from sacred import Experiment  # imported without its warning: run_command imports compat.sacred first

    from tracker.launch import trusted_script

    check_code_is_here(stored)
    checkout, script, _ = trusted_script(stored)
    path = checkout / script
    if not path.is_file():
        raise UserError(f"{stored.label} ran {script}, which is not in {checkout}; load it from within a checkout of "
                        f"the repository that holds {script}")
    spec = importlib.util.spec_from_file_location(f"tracked_experiment_{path.stem}", path)
    assert spec is not None and spec.loader is not None  # a .py file's
    module = importlib.util.module_from_spec(spec)
    with _first_on_path(checkout):
        spec.loader.exec_module(module)
    found = [value for value in vars(module).values() if isinstance(value, Experiment)]
    if len(found) != 1:
        raise UserError(f"{script} defines {len(found)} Sacred experiments; load_model needs exactly one")
    return found[0]


def check_code_is_here(stored: StoredRun) -> None:
    """Refuse, in one line naming where to load it, a run of another repository of this machine when the current
    folder is outside that repository: its network is built by that repository's code."""
    from tracker.launch import PROJECT_ROOT, repository_root

    experiment = stored.doc.get("experiment") or {}
    mainfile, base_dir = experiment.get("mainfile"), experiment.get("base_dir")
    if not isinstance(mainfile, str) or not isinstance(base_dir, str) or (PROJECT_ROOT / mainfile).is_file():
        return
    if Path(base_dir).is_dir() and not Path.cwd().resolve().is_relative_to(repository_root(base_dir)):
        raise UserError(f"{stored.label} is a run of {mainfile} in {repository_root(base_dir)}, whose code builds its "
                        f"network; call load_model from within that folder (cd {repository_root(base_dir)})")


@contextlib.contextmanager
def _first_on_path(folder: Path) -> Iterator[None]:
    """The experiment imports its ingredients from its checkout, as when it is run as a script."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
