"""What storing predictions adds to a run: wall time of whole `smoke` runs with trainer.save_predictions True and
False, alternated so that machine load affects both alike.

    python benchmarks/predictions_cost.py [--pairs 4] [--mongo-url URL]

Without --mongo-url a local nx-27017 server is started, as `tracker db` serves one. Wall and CPU time include imports
and the final upload (the process exits once MongoDB holds the finished run). Printed last: the median of the
pairwise differences, as a share of the median run without predictions.
"""
import argparse
import os
import statistics
import tempfile

from local_mongo import mongo_server
from run_overhead import summary, timed_run

COMMAND = ["with", "smoke", "trainer.progress=False"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="alternated (with, without) pairs; at least 3")
    parser.add_argument("--mongo-url")
    args = parser.parse_args()
    if args.pairs < 3:
        parser.error(f"--pairs={args.pairs}: use at least 3")
    print(f"python experiments/cifar.py {' '.join(COMMAND)} trainer.save_predictions=True|False; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp, mongo_server(args.mongo_url, tmp + "/db") as (_, url):
        runs = {True: [], False: []}
        for _ in range(args.pairs):
            for saved in (True, False):
                command = [*COMMAND, f"trainer.save_predictions={saved}"]
                runs[saved].append(timed_run(True, url, tmp, command))
    print(f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(summary("with predictions   ", runs[True]))
    print(summary("without predictions", runs[False]))
    differences = [saved[0] - plain[0] for saved, plain in zip(runs[True], runs[False])]
    baseline = statistics.median(wall for wall, _ in runs[False])
    print(f"storing predictions adds (median of pairwise differences): {statistics.median(differences):.2f} s wall, "
          f"{100 * statistics.median(differences) / baseline:+.1f} % of a run")


if __name__ == "__main__":
    main()
