"""The cost of logging metrics: a tracked experiment producing 1,000,000 points, logged and not, side by side.

    python benchmarks/log_throughput.py [--points 1000000] [--repeats 3] [--scalar] [--mongo-url URL]

Runs benchmarks/log_experiment.py as whole tracked processes (into a local nx-27017 unless --mongo-url), alternating
`how=none` and `how=batch` (observers.log_batch, 1000 points per call); with --scalar, also `how=scalar`
(`_run.log_scalar` per point). Added time is the median wall time of the logging runs minus that of `none`, the
final upload included (the process exits once MongoDB holds the run); added memory compares peak resident sizes.
The stored point count is read back from MongoDB (runstore.layout.read_metric).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo

from local_mongo import mongo_server

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from runstore.layout import read_metric  # noqa: E402

DB_NAME = "log_throughput"


def timed_run(how, points, mongo_url, workdir):
    """(wall seconds, peak resident MB, run id) of one tracked run."""
    db = pymongo.MongoClient(mongo_url)[DB_NAME]
    before = {run["_id"] for run in db.runs.find({}, {"_id": 1})}
    args = [sys.executable, str(REPO_ROOT / "benchmarks" / "log_experiment.py"), "with", f"how={how}",
            f"points={points}"]
    env = {**os.environ, "MONGO_URL": mongo_url, "SACRED_DB": DB_NAME, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"how={how} failed: {process.stderr.read().decode()}")
    [run_id] = {run["_id"] for run in db.runs.find({}, {"_id": 1})} - before
    return wall, usage.ru_maxrss / 1024, run_id


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="alternated (none, batch) pairs")
    parser.add_argument("--scalar", action="store_true", help="also time _run.log_scalar per point, once")
    parser.add_argument("--mongo-url")
    args = parser.parse_args()
    ways = ["none", "batch"] * args.repeats + (["scalar"] if args.scalar else [])
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp, mongo_server(args.mongo_url, tmp + "/db") as (_, url):
        runs = {how: [] for how in ways}
        for how in ways:
            runs[how].append(timed_run(how, args.points, url, tmp))
        db = pymongo.MongoClient(url)[DB_NAME]
        stored = {how: len(read_metric(db, runs[how][-1][2], "points")[0]) for how in runs if how != "none"}
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    base_wall = statistics.median(wall for wall, _, _ in runs["none"])
    base_mb = statistics.median(mb for _, mb, _ in runs["none"])
    print(f"how=none: {base_wall:.2f} s wall, peak {base_mb:.0f} MB (median of {len(runs['none'])})")
    for how in [h for h in runs if h != "none"]:
        wall = statistics.median(w for w, _, _ in runs[how])
        mb = statistics.median(m for _, m, _ in runs[how])
        print(f"how={how}: {args.points} points added {wall - base_wall:.2f} s and {mb - base_mb:.0f} MB peak memory; "
              f"{stored[how]} points stored (median of {len(runs[how])}, "
              f"walls {[round(w, 2) for w, _, _ in runs[how]]})")


if __name__ == "__main__":
    main()
