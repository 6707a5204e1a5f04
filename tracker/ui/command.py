"""`tracker ui`: serve the project's own board (tracker.ui) until Ctrl-C."""
from __future__ import annotations

import secrets
import socket
import threading
from typing import TYPE_CHECKING

from runstore.errors import UserError
from runstore.settings import load_settings
from tracker.board import address_to_open, check_host, check_login, is_loopback

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

DEFAULT_PORT = 9100


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="browse the runs in the project's own board: table, run pages, compare, groups, sweeps (no Node.js)",
        description=(
            "Serve a board of the runs in MONGO_URL/SACRED_DB and RUNS_DIR (only RUNS_DIR when MongoDB does not "
            "answer) until Ctrl-C: the runs table, each run's page with live plots and output, comparisons, groups "
            "with confidence bands and sweeps. Open the URL it prints: its token keeps other users and other sites "
            "out. See docs/ui.md."
        ),
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only); any other needs BOARD_PASSWORD (and "
             "BOARD_USER, default sacred) in the environment or .env, as `tracker board`",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn  # here: the other commands start without it

    from tracker.ui.app import build_app
    from tracker.ui.store import Board

    settings = load_settings()
    check_host(args.host)
    check_login(settings, args.host)
    token = secrets.token_urlsafe(32)
    board = Board(settings)
    app = build_app(board, token, settings.board_user, settings.board_password, any_host=not is_loopback(args.host))
    # Bound before the URL is printed: a browser opening it at once finds the board listening.
    listening = _listen(args.host, args.port)
    login = f" and log in as {settings.board_user!r}" if settings.board_password else ""
    print(f"tracker ui shows {board.describe()}: open "
          f"http://{address_to_open(args.host)}:{args.port}/?token={token}{login}  (Ctrl-C to stop)", flush=True)
    # The run folders read while the browser opens: the first page then finds them read, as every later one does.
    threading.Thread(target=board.read_folders, name="read-run-folders", daemon=True).start()
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])
    except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has stopped serving: the usual way to stop
        pass
    finally:
        board.close()
    print("tracker ui stopped.")
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on `host`:`port`; UserError when the port is taken."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror or error}); "
                        f"choose another port, e.g. --port {port + 1}") from None
    listening.listen(128)
    return listening
