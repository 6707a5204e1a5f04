"""Training steps and best result of the same Optuna sweep with and without `--prune median`, side by side.

    python benchmarks/pruning.py                      # 20 trials of 60 smoke steps each, 10 validations a trial
    python benchmarks/pruning.py --trials 10 --validations 5 --sampler-seed 3

Both sweeps search lr=loguniform(1e-5,0.5) with the same sampler seed and budget, on a throwaway nx-27017, one trial
at a time. Steps run are every trial's last logged training step, summed; the target is at most half the steps for a
best result within the noise of seeds (runs of one lr with two seeds differ by up to 0.03 in this smoke task). The
median pruner's first 3 trials always run to the end, and a pruned trial runs at least to its first validation: with
10 trials and 5 validations a trial, half the steps would need all 7 later trials pruned at their first validation.
"""
import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from conftest import LocalMongoServer, metric, python_env  # noqa: E402


def sweep(prune, args, env, folder):
    """(steps run, best result, pruned trials, seconds) of one sweep."""
    command = [sys.executable, "-m", "tracker", "sweep", "--optuna", str(args.trials), "--sampler-seed",
               str(args.sampler_seed), *(["--prune", "median"] if prune else []),
               str(ROOT / "experiments" / "cifar.py"),
               "with", "smoke", f"trainer.steps={args.steps}", f"trainer.val_every={args.steps // args.validations}",
               "data.limit=2000", "trainer.progress=False", "lr=loguniform(1e-5,0.5)"]
    started = time.monotonic()
    # Its exit status is the number of failed trials (a large lr may diverge): those count with the steps they ran.
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    print(f"{'with' if prune else 'without'} pruning: {seconds:.0f} s", file=sys.stderr, flush=True)
    found = re.search(r"^sweep (\d+): ", result.stdout, re.M)
    if found is None:
        raise SystemExit(f"the sweep did not start:\n{result.stdout}{result.stderr}")
    db = pymongo.MongoClient(env["MONGO_URL"])[env["SACRED_DB"]]
    runs = list(db.runs.find({"info.sweep.id": int(found.group(1))}))
    steps = sum(max(metric(db, run["_id"], "train.loss"), default=0) for run in runs)
    pruned = sum("pruned_at_step" in run["info"] for run in runs)
    best = max(run["result"] for run in runs if run["status"] == "COMPLETED" and "pruned_at_step" not in run["info"])
    return steps, best, pruned, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60, help="training steps of a trial that is not pruned")
    parser.add_argument("--validations", type=int, default=10, help="validations of a trial that is not pruned")
    parser.add_argument("--sampler-seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pruning-benchmark-") as folder:
        server = LocalMongoServer(Path(folder) / "db").start()
        try:
            env = python_env(MONGO_URL=server.url, SACRED_DB="benchmark", RUNS_DIR=Path(folder) / "runs")
            results = {name: sweep(prune, args, env, folder) for name, prune in (("no pruning", False),
                                                                               ("--prune median", True))}
        finally:
            server.stop()
    print(f"{args.trials} trials of {args.steps} steps, {args.validations} validations each, "
          f"sampler seed {args.sampler_seed}")
    print(f"{'':16}{'steps run':>10}{'best result':>13}{'pruned':>8}{'wall s':>8}")
    for name, (steps, best, pruned, seconds) in results.items():
        print(f"{name:16}{steps:>10}{best:>13.4f}{pruned:>8}{seconds:>8.0f}")
    (plain_steps, plain_best, _, _), (pruned_steps, pruned_best, _, _) = results.values()
    print(f"pruning ran {pruned_steps / plain_steps:.2f}x the steps, best result {pruned_best - plain_best:+.4f}")


if __name__ == "__main__":
    main()
