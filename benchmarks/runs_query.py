"""How fast 10,000 stored runs are listed: `tracker runs`, runstore.query.runs() and, with --omniboard, Omniboard's
runs page in headless Chromium.

    python benchmarks/runs_query.py [--runs 10000] [--mongo-url URL] [--omniboard]

Without --mongo-url a local nx-27017 server (what `tracker db` serves) is started on a temporary folder. The store
is filled directly (not through real runs): each run document as the uploader writes it, with 10 config keys, 10 KB
of captured output and 5 metrics of 100 points, each in `metrics` and `metric_points`.

Each figure is wall-clock seconds and, in brackets, the CPU seconds spent by the command and the database server
together (a local server only): on a busy shared machine the CPU seconds are what an idle one would take.
"""
import argparse
import datetime
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pymongo
from bson import ObjectId

from local_mongo import free_port, mongo_server

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from observers.upload import ensure_listing_indexes, ensure_unique_keys  # noqa: E402
from runstore.settings import load_settings  # noqa: E402
from runstore.query import runs  # noqa: E402
from runstore.layout import pack_points, series_arrays, summarize  # noqa: E402

METRICS = ("train.loss", "train.acc", "val.loss", "val.acc", "lr")
POINTS = 100
BATCH = 500
CHROMIUM = "/usr/bin/chromium"


def fill(db, count):
    """`count` COMPLETED runs of experiment 'bench', as the uploader stores them."""
    rng = random.Random(0)
    start = datetime.datetime(2026, 11, 1)
    steps = list(range(0, POINTS * 10, 10))
    for first in range(1, count + 1, BATCH):
        documents, metrics, points = [], [], []
        for run_id in range(first, min(count, first + BATCH - 1) + 1):
            began = start + datetime.timedelta(minutes=run_id)
            summaries, listed = [], []
            for index, name in enumerate(METRICS):
                values = np.cumsum(np.random.default_rng([run_id, index]).normal(size=POINTS)).tolist()
                stamps = [(began + datetime.timedelta(seconds=s)).isoformat() for s in steps]
                series = {"steps": steps, "values": values, "timestamps": stamps}
                metric_id = ObjectId()
                metrics.append({"_id": metric_id, "run_id": run_id, "name": name, "steps": steps, "values": values,
                                "timestamps": [datetime.datetime.fromisoformat(t) for t in stamps], "points": POINTS})
                points.append({"run_id": run_id, "name": name, "chunk": 0, "points": POINTS,
                               **pack_points(*series_arrays(series))})
                summaries.append({"name": name, **summarize(steps, values)})
                listed.append({"name": name, "id": str(metric_id)})
            documents.append(run_document(run_id, began, rng, summaries, listed))
        db.runs.insert_many(documents)
        db.metrics.insert_many(metrics)
        db.metric_points.insert_many(points)
    ensure_unique_keys(db)  # as the uploader makes them: the metric points its reads find by run, name and chunk
    ensure_listing_indexes(db)


def run_document(run_id, began, rng, summaries, listed):
    return {
        "_id": run_id,
        "experiment": {"name": "bench", "base_dir": "/project", "mainfile": "experiments/cifar.py",
                       "sources": [[f"ingredients/module{i}.py", ObjectId()] for i in range(9)],
                       "dependencies": [f"package{i}==1.{i}" for i in range(10)],
                       "repositories": [{"url": "git@example.org:lab/project.git", "commit": "0123456789abcdef" * 2 +
                                         "01234567", "dirty": False}]},
        "format": "MongoObserver-0.7.0", "command": "main",
        "host": {"hostname": "node1", "os": ["Linux", "Linux-6.1"], "python_version": "3.11.7",
                 "cpu": "AMD EPYC", "ENV": {}},
        "start_time": began, "stop_time": began + datetime.timedelta(seconds=990), "heartbeat": began,
        "config": {"lr": rng.choice([0.01, 0.05, 0.1]), "seed": rng.randrange(10**9),
                   "model": {"arch": rng.choice(["simple", "resnet18"]), "width": rng.choice([16, 32, 64]),
                             "dropout": rng.choice([0.0, 0.1])},
                   "data": {"batch_size": rng.choice([64, 128]), "augment": rng.choice([True, False])},
                   "trainer": {"optimizer": "sgd", "epochs": 30, "weight_decay": 5e-4}},
        "meta": {"command": "main", "options": {"--comment": None, "--unobserved": False}},
        "status": "COMPLETED", "resources": [], "artifacts": [
            {"name": f"artifact{i}.pt", "file_id": ObjectId(), "md5": "0" * 32} for i in range(5)],
        "captured_out": ("Iteration 100/3000, train loss 1.2345, val acc 0.5678\n" * 200)[:10_000],
        "info": {"metrics": listed}, "metric_summaries": summaries, "result": rng.random(),
    }


