"""Importing any module of the project changes no global state: speed-ups and patches of other packages are applied
by explicit calls from the entry points (an experiment's script and track(), `tracker`, `tracker db`), never by an
import; and what a tracked run changes for itself (tempfile's folder) is given back at its end."""
import json
import subprocess
import sys

from conftest import REPO_ROOT, python_env

PACKAGES = ("compat", "runstore", "observers", "localdb", "ingredients", "tracker", "experiments")

# Run in a fresh interpreter: records the process's global state, imports every module, records it again.
CHECK = r"""
import argparse, copy, gc, importlib, json, logging, os, signal, sys, tempfile, warnings

import nx_27017.daemon, nx_27017.handler, nx_27017.wire_protocol, sacred, sacred.arg_parser, sacred.dependencies
import sacred.experiment, sacred.ingredient, sacred.run, sacred.stdout_capturing, sacred.utils, torch
from neosqlite.collection.expr_evaluator.python_evaluators.math_ops import MathPythonMixin
import numpy, optuna, pandas, pkg_resources, scipy.stats, sklearn, submitit, torch.jit  # their own warning filters
filters_before = list(warnings.filters)

PATCHABLE = {"sacred.run.Run": sacred.run.Run, "sacred.stdout_capturing.CapturedStdout":
             sacred.stdout_capturing.CapturedStdout, "sacred.experiment.Experiment": sacred.experiment.Experiment,
             "sacred.ingredient.Ingredient": sacred.ingredient.Ingredient, "sacred.dependencies": sacred.dependencies,
             "sacred.arg_parser": sacred.arg_parser, "sacred.utils": sacred.utils,
             "argparse.ArgumentParser": argparse.ArgumentParser, "nx_27017.daemon": nx_27017.daemon,
             "nx_27017.handler": nx_27017.handler, "nx_27017.wire_protocol": nx_27017.wire_protocol,
             "MathPythonMixin": MathPythonMixin, "tempfile": tempfile}


def state():
    loggers = {name: (logging.getLogger(name).level, list(logging.getLogger(name).filters))
               for name in ("", "neosqlite", "nx_27017", "asyncio")}
    return {
        "gc thresholds": gc.get_threshold(),
        **{f"{name} attributes": dict(vars(owner)) for name, owner in PATCHABLE.items()},
        "tempfile.tempdir": tempfile.tempdir,
        "sacred.SETTINGS": copy.deepcopy(sacred.SETTINGS),
        "sys.argv": list(sys.argv),
        "os.environ": dict(os.environ),
        "cwd": os.getcwd(),
        "streams and hooks": (sys.stdout, sys.stderr, sys.excepthook),
        "signal handlers": (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)),
        "loggers": loggers,
        "torch": (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.get_default_dtype()),
    }


tempfile.gettempdir()  # sets tempfile.tempdir to the default, which a module's first call would do
before = state()
modules = json.loads(sys.argv[1])
for module in modules:
    importlib.import_module(module)
after = state()
changed = sorted(key for key in before if before[key] != after[key])
if list(warnings.filters) != filters_before:
    changed.append("warnings.filters")
print(json.dumps({"changed": changed, "details": {key: [repr(before.get(key)), repr(after.get(key))]
                                                   for key in changed if key in before}}))
"""


def module_names():
    """Every module of PACKAGES, from their files."""
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            if parts[-1] == "__main__":  # runs the command line when imported
                continue
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_importing_every_module_changes_no_global_state():
    modules = list(module_names())
    assert {"observers.track", "compat.sacred", "localdb.server", "tracker.cli", "experiments.cifar"} <= set(modules)
    result = subprocess.run([sys.executable, "-c", CHECK, json.dumps(modules)], cwd=REPO_ROOT, env=python_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["changed"] == [], report


TRACKED_RUN = r"""
import json, os, tempfile
from observers.track import track
from sacred import Experiment

ex = track(Experiment("temporary", save_git_info=False, interactive=True))


@ex.command(unobserved=True)
def where():
    return tempfile.gettempdir()


before = tempfile.gettempdir()
during = ex.run("where", options={"--capture": "no", "--loglevel": "ERROR"}).result
print(json.dumps({"before": before, "during": during, "after": tempfile.tempdir, "left": os.path.exists(during)}))
"""


def test_a_tracked_run_keeps_its_temporary_files_in_its_process_folder_and_gives_tempfile_its_own_back(tmp_path):
    result = subprocess.run([sys.executable, "-c", TRACKED_RUN], cwd=tmp_path, env=python_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["during"].startswith(seen["before"]) and "tracker-process-" in seen["during"]
    assert (seen["after"], seen["left"]) == (seen["before"], False)


def test_the_tracker_command_starts_without_sacred_torch_or_pandas():
    """Every `tracker` command imports the modules of all of them at start: none may pull in what takes a second to
    import and that the command line does without (a run, a sweep, a report import them where they need them)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "tracker", "--help"], cwd=REPO_ROOT,
                            env=python_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"sacred", "torch", "pandas", "scipy", "optuna", "submitit"}
