"""Training throughput of the `smoke` run with and without the MongoDB observer, measured side by side.

    python benchmarks/observer_overhead.py [--repeats 2] [--mongo-url URL]

Without --mongo-url a local nx-27017 server is started. Runs alternate (unobserved, observed, ...) so that
machine load affects both alike; examples/s is the trainer's own figure from results (training time only).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from local_mongo import mongo_server

REPO_ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT = re.compile(r"([0-9.]+) examples/s\n")


def smoke_throughput(observed, mongo_url, workdir):
    args = [sys.executable, str(REPO_ROOT / "experiments" / "cifar.py"), "with", "smoke", "trainer.progress=False"]
    if not observed:
        args.insert(2, "-u")
    env = {**os.environ, "MONGO_URL": mongo_url, "SACRED_DB": "benchmark", "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout
    return float(THROUGHPUT.findall(out)[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mongo-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mongo_server(args.mongo_url, tmp + "/db") as (_, url):
        results = {False: [], True: []}
        for _ in range(args.repeats):
            for observed in (False, True):
                results[observed].append(smoke_throughput(observed, url, tmp))
    plain, observed = statistics.median(results[False]), statistics.median(results[True])
    print(f"smoke examples/s without observer: {plain:.1f}  (runs: {results[False]})")
    print(f"smoke examples/s with MongoDB observer: {observed:.1f}  (runs: {results[True]})")
    print(f"ratio observed/unobserved: {observed / plain:.3f}")


if __name__ == "__main__":
    main()
