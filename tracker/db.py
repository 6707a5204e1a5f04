"""`tracker db`: a local MongoDB-compatible run store (nx-27017 over SQLite) for machines without docker."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runstore.settings import STORE_DIR, STORE_SOCKET, project_root, shown_url, store_url

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "db",
        help="serve a local MongoDB-compatible run store, private to you (no docker needed)",
        description=(
            "Serve a MongoDB-compatible run store (nx-27017, data in SQLite files) in the foreground until "
            f"Ctrl-C. It listens on the Unix socket {STORE_SOCKET} in its data folder, which only you can open; "
            "the project's experiments, 'tracker runs' and 'tracker board' find it when MONGO_URL is not set. "
            "It is one user's store: a team shares a MongoDB with logins (the docker compose stack)."
        ),
    )
    parser.add_argument(
        "--port", type=int,
        help="listen on 127.0.0.1:PORT instead of the socket (then set MONGO_URL=mongodb://localhost:PORT); every "
             "user of this machine can connect to it",
    )
    parser.add_argument(
        "--data-dir", type=Path, help=f"where the data is kept (default: {STORE_DIR} in the project root)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from localdb.server import serve  # here: only this command needs nx-27017

    data_dir = args.data_dir or project_root() / STORE_DIR
    try:
        serve(data_dir, port=args.port, quiet=True)
    except (SystemExit, KeyboardInterrupt) as stopped:  # nx-27017 exits with status 0 on Ctrl-C and SIGTERM
        if isinstance(stopped, SystemExit) and stopped.code:
            raise
    url = f"mongodb://localhost:{args.port}" if args.port else shown_url(store_url(data_dir))
    print(f"Stopped the run store at {url}; its data stays in {data_dir}/", flush=True)
    return 0
