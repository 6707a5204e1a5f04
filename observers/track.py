"""`track(ex)`: one call that gives any Sacred experiment this project's run recording.

What a tracked experiment gets:
- the durable MongoDB observer (observers.durable), attached after every other config hook has run, so a bad config
  value fails before any database wait; `-u`, `print_config`, `save_config` and `--help` never touch the database;
- what `tracker rerun`/`resume`/`sweep` say about the run's origin (observers.origin) in its info;
- the uncommitted changes of its git repository as the artifact git_diff.patch;
- file-descriptor capture (output of C extensions and worker processes too), progress bars stored as their final state;
- system metrics (CPU, memory, GPU) as sys.* metrics every SYSTEM_METRICS_S seconds (observers.system_metrics);
- exit status 130 on Ctrl-C, without a traceback (Sacred has recorded the run as INTERRUPTED).
"""
import functools
import json
import os
import sys
import tempfile
from pathlib import Path

from sacred import SETTINGS
from sacred.utils import apply_backspaces_and_linefeeds

from observers.choose import choose_observers
from observers.git_state import record_uncommitted_changes
from observers.origin import RUN_INFO_ENV
from observers.settings import load_settings
from observers.system_metrics import start_system_metrics


def track(ex):
    """Record every run of `ex` (a sacred.Experiment) in MONGO_URL/SACRED_DB, or in RUNS_DIR while that is down."""
    SETTINGS.CAPTURE_MODE = "fd"
    ex.captured_out_filter = apply_backspaces_and_linefeeds
    state = {"observe": True, "attached": []}

    def attach_observers(config, command_name, logger):
        for observer in state["attached"]:
            ex.observers.remove(observer)
        state["attached"] = choose_observers() if command_name == ex.default_command and state["observe"] else []
        ex.observers.extend(state["attached"])
        return {}

    @ex.option_hook
    def read_options(options):
        state["observe"] = not options.get("--unobserved")
        # Option hooks run once the experiment's file is fully loaded: now attach_observers can be its last config hook.
        if attach_observers not in ex.config_hooks:
            ex.config_hooks.append(attach_observers)

    @ex.pre_run_hook
    def record_origin_and_code(_run):
        _run.info.update(json.loads(os.environ.get(RUN_INFO_ENV, "{}")))
        with tempfile.TemporaryDirectory(prefix="tracker-git-") as workdir:
            record_uncommitted_changes(_run, ex.base_dir, Path(workdir))

    @ex.pre_run_hook
    def sample_system_metrics(_run):
        start_system_metrics(_run, load_settings().system_metrics_s)  # stops when the run is no longer RUNNING

    ex.run_commandline = _exit_130_on_ctrl_c(ex.run_commandline)
    return ex


def _exit_130_on_ctrl_c(run_commandline):
    @functools.wraps(run_commandline)
    def run(*args, **kwargs):
        try:
            return run_commandline(*args, **kwargs)
        except KeyboardInterrupt:  # Sacred has recorded the run as INTERRUPTED and re-raises it
            sys.exit(130)

    return run
