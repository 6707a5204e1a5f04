"""What two of compat/'s patches save, each timed with and without it, in turn, in one run.

    python benchmarks/compat_savings.py [--repeat 7] [--runs 10000]

- compat.nx27017.encode_replies_with: nx-27017 building its reply to a listing of --runs runs, with its own
  copying conversion and with the project's encoder (localdb.nx_adapter), in this process;
- compat.pymongo.skip_exit_wait: a process that pings a local nx-27017 server (what `tracker db` serves), closes its
  client and exits, from the close to the exit, with pymongo's exit handler and without it.

Printed: the median seconds of each and their ratio.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from neosqlite.objectid import ObjectId as NeoObjectId
from nx_27017.wire_protocol import ResponseBuilder

from local_mongo import REPO_ROOT, mongo_server

sys.path.insert(0, str(REPO_ROOT))
import compat.nx27017
from localdb.nx_adapter import _cursor_id_as_int64, _encode_reply

EXIT_AFTER_CLOSE = """
import sys, time, pymongo
client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)
client.admin.command("ping")
client.close()
if sys.argv[2] == "skip":
    from compat.pymongo import skip_exit_wait
    skip_exit_wait()
print(time.time(), flush=True)
"""


def reply_seconds(listing):
    started = time.perf_counter()
    ResponseBuilder.build_op_msg_reply(1, 1, listing)
    return time.perf_counter() - started


def exit_seconds(url, how):
    """Seconds from the closing of a process's MongoDB client to the process's exit."""
    process = subprocess.Popen([sys.executable, "-c", EXIT_AFTER_CLOSE, url, how], stdout=subprocess.PIPE, text=True,
                               cwd=REPO_ROOT)
    closed = float(process.stdout.readline())
    process.wait(30)
    return time.time() - closed


def compared(label, first, second, names):
    print(f"{label}: {names[0]} {statistics.median(first):.4f} s, {names[1]} {statistics.median(second):.4f} s, "
          f"ratio {statistics.median(first) / statistics.median(second):.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()

    runs = [{"_id": NeoObjectId(), "config": {"lr": 0.1, "seed": seed}, "status": "COMPLETED", "result": 0.5}
            for seed in range(args.runs)]
    listing = {"ok": 1, "cursor": {"id": 0, "ns": "db.runs", "firstBatch": runs}}
    own = [reply_seconds(listing) for _ in range(args.repeat)]
    compat.nx27017.encode_replies_with(_encode_reply, _cursor_id_as_int64)  # from here on, in this process
    patched = [reply_seconds(listing) for _ in range(args.repeat)]
    compared(f"nx-27017's reply to a listing of {args.runs:,} runs", own, patched, ("its own", "patched"))

    with tempfile.TemporaryDirectory() as data_dir, mongo_server(None, data_dir) as (_, url):
        waited, skipped = [], []
        for _ in range(args.repeat):
            waited.append(exit_seconds(url, "wait"))
            skipped.append(exit_seconds(url, "skip"))
    compared("from a closed MongoDB client to the process's exit", waited, skipped,
             ("with pymongo's exit wait", "skipped"))


if __name__ == "__main__":
    main()
