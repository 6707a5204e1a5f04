"""How fast the answers of a 1,000-run sweep come: `tracker runs --group` and `tracker report` (target: under 2 s each).

    python benchmarks/answers_speed.py [--runs 1000] [--mongo-url URL]

Without --mongo-url a local nx-27017 server (what `tracker db` serves) is started on a temporary folder and filled as
benchmarks/runs_query.py fills it: 7 varied config keys (seed among them), 5 metrics of 100 points per run. The runs
are tagged as sweep 1's, so `tracker report --sweep 1` reads them as a sweep's (without a sweep record: its
parameters are the config keys the runs vary). Each figure is wall-clock seconds of the whole command (Python start
included) and, in brackets, the CPU seconds of the command and the database server together.
"""
import argparse
import os
import tempfile
from pathlib import Path

import pymongo

from local_mongo import mongo_server
from runs_query import REPO_ROOT, Clock, fill, run_tracker


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--mongo-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, mongo_server(args.mongo_url, data_dir) as (server, url):
        db_name = f"answers_speed_{os.getpid()}"
        client = pymongo.MongoClient(url)
        try:
            db = client[db_name]
            fill(db, args.runs)
            db.runs.update_many({}, {"$set": {"omniboard.tags": ["sweep-1"], "info.higher_is_better": True,
                                              "info.result_metric": "val.acc"}})
            env = {**os.environ, "MONGO_URL": url, "SACRED_DB": db_name, "RUNS_DIR": str(Path(data_dir) / "runs"),
                   "PYTHONPATH": str(REPO_ROOT)}
            clock = Clock(server)
            clock.time(lambda: run_tracker(["runs", "--limit", "1"], env))  # a local server builds its index once
            seconds, result = clock.time(lambda: run_tracker(["runs", "--tag", "sweep-1", "--group"], env))
            print(f"tracker runs --tag sweep-1 --group over {args.runs} runs: {seconds} "
                  f"({len(result.stdout.splitlines()) - 1} groups)")
            out = Path(data_dir) / "report.html"
            seconds, _ = clock.time(lambda: run_tracker(["report", "--sweep", "1", "--out", str(out)], env))
            print(f"tracker report --sweep 1 over {args.runs} runs: {seconds} ({out.stat().st_size / 1e6:.1f} MB)")
        finally:
            client.drop_database(db_name)


if __name__ == "__main__":
    main()
