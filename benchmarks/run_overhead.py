"""The fixed cost of a run: wall time of a whole 2-step `smoke` process, tracked (into a local MongoDB) and with -u.

    python benchmarks/run_overhead.py [--pairs 8] [--mongo-url URL]

Without --mongo-url a local nx-27017 server is started, as `tracker db` serves one. Runs alternate (tracked, -u,
tracked, ...) so that machine load affects both alike. Wall time includes imports and, for tracked runs, the final
upload (the process exits only once MongoDB holds the finished run); CPU time (user + system of the process) is
printed too, as it varies less on a shared machine. Printed last: the median of the pairwise differences.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo

from local_mongo import mongo_server

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["with", "smoke", "trainer.steps=2", "trainer.val_every=2", "trainer.progress=False"]
DB_NAME = "run_overhead"


def timed_run(tracked, mongo_url, workdir, command=COMMAND):
    """(wall seconds, CPU seconds) of one run of `command`."""
    args = [sys.executable, str(REPO_ROOT / "experiments" / "cifar.py"), *([] if tracked else ["-u"]), *command]
    env = {**os.environ, "MONGO_URL": mongo_url, "SACRED_DB": DB_NAME, "PYTHONPATH": str(REPO_ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, cwd=workdir, env=env, capture_output=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def summary(label, runs):
    walls, cpus = zip(*runs)
    return (f"{label}: median {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU  "
            f"(wall of each run: {', '.join(f'{w:.2f}' for w in walls)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="alternated (tracked, -u) pairs; at least 6")
    parser.add_argument("--mongo-url")
    args = parser.parse_args()
    if args.pairs < 6:
        parser.error(f"--pairs={args.pairs}: use at least 6, medians of fewer pairs are mostly noise")
    print(f"python experiments/cifar.py {' '.join(COMMAND)}; load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp, mongo_server(args.mongo_url, tmp + "/db") as (_, url):
        timed_run(False, url, tmp)  # warm the file cache and write the synthetic data once, outside the figures
        runs = {True: [], False: []}
        for _ in range(args.pairs):
            for tracked in (True, False):
                runs[tracked].append(timed_run(tracked, url, tmp))
        stored = pymongo.MongoClient(url)[DB_NAME].runs.count_documents({"status": "COMPLETED"})
    print(f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(summary("tracked", runs[True]))
    print(summary("-u     ", runs[False]))
    print(f"completed runs in MongoDB: {stored} of {args.pairs}")
    differences = [t[0] - u[0] for t, u in zip(runs[True], runs[False])]
    cpu_differences = [t[1] - u[1] for t, u in zip(runs[True], runs[False])]
    print(f"tracking adds (median of pairwise differences): {statistics.median(differences):.2f} s wall, "
          f"{statistics.median(cpu_differences):.2f} s CPU")


if __name__ == "__main__":
    main()
