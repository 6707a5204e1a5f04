"""A throwaway nx-27017 server (MongoDB's wire protocol over SQLite) for the benchmarks, as `tracker db` serves it."""
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymongo

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_server(data_dir):
    """(the server process, its URL), once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localdb.server", "--data-dir", data_dir, "--port", str(port), "--quiet"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"mongodb://127.0.0.1:{port}"
    for _ in range(300):
        try:
            pymongo.MongoClient(url, serverSelectionTimeoutMS=300).admin.command("ping")
            return process, url
        except pymongo.errors.PyMongoError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("local server did not start")


@contextlib.contextmanager
def mongo_server(url, data_dir):
    """(None, `url`) when a URL is given; otherwise (the process, the URL) of a local server with its data in
    `data_dir`, stopped at the end."""
    if url:
        yield None, url
        return
    process, url = start_local_server(data_dir)
    try:
        yield process, url
    finally:
        process.terminate()
        process.wait()