class Clock:
    """Wall-clock and CPU seconds of this process, its children and the database server (when it is local)."""

    def __init__(self, server):
        self.server = psutil.Process(server.pid) if server else None

    def cpu(self):
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        server = sum(self.server.cpu_times()[:2]) if self.server else 0.0
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + server

    def time(self, function):
        """(text giving the wall-clock and CPU seconds `function()` took, its value)"""
        wall, cpu = time.perf_counter(), self.cpu()
        value = function()
        return f"{time.perf_counter() - wall:.2f} s ({self.cpu() - cpu:.2f} s CPU)", value


def run_tracker(args, env):
    return subprocess.run([sys.executable, "-m", "tracker", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, check=True)


def time_omniboard(env):
    """Seconds from opening Omniboard's runs page until its table shows a run: the first time (a local server builds
    the index it picks pages from then, once) and on a reload; and how many rows the page shows."""
    from playwright.sync_api import sync_playwright

    port = str(free_port())
    board = subprocess.Popen([sys.executable, "-m", "tracker", "board", "--port", port], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        address = next(line.split("open ")[1].split()[0] for line in board.stdout if "open http" in line)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"],
                viewport={"width": 1600, "height": 1000})
            browser.set_default_timeout(600_000)
            page = browser.new_page()
            page.goto(address)  # the URL with its token: the board's cookie
            shown_after = []
            for _ in range(2):
                began = time.perf_counter()
                page.goto(f"http://localhost:{port}/sacred")
                page.locator("[role=row][aria-rowindex='2']").wait_for()
                shown_after.append(time.perf_counter() - began)
            shown = page.get_by_role("row").count() - 1
            browser.close()
        return *shown_after, shown
    finally:
        os.killpg(board.pid, 9)
        board.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--mongo-url")
    parser.add_argument("--omniboard", action="store_true", help="also time Omniboard's runs page (tracker board)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, mongo_server(args.mongo_url, data_dir) as (server, url):
        db_name = f"runs_query_{os.getpid()}"
        client = pymongo.MongoClient(url)
        try:
            clock = Clock(server)
            seconds, _ = clock.time(lambda: fill(client[db_name], args.runs))
            print(f"stored {args.runs} runs (10 config keys, {len(METRICS)} metrics x {POINTS} points) in {seconds}")
            env = {**os.environ, "MONGO_URL": url, "SACRED_DB": db_name, "RUNS_DIR": str(Path(data_dir) / "runs"),
                   "PYTHONPATH": str(REPO_ROOT)}
            seconds, _ = clock.time(lambda: run_tracker(["runs", "--limit", "1"], env))
            print(f"first listing: {seconds} (a local server builds its listing index then, once; every later write "
                  f"keeps it up to date)")
            seconds, _ = clock.time(lambda: run_tracker(["--help"], env))
            print(f"tracker --help: {seconds} (starting the command: Python and its imports)")
            for cli_args in (["runs", "--metrics", "val.acc.max,train.loss.last"],
                             ["runs", "--where", "config.lr>=0.05", "--where", "val.acc.max>1", "--sort", "-result",
                              "--limit", "10", "--format", "csv"]):
                seconds, result = clock.time(lambda: run_tracker(cli_args, env))  # noqa: B023 - called in this iteration
                print(f"tracker {' '.join(cli_args)}: {seconds}, the whole command "
                      f"({len(result.stdout.splitlines()) - 1} runs listed)")
            os.environ.update(MONGO_URL=url, SACRED_DB=db_name)
            runs(settings=load_settings(), limit=1)  # pandas imported and the connection pool warm, as in a notebook
            seconds, frame = clock.time(lambda: runs(settings=load_settings()))
            print(f"runstore.query.runs(): {seconds} ({frame.shape[0]} rows, {frame.shape[1]} columns)")
            seconds, frame = clock.time(lambda: runs(["config.lr>=0.05"], sort="-result", limit=10,
                                                     settings=load_settings()))
            print(f"runstore.query.runs(['config.lr>=0.05'], sort='-result', limit=10): {seconds} "
                  f"({frame.shape[0]} rows; the store sorts and cuts)")
            if args.omniboard:
                first, again, shown = time_omniboard(env)
                print(f"Omniboard runs page (Chromium): first run shown after {first:.1f} s the first time, "
                      f"{again:.1f} s on a reload ({shown} rows on the page)")
        finally:
            client.drop_database(db_name)


if __name__ == "__main__":
    main()
