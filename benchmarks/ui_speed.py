"""How fast `tracker ui` answers on many runs, side by side with `tracker runs`, and how it draws a 1,000,000-point
metric with a one-point spike.

    python benchmarks/ui_speed.py [--runs 10000] [--mongo-url URL] [--omniboard]

Without --mongo-url a local nx-27017 server (what `tracker db` serves) is started on a temporary folder and filled as
benchmarks/runs_query.py fills it, plus one run whose train.loss has 1,000,000 points. Times are wall-clock seconds
in headless Chromium (/usr/bin/chromium) from the navigation to the first row (or the drawn plot). With --omniboard,
Omniboard's runs page on the same store follows (tracker board), as benchmarks/runs_query.py times it.
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pymongo
from bson import ObjectId

from local_mongo import free_port, mongo_server
from runs_query import CHROMIUM, REPO_ROOT, fill, run_document, time_omniboard

sys.path.insert(0, str(REPO_ROOT))
from runstore.downsample import extreme_indices
from runstore.layout import CHUNK_POINTS, PLOT_POINTS, pack_points, summarize

LONG_POINTS = 1_000_000
SPIKE_AT, SPIKE = 654_321, 100.0
GROUPED = 200  # runs in the groups view
ZOOM = (600_000, 700_000)  # the steps a zoom into the long metric shows


def add_long_run(db, run_id):
    """A run whose train.loss has LONG_POINTS points, one of them a spike of SPIKE."""
    steps = np.arange(LONG_POINTS, dtype=np.int64)
    values = np.exp(-steps / 200_000) + np.random.default_rng(0).normal(scale=0.01, size=LONG_POINTS)
    values[SPIKE_AT] = SPIKE
    stamps = np.datetime64("2026-11-01T00:00:00", "us") + steps.astype("timedelta64[ms]")
    for chunk, first in enumerate(range(0, LONG_POINTS, CHUNK_POINTS)):
        part = slice(first, first + CHUNK_POINTS)
        db.metric_points.insert_one({"run_id": run_id, "name": "train.loss", "chunk": chunk, "points": CHUNK_POINTS,
                                     **pack_points(steps[part], values[part], stamps[part])})
    metric_id = ObjectId()
    shown = extreme_indices(steps, values, (PLOT_POINTS - 2) // 2)  # as the uploader samples them for Omniboard
    db.metrics.insert_one({"_id": metric_id, "run_id": run_id, "name": "train.loss", "steps": steps[shown].tolist(),
                           "values": values[shown].tolist(), "points": LONG_POINTS})
    summary = [{"name": "train.loss", **summarize(steps, values)}]
    import random
    document = run_document(run_id, datetime.datetime(2027, 1, 1), random.Random(1), summary,
                            [{"name": "train.loss", "id": str(metric_id)}])
    document["info"]["result_metric"] = "train.loss"
    db.runs.insert_one(document)


def start_ui(env):
    command = subprocess.Popen([sys.executable, "-m", "tracker", "ui", "--port", str(free_port())], cwd=REPO_ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    for line in command.stdout:
        if "open http" in line:
            return command, line.split("open ")[1].split()[0]
    raise RuntimeError("tracker ui did not start")


def seconds(function):
    began = time.perf_counter()
    value = function()
    return time.perf_counter() - began, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--mongo-url")
    parser.add_argument("--omniboard", action="store_true", help="also time Omniboard's runs page on the same store")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as data_dir, mongo_server(args.mongo_url, data_dir) as (_, url):
        db_name = f"ui_speed_{os.getpid()}"
        client = pymongo.MongoClient(url)
        ui = None
        try:
            took, _ = seconds(lambda: fill(client[db_name], args.runs))
            # Their val.acc is their result's metric: the table's sparklines and the groups' curves draw it.
            client[db_name].runs.update_many({}, {"$set": {"info.result_metric": "val.acc"}})
            add_long_run(client[db_name], args.runs + 1)
            print(f"stored {args.runs} runs and one with {LONG_POINTS:,} points in {took:.1f} s")
            env = {**os.environ, "MONGO_URL": url, "SACRED_DB": db_name, "RUNS_DIR": str(Path(data_dir) / "runs"),
                   "PYTHONPATH": str(REPO_ROOT)}
            query = ["runs", "--where", "config.lr>=0.05", "--sort", "-result", "--limit", "10"]
            took, _ = seconds(lambda: subprocess.run([sys.executable, "-m", "tracker", *query], env=env, cwd=REPO_ROOT,
                                                     capture_output=True, check=True))
            print(f"tracker {' '.join(query)}: {took:.2f} s, the whole command")
            ui, address = start_ui(env)
            base, token = address.split("?token=")
            cookie = {"Cookie": f"tracker_ui_token={token}"}
            took, _ = seconds(lambda: urllib.request.urlopen(urllib.request.Request(base, headers=cookie)).read())
            print(f"tracker ui: the server's answer for the first screen: {took:.2f} s")
            with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
                browser = playwright.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"],
                    viewport={"width": 1600, "height": 1000})
                browser.set_default_timeout(600_000)
                page = browser.new_page()
                page.goto(address)
                for label, path in (("first rows", ""), ("filter config.lr>=0.05, sort -result",
                                                         "?where=config.lr%3E%3D0.05&sort=-result")):
                    took, _ = seconds(lambda: (page.goto(base + path),  # noqa: B023 - called in this iteration
                                               page.locator("table.runs tbody tr").first.wait_for()))
                    print(f"tracker ui in Chromium, {label}: {took:.2f} s")
                selected = "&".join(f"id={run_id}" for run_id in range(1, GROUPED + 1))  # as the table's checkboxes
                took, _ = seconds(lambda: (page.goto(f"{base}groups?{selected}"),
                                           page.locator("#plot-groups .legendtext").first.wait_for()))
                print(f"tracker ui in Chromium, groups of {GROUPED} runs with mean curves and bands: {took:.2f} s")
                took, _ = seconds(lambda: (page.goto(f"{base}run?id={args.runs + 1}"),
                                           page.locator("#plot-loss .legendtext").wait_for()))
                drawn = page.evaluate("document.getElementById('plot-loss').data[0]")
                print(f"tracker ui in Chromium, a run page with a {LONG_POINTS:,}-point metric drawn: {took:.2f} s "
                      f"({len(drawn['x'])} points sent; the spike of {SPIKE} at step {SPIKE_AT} "
                      f"{'is' if max(drawn['y']) == SPIKE else 'is NOT'} drawn)")
                zoomed = "plot => plot.data[0].x.length && plot.data[0].x[0] >= %d" % ZOOM[0]
                took, _ = seconds(lambda: (page.evaluate(
                    "range => Plotly.relayout('plot-loss', {'xaxis.range[0]': range[0], 'xaxis.range[1]': range[1]})",
                    list(ZOOM)), page.wait_for_function(f"({zoomed})(document.getElementById('plot-loss'))")))
                drawn = page.evaluate("document.getElementById('plot-loss').data[0]")
                print(f"tracker ui in Chromium, zoomed into steps {ZOOM[0]:,}-{ZOOM[1]:,}: {took:.2f} s "
                      f"({len(drawn['x'])} points of that range; the spike "
                      f"{'is' if max(drawn['y']) == SPIKE else 'is NOT'} drawn)")
                browser.close()
            if args.omniboard:
                first, again, shown = time_omniboard(env)
                print(f"Omniboard runs page on the same store (Chromium): first run shown after {first:.2f} s the "
                      f"first time, {again:.2f} s on a reload ({shown} rows on the page)")
        finally:
            if ui is not None:
                os.killpg(ui.pid, 9)
                ui.wait()
            client.drop_database(db_name)


if __name__ == "__main__":
    main()
