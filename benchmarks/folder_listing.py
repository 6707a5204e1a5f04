"""How fast a file store of many run folders is listed, with no database: the listing as it reads each folder (run.json,
config.json, info.json and the summaries run.json records) beside the whole read of each folder that it replaced (what
`tracker sync` reads, runstore.local_run.LocalRun.load), a listing again by the same FolderStore (which reads only the
folders that changed), and `tracker ui`'s first screen of that store.

    python benchmarks/folder_listing.py [--folders 10000]

One tiny run of experiments/cifar.py is recorded in a temporary RUNS_DIR; the other folders are copies of it with their
own lr (their JSON and text files copied, their artifacts hard links). Times are wall-clock seconds, in this process
after one warm-up listing (the listings: the median of 5), except the first screen: from the request to the answer of a
running `tracker ui`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from local_mongo import REPO_ROOT
from ui_speed import seconds, start_ui

sys.path.insert(0, str(REPO_ROOT))
from runstore.local_run import LocalRun, run_folders
from runstore.query import waiting_rows
from runstore.run_store import FolderStore

NO_DATABASE = "mongodb://127.0.0.1:1"
REPEAT = 5  # listings timed, each by a new FolderStore: this machine's file cache makes them vary
TINY_RUN = ["with", "smoke", "trainer.steps=200", "trainer.val_every=50", "trainer.log_every=5", "data.limit=1000"]


def copies(first: Path, count: int) -> None:
    """`count` - 1 copies of the run folder `first` beside it, numbered after it, each with its own lr."""
    for number in range(2, count + 1):
        folder = first.parent / str(number)
        shutil.copytree(first, folder, copy_function=lambda source, target: (
            shutil.copy2(source, target) if source.endswith((".json", ".txt")) else os.link(source, target)))
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "lr": number / 1e5}))


def described(times: list[float]) -> str:
    return f"median of {len(times)}: {', '.join(f'{took:.2f}' for took in times)}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        runs_dir = Path(workdir) / "runs"
        env = {**os.environ, "MONGO_URL": NO_DATABASE, "SACRED_DB": "unused", "RUNS_DIR": str(runs_dir),
               "PYTHONPATH": str(REPO_ROOT)}
        subprocess.run([sys.executable, str(REPO_ROOT / "experiments" / "cifar.py"), *TINY_RUN], cwd=workdir, env=env,
                       capture_output=True, check=True)
        took, _ = seconds(lambda: copies(run_folders(runs_dir)[0], args.folders))
        print(f"{args.folders:,} run folders of a tiny cifar run made in {took:.1f} s")
        waiting_rows(None, FolderStore(runs_dir))  # imports and the page cache warm
        times = [seconds(lambda: FolderStore(runs_dir).listings())[0] for _ in range(REPEAT)]
        print(f"the store's listing (FolderStore.listings, a Listing per run folder) by a new FolderStore: "
              f"{statistics.median(times):.2f} s ({described(times)})")
        times = [seconds(lambda: waiting_rows(None, FolderStore(runs_dir)))[0] for _ in range(REPEAT)]
        listed = statistics.median(times)
        print(f"the listing with a row per run folder (what tracker runs prints) by a new FolderStore: {listed:.2f} s "
              f"({described(times)})")
        store = FolderStore(runs_dir)  # as `tracker ui` keeps one
        waiting_rows(None, store)
        again, _ = seconds(lambda: waiting_rows(None, store))
        print(f"the same store listed again, nothing changed (as tracker ui lists it on each page): {again:.2f} s")
        loaded, _ = seconds(lambda: [LocalRun.load(folder) for folder in run_folders(runs_dir)])
        print(f"reading every folder whole, as the listing did before (LocalRun.load): {loaded:.2f} s, "
              f"{loaded / listed:.1f}x the listing")
        ui, address = start_ui(env)
        try:
            base, token = address.split("?token=")
            request = urllib.request.Request(base, headers={"Cookie": f"tracker_ui_token={token}"})
            began = time.perf_counter()
            urllib.request.urlopen(request).read()
            print(f"tracker ui's first screen of the store, asked for as soon as it printed its URL: answered "
                  f"{time.perf_counter() - began:.2f} s later (it reads the folders as it starts)")
            answers = [seconds(lambda: urllib.request.urlopen(request).read())[0] for _ in range(3)]
            print(f"tracker ui's first screen again: the server's answer in {min(answers):.2f} s (the least of 3)")
        finally:
            os.killpg(ui.pid, 9)
            ui.wait()


if __name__ == "__main__":
    main()
