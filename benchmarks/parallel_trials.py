"""Wall time of a local sweep running K trials at once: each trial with its share of the cores' torch threads (what
`tracker sweep --parallel K` does) against each with every core's (torch's default, OMP_NUM_THREADS=<cores>).

    python benchmarks/parallel_trials.py [--rounds 3] [--steps 200] [--mongo-url URL]

A K-trial grid sweep (K = the number of cores, at least 2) of the smoke model, `--parallel K`, into a local nx-27017
server (as `tracker db` serves one) unless --mongo-url is given. Rounds alternate the two ways so that machine load
affects both alike; printed: every sweep's wall time, the medians, and the median ratio of the pairs.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_mongo import mongo_server

REPO_ROOT = Path(__file__).resolve().parent.parent


def timed_sweep(env, workdir, trials, steps):
    """Seconds of one `tracker sweep` of `trials` trials, all at once."""
    lrs = ",".join(str(0.01 * (n + 1)) for n in range(trials))
    command = [sys.executable, "-m", "tracker", "sweep", "--parallel", str(trials), str(REPO_ROOT / "experiments" /
               "cifar.py"), "with", "smoke", f"trainer.steps={steps}", "trainer.progress=False", f"lr=[{lrs}]"]
    started = time.perf_counter()
    subprocess.run(command, cwd=workdir, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternated pairs of sweeps")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each trial")
    parser.add_argument("--mongo-url")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    trials = max(2, cores)
    print(f"{trials} trials of {args.steps} smoke steps at once on {cores} cores; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp, mongo_server(args.mongo_url, tmp + "/db") as (_, url):
        base = {name: value for name, value in os.environ.items() if name != "OMP_NUM_THREADS"}
        base.update(MONGO_URL=url, SACRED_DB="parallel_trials", PYTHONPATH=str(REPO_ROOT))
        every_core = {**base, "OMP_NUM_THREADS": str(cores)}
        ways = {"shared out (tracker sweep)": base, "every core each (torch's default)": every_core}
        subprocess.run([sys.executable, str(REPO_ROOT / "experiments" / "cifar.py"), "-u", "with", "smoke",
                        "trainer.steps=1"], cwd=tmp, env=base, capture_output=True, check=True)  # data, written once
        times = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way, env in ways.items():
                times[way].append(timed_sweep(env, tmp, trials, args.steps))
    for way, seconds in times.items():
        print(f"{way}: median {statistics.median(seconds):.1f} s ({', '.join(f'{s:.1f}' for s in seconds)})")
    shared, every = times.values()
    print(f"every core each / shared out: {statistics.median(e / s for s, e in zip(shared, every)):.2f}x the time")


if __name__ == "__main__":
    main()
