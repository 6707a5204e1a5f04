"""How fast the embedded store finds one run's metric points among many runs' (a run page's zoom and live poll,
runstore.layout.read_metric) and stores a new chunk of them (observers.upload), side by side with the same on a
collection that nx_adapter's adaptation 18 does not cover (neosqlite's own SQL, which reads every document).

    python benchmarks/metric_find.py [--runs 100000]

A local nx-27017 server (what `tracker db` serves) on a temporary folder holds --runs runs' points of 5 metrics in
`metric_points` and the same documents in a second collection, each with the uploader's index (run_id, name, chunk).
Times are wall-clock milliseconds of one find of a run's points, sorted by chunk, and of one upsert of a new chunk,
each the median over 20 runs.
"""
import argparse
import random
import statistics
import sys
import tempfile

import pymongo

from local_mongo import REPO_ROOT, mongo_server
from ui_speed import seconds

sys.path.insert(0, str(REPO_ROOT))
from runstore.layout import CHUNK_INDEX

METRICS = ("train.loss", "train.acc", "val.loss", "val.acc", "lr")
UNCOVERED = "metric_points_elsewhere"  # not in nx_adapter.INDEXED_SCALARS


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, mongo_server(None, data_dir) as (_, url):
        db = pymongo.MongoClient(url).metric_find
        documents = [{"run_id": run_id, "name": name, "chunk": 0, "points": 100, "steps": b"\0" * 800}
                     for run_id in range(1, args.runs + 1) for name in METRICS]
        for name in ("metric_points", UNCOVERED):
            db[name].create_index([("run_id", 1), ("name", 1), ("chunk", 1)], name=CHUNK_INDEX, unique=True)
            took, _ = seconds(lambda: db[name].insert_many(documents))  # noqa: B023 - called in this iteration
            print(f"{len(documents):,} point documents stored in {name} in {took:.1f} s")
        wanted = random.Random(0).sample(range(1, args.runs + 1), 20)
        times = {name: [seconds(lambda: list(db[name].find(  # noqa: B023 - called in this iteration
            {"run_id": run_id, "name": "val.acc"}).sort("chunk", 1)))[0] for run_id in wanted]  # noqa: B023
            for name in ("metric_points", UNCOVERED)}
        print_side_by_side(f"a find of a run's val.acc points among {args.runs:,} runs'", times)
        times = {name: [seconds(lambda: db[name].update_one(  # noqa: B023 - called in this iteration
            {"run_id": run_id, "name": "val.acc", "chunk": 1}, {"$set": {"points": 1}}, upsert=True))[0]  # noqa: B023
            for run_id in wanted] for name in ("metric_points", UNCOVERED)}
        print_side_by_side("the uploader's upsert of a run's new chunk", times)


def print_side_by_side(label, times):
    covered, uncovered = (statistics.median(times[name]) for name in ("metric_points", UNCOVERED))
    print(f"{label}: {covered * 1000:.1f} ms in metric_points (adaptation 18), {uncovered * 1000:.1f} ms without it "
          f"({uncovered / covered:.0f}x)")


if __name__ == "__main__":
    main()
