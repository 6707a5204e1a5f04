"""Whether each start-up trick earns its place: short commands timed with and without it, in turn, side by side.

    python benchmarks/startup_tricks.py [--repeat 7] [--file-store]

A local nx-27017 server on a temporary folder (what `tracker db` serves; --file-store: a file store, MongoDB
unreachable) gets 8 tiny runs of experiments/signals.py (2 lr x 2 model.width x 2 seeds). Then each round runs every
variant of three short commands once, in turn:

- a tiny signals run (its own throwaway store), `tracker runs --group` and `tracker report` on those 8 runs, as they
  are and without the collector tweaks of observers.startup (gc.set_threshold and gc.freeze made no-ops; for the
  run also each without the other): trick (a);
- `tracker runs --group` with runstore.groups' t distribution importing scipy.stats first, as scipy.stats.t.ppf and
  ttest_ind would: trick (b), scipy.special instead of scipy.stats;
- `tracker report` with a background import: a thread started first imports optuna.importance (scikit-learn, for
  fANOVA) while the runs are read: trick (c), which the project dropped (a variant whose name starts with "+" adds
  a trick, the others take one away).

Every variant starts as `python -c` of the same wrapper, so they differ only in the trick. Printed per command: the
median wall-clock and CPU seconds (the command and its children) of each variant, and the median of the per-round
differences to the command as it is: the trick's saving.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_mongo import mongo_server

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = ["with", "smoke", "trainer.steps=4", "trainer.val_every=2", "trainer.log_every=2",
            "trainer.checkpoint_every=4", "data.train_size=256", "data.eval_size=64"]

# Each variant's code, run before the command (`argv`, `kind`: "experiment" or "tracker").
AS_IT_IS = ""
NO_THRESHOLDS = "import gc; gc.set_threshold = lambda *thresholds: None\n"
NO_FREEZE = "import gc; gc.freeze = lambda: None\n"
NO_GC_TWEAKS = NO_THRESHOLDS + NO_FREEZE
SCIPY_STATS = """import runstore.groups as groups
plain_describe = groups.describe
def describe(values):
    import scipy.stats
    return plain_describe(values)
groups.describe = describe
"""
WITH_THREAD = """import importlib, threading, tracker.report as report
plain_run = report.run
def run(args):
    threading.Thread(target=importlib.import_module, args=("optuna.importance",)).start()
    return plain_run(args)
report.run = run
"""
COMMAND = """import runpy, sys
argv = {argv!r}
if {kind!r} == "experiment":
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")
else:
    from tracker.cli import main
    sys.exit(main(argv))
"""


def timed(code: str, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `python -c code`; fails loudly if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {code}\n{result.stderr[-3000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds (each runs every variant once)")
    parser.add_argument("--file-store", action="store_true", help="record and read the runs in a file store")
    args = parser.parse_args()
    unreachable, load = "mongodb://127.0.0.1:1", os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder, \
            mongo_server(unreachable if args.file_store else None, folder) as (_, url):
        work = Path(folder)
        env = {**os.environ, "MONGO_URL": url, "SACRED_DB": "startup_tricks", "RUNS_DIR": str(work / "runs"),
               "PYTHONPATH": str(REPO_ROOT)}
        experiment = str(REPO_ROOT / "experiments" / "signals.py")
        for lr in (0.01, 0.02):
            for width in (8, 16):
                for seed in (1, 2):
                    run = [experiment, *TINY_RUN, f"lr={lr}", f"model.width={width}", f"seed={seed}"]
                    timed(COMMAND.format(argv=run, kind="experiment"), env, work)
        commands = {
            "tiny signals run": ([experiment, *TINY_RUN], "experiment", {
                "(a) no gc tweaks": NO_GC_TWEAKS, "(a) no thresholds": NO_THRESHOLDS, "(a) no gc.freeze": NO_FREEZE}),
            "tracker runs --group": (["runs", "--experiment", "signals", "--group"], "tracker",
                                     {"(a) no gc tweaks": NO_GC_TWEAKS, "(b) scipy.stats": SCIPY_STATS}),
            "tracker report": (["report", "--experiment", "signals", "--out", str(work / "report.html")], "tracker",
                               {"(a) no gc tweaks": NO_GC_TWEAKS, "+(c) background import": WITH_THREAD}),
        }
        throwaway = {**env, "SACRED_DB": "throwaway", "RUNS_DIR": str(work / "throwaway")}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for name, (argv, kind, variants) in commands.items():
                for variant, prelude in {"as it is": AS_IT_IS, **variants}.items():
                    code = prelude + COMMAND.format(argv=argv, kind=kind)
                    times.setdefault((name, variant), []).append(
                        timed(code, throwaway if kind == "experiment" else env, work))
    store = "a file store" if args.file_store else "a local nx-27017 server"
    print(f"{args.repeat} rounds on {store}, load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
          f"end; median seconds, wall (CPU)")
    for name, (_, _, variants) in commands.items():
        plain = times[(name, "as it is")]
        print(f"{name}: as it is {_median(plain, 0):.2f} ({_median(plain, 1):.2f})")
        for variant in variants:
            other = times[(name, variant)]
            sign = -1 if variant.startswith("+") else 1
            saving = [statistics.median(sign * (b[i] - a[i]) for a, b in zip(plain, other)) for i in (0, 1)]
            print(f"  {variant}: {_median(other, 0):.2f} ({_median(other, 1):.2f}); the trick saves "
                  f"{saving[0]:+.2f} s wall ({saving[1]:+.2f} s CPU)")


def _median(pairs: list[tuple[float, float]], index: int) -> float:
    return statistics.median(pair[index] for pair in pairs)


if __name__ == "__main__":
    main()
