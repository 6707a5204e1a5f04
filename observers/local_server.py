"""Runs nx-27017, a MongoDB wire-protocol server over SQLite, as a local run store without docker."""
import argparse
import logging
import sys

from nx_27017.nx_27017 import main as nx_main

from observers import imports_done, nx_adapter
from observers.settings import create_tracker_folder


def serve(data_dir, host="127.0.0.1", port=27017, quiet=False):
    """Serve the databases kept in `data_dir` until interrupted."""
    data_dir = create_tracker_folder(data_dir)
    sys.argv = [
        "nx-27017",
        "--data-dir", str(data_dir),
        "--host", host,
        "--port", str(port),
        "--pid-file", str(data_dir / f"server-{port}.pid"),
        "--log-file", str(data_dir / "server.log"),
    ]
    nx_adapter.install()
    imports_done()
    if quiet:
        logging.disable(logging.INFO)
    nx_main()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    serve(args.data_dir, args.host, args.port, args.quiet)
