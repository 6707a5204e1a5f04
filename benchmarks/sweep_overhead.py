"""Wall time of a 4-trial sweep on a single-node SLURM cluster versus the same 4 runs one after another.

    python benchmarks/sweep_overhead.py           # as root, with Debian's slurm-wlm and munge installed

Starts nx-27017 and a SLURM cluster of this machine (tests/slurm_cluster.py) in a temporary folder, runs the four
trials of `tracker sweep --executor slurm ... 'lr=[0.02,0.05]' 'model.width=[8,16]'` directly one after another,
then as the sweep, and prints both wall times and, per trial, how long its job waited to start and how much longer
the job took than the run's own start-to-stop time (job start, Python and experiment start, upload at the end).
"""
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from conftest import LocalMongoServer, python_env  # noqa: E402
from slurm_cluster import SlurmCluster  # noqa: E402

TRIAL = ["smoke", "trainer.steps=20", "trainer.val_every=10", "data.limit=1000", "trainer.progress=False"]
GRID = [("0.02", "8"), ("0.02", "16"), ("0.05", "8"), ("0.05", "16")]


def main():
    with tempfile.TemporaryDirectory(prefix="sweep-benchmark-") as folder:
        folder = Path(folder)
        server = LocalMongoServer(folder / "db").start()
        cluster = SlurmCluster(folder / "slurm").start()
        env = python_env(MONGO_URL=server.url, SACRED_DB="benchmark", RUNS_DIR=folder / "runs", **cluster.env)
        script = str(ROOT / "experiments" / "cifar.py")
        try:
            # The generated dataset is written once, before anything is timed.
            subprocess.run([sys.executable, script, "-u", "with", *TRIAL, "trainer.steps=1"], cwd=folder, env=env,
                           check=True, capture_output=True)
            direct = []
            for lr, width in GRID:
                started = time.monotonic()
                subprocess.run([sys.executable, script, "with", *TRIAL, f"lr={lr}", f"model.width={width}"],
                               cwd=folder, env=env, check=True, capture_output=True)
                direct.append(time.monotonic() - started)

            started = time.monotonic()
            sweep = subprocess.run([sys.executable, "-m", "tracker", "sweep", "--executor", "slurm", script, "with",
                                    *TRIAL, "lr=[0.02,0.05]", "model.width=[8,16]"],
                                   cwd=folder, env=env, check=True, capture_output=True, text=True)
            swept = time.monotonic() - started
            sweep_id = int(re.search(r"^sweep (\d+): ", sweep.stdout, re.M).group(1))
            print(sweep.stdout)
            report(folder, server.url, sweep_id, direct, swept)
        finally:
            cluster.stop()
            server.stop()


def report(folder, url, sweep_id, direct, swept):
    db = pymongo.MongoClient(url).benchmark
    runs = list(db.runs.find({"info.sweep.id": sweep_id}))
    print(f"4 runs one after another: {sum(direct):.1f} s; the same 4 as a SLURM sweep ({os.cpu_count()} CPUs, so "
          f"{os.cpu_count()} at once): {swept:.1f} s; ratio {sum(direct) / swept:.2f}")
    jobs_seconds = []
    jobs = folder / "sweeps" / str(sweep_id) / "jobs"
    for run in sorted(runs, key=lambda run: run["info"]["sweep"]["trial"]):
        trial = run["info"]["sweep"]["trial"]
        job_id = sorted(jobs.glob("*_submitted.pkl"), key=lambda path: int(path.name.split("_")[0]))[trial].name
        job_id = job_id.split("_")[0]
        submitted = datetime.datetime.fromtimestamp((jobs / f"{job_id}_submitted.pkl").stat().st_mtime)
        ended = datetime.datetime.fromtimestamp((jobs / f"{job_id}_0_result.pkl").stat().st_mtime)
        log = (jobs / f"{job_id}_0_log.out").read_text()
        began = datetime.datetime.strptime(re.search(r"\((\S+ \S+)\) - Starting with JobEnvironment", log)[1],
                                           "%Y-%m-%d %H:%M:%S,%f")
        run_seconds = (as_datetime(run["stop_time"]) - as_datetime(run["start_time"])).total_seconds()
        in_job = (ended - began).total_seconds() - run_seconds
        jobs_seconds.append((ended - began).total_seconds())
        print(f"trial {trial}: waited {(began - submitted).total_seconds():.1f} s from submission to its job's "
              f"start (queued behind others included); the job took {(ended - began).total_seconds():.1f} s, of "
              f"which the run {run_seconds:.1f} s: {in_job:.1f} s around the run (job start, experiment start, "
              f"upload wait)")
    print(f"mean job {sum(jobs_seconds) / len(jobs_seconds):.1f} s vs mean direct run (process start to exit) "
          f"{sum(direct) / len(direct):.1f} s: submitit and SLURM add "
          f"{(sum(jobs_seconds) - sum(direct)) / len(direct):.1f} s per trial once the job starts")


def as_datetime(value):
    return value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value)


if __name__ == "__main__":
    main()
