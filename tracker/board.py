"""`tracker board`: Omniboard from its npm package (installed on first use) showing the runs in MONGO_URL/SACRED_DB."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pymongo.errors import PyMongoError

from runstore.database import connect, require_database
from runstore.settings import STORE_DIR, load_settings, project_root, store_url
from runstore.errors import UserError
from runstore.shell import last_line
from tracker.board_columns import browser_defaults, listed_runs, stored_columns, write_first_screen
from tracker.sync import find_run_dirs, sync_runs

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse
    import types

    from runstore.settings import Settings

OMNIBOARD_VERSION = "2.16.1"
URL_PATH = "/sacred"  # Omniboard serves its UI here whatever the database is called
# Runs Omniboard behind the board's safeguards (listening address, login, no cross-site use); see its header.
GUARD_SCRIPT = Path(__file__).with_name("omniboard.js")
DEFAULT_HOST = "127.0.0.1"
STORE_START_S = 30  # how long the embedded store may take to answer
LOCAL_HOSTS = ("localhost", "127.0.0.1")
# Omniboard takes the next port when the asked one is busy, and says which one it took.
LISTENING = re.compile(r"Omniboard is listening on port (\d+)")
CONNECTED = "established successfully"


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "board",
        help="browse the recorded runs in Omniboard (no docker needed)",
        description=(
            f"Run Omniboard {OMNIBOARD_VERSION} on the runs in MONGO_URL/SACRED_DB (environment or .env) until "
            f"Ctrl-C. Needs Node.js; the npm package is installed once per user, into "
            f"$XDG_CACHE_HOME/sacred-tracker/omniboard/ (default ~/.cache/...), on first use."
        ),
    )
    parser.add_argument("--port", type=int, default=9000, help="port to serve on (default: 9000)")
    parser.add_argument(
        "--host", default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}, this machine only); any other, e.g. 0.0.0.0 for "
             "every address, needs a login: BOARD_PASSWORD (and BOARD_USER, default sacred) in the environment or "
             ".env (when set, the board asks for it on 127.0.0.1 too; without it, the URL printed holds a token "
             "that the board asks for)",
    )
    parser.add_argument(
        "--install", action="store_true",
        help="only install Omniboard (e.g. on a login node before going offline) and exit",
    )
    parser.add_argument(
        "--configure", action="store_true",
        help="only store Omniboard's first-screen columns (differing config keys, each experiment's best score) in "
             "the database, beside the columns of your own, and exit (for the docker stack's Omniboard)",
    )
    parser.set_defaults(func=run)


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise UserError(
            f"'{tool}' was not found; Omniboard needs Node.js with npm: install it (e.g. 'sudo apt install nodejs "
            f"npm' or from https://nodejs.org) or use the docker stack ('docker compose up -d')"
        )


def installed_in() -> Path:
    """Where Omniboard is installed: once per user, in the user's cache (XDG_CACHE_HOME, default ~/.cache)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sacred-tracker" / "omniboard" / OMNIBOARD_VERSION


def install() -> Path:
    """Omniboard's start script, installed with npm into INSTALL_DIR unless it is already there."""
    install_dir = installed_in()
    start_script = install_dir / "node_modules" / "omniboard" / "dist" / "start.js"
    if start_script.is_file():
        return start_script
    require("npm")
    # Installed aside and renamed when complete, so an interrupted install is redone rather than used.
    install_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = install_dir.parent / (install_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"Installing Omniboard {OMNIBOARD_VERSION} into {install_dir}/ (once per user, about a minute)...",
          flush=True)
    result = subprocess.run(
        ["npm", "install", "--prefix", str(partial), "--no-audit", "--no-fund", "--loglevel=error",
         f"omniboard@{OMNIBOARD_VERSION}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise UserError(
            f"npm could not install omniboard@{OMNIBOARD_VERSION} ({last_line(result.stderr)}); "
            f"check access to the npm registry and run 'tracker board' again"
        )
    partial.rename(install_dir)
    return start_script


def omniboard_uri(settings: Settings) -> str:
    """MONGO_URL with SACRED_DB as its path: Omniboard takes the database to show from the URI."""
    parts = urlsplit(settings.mongo_url)
    query = parse_qsl(parts.query)
    auth_db = parts.path.strip("/")
    if auth_db and not any(key.lower() == "authsource" for key, _ in query):
        query.append(("authSource", auth_db))  # a database in MONGO_URL's path is where its user authenticates
    return urlunsplit((parts.scheme, parts.netloc, "/" + settings.db_name, urlencode(query), parts.fragment))


def run(args: argparse.Namespace) -> int:
    if args.install:
        install()
        print(f"Omniboard {OMNIBOARD_VERSION} is installed in {installed_in()}/; start it with 'tracker board'")
        return 0
    settings = load_settings()
    if args.configure:
        configure(settings)
        return 0
    check_host(args.host)
    check_login(settings, args.host)
    require("node")
    client = connect(settings)
    store = None
    if client is None and embeddable(settings.mongo_url):
        store = start_store(settings)
    elif client is None:
        require_database(
            settings, "start it ('docker compose up -d', or 'tracker db' without docker) or point MONGO_URL in .env "
            "at a running server"
        )
    else:
        client.close()
        print(f"Showing database {settings.db_name!r} of the MongoDB at {settings.safe_url}", flush=True)
    try:
        start_script = install()
        with tempfile.NamedTemporaryFile("w", prefix="tracker-board-", suffix=".json") as first_screen:
            json.dump(configure(settings, warn=True), first_screen)
            first_screen.flush()
            return serve(start_script, settings, args.host, args.port, first_screen.name)
    finally:
        if store is not None:
            stop_store(store)


def configure(settings: Settings, warn: bool = False) -> dict[str, Any]:
    """Omniboard's first screen: its columns stored in SACRED_DB beside the user's own (tracker.board_columns);
    returns the browser's defaults for them. With `warn`, a store that refuses the columns is one warning line (the
    board works without them); otherwise an error."""
    db = require_database(settings, "start it ('docker compose up -d' or 'tracker db') and run this again")
    try:
        runs = listed_runs(db)
        try:
            print(write_first_screen(db, runs), flush=True)
            columns = stored_columns(db)
        except PyMongoError as error:
            problem = f"the database refused Omniboard's first-screen columns ({one_line(error)})"
            if not warn:
                raise UserError(f"{problem}; check that MONGO_URL's user may write to {settings.db_name!r}") from None
            print(f"WARNING: {problem}; the board starts without them", file=sys.stderr, flush=True)
            columns = [], []
        return browser_defaults(runs, *columns)
    finally:
        db.client.close()


def one_line(error: Exception) -> str:
    """A database error's message without the reply that pymongo appends to it."""
    return str(error).split(", full error:")[0]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def check_host(host: str) -> None:
    """UserError unless this machine can listen on `host`."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.bind((host, 0))
    except OSError as error:
        raise UserError(
            f"cannot listen on --host {host} ({error.strerror or error}); use an address of this machine, "
            f"e.g. 0.0.0.0 for all of them"
        ) from None


def check_login(settings: Settings, host: str) -> None:
    """UserError unless the board's login (BOARD_USER, BOARD_PASSWORD) is usable, and set when `host` needs one."""
    if ":" in settings.board_user:
        raise UserError(f"BOARD_USER {settings.board_user!r} has a ':', which a login name cannot have; "
                        f"choose another in .env")
    if not settings.board_password and not is_loopback(host):
        raise UserError(
            f"--host {host} lets other machines reach the board, so it needs a login: set BOARD_PASSWORD (and "
            f"BOARD_USER, default sacred) in .env or the environment, not on the command line"
        )


def embeddable(mongo_url: str) -> bool:
    """Whether `tracker board` may start the embedded store for `mongo_url`: the project's own store (the default
    MONGO_URL), or a port of this machine without a login."""
    parts = urlsplit(mongo_url)
    return mongo_url == project_store_url() or (
        parts.scheme == "mongodb" and parts.hostname in LOCAL_HOSTS and not parts.username
    )


def project_store_url() -> str:
    return store_url(project_root() / STORE_DIR)


def start_store(settings: Settings) -> subprocess.Popen[bytes]:
    """The embedded run store (as `tracker db`) serving MONGO_URL, with the runs waiting in RUNS_DIR uploaded."""
    data_dir = project_root() / STORE_DIR
    print(
        f"Nothing answers at {settings.safe_url}: starting the embedded run store ('tracker db', data in "
        f"{data_dir}/) there; it stops with Omniboard", flush=True,
    )
    port = urlsplit(settings.mongo_url).port or 27017
    listen = [] if settings.mongo_url == project_store_url() else ["--port", str(port)]
    store = subprocess.Popen(
        [sys.executable, "-m", "localdb.server", "--data-dir", str(data_dir), *listen, "--quiet"],
        start_new_session=True,  # a Ctrl-C stops Omniboard first and then the store, which Omniboard was using
    )
    deadline = time.monotonic() + STORE_START_S
    while (client := connect(settings, timeout_s=1)) is None:
        if store.poll() is not None or time.monotonic() > deadline:
            stop_store(store)
            raise UserError(
                f"the embedded run store did not start at {settings.safe_url}; run 'tracker db' to see why"
            )
        time.sleep(0.2)
    run_dirs = find_run_dirs([settings.runs_dir]) if settings.runs_dir.is_dir() else []
    if run_dirs:
        print(f"Uploading the runs waiting in {settings.runs_dir}/:", flush=True)
        sync_runs(client[settings.db_name], run_dirs)
    client.close()
    print(f"Showing database {settings.db_name!r} of the embedded run store at {settings.safe_url}", flush=True)
    return store


def stop_store(store: subprocess.Popen[bytes]) -> None:
    if store.poll() is None:
        store.terminate()
    try:
        store.wait(10)
    except subprocess.TimeoutExpired:
        store.kill()
        store.wait()
    print("Run store stopped.", flush=True)


def serve(start_script: Path, settings: Settings, host: str, port: int, first_screen: str) -> int:
    """Run Omniboard, echoing its output, until it exits or Ctrl-C (or `kill`) stops it."""
    # Without a login, a token made for this start (as Jupyter's) is what lets the user, and only the user, in.
    token = "" if settings.board_password else secrets.token_urlsafe(32)
    # Omniboard logs each request's URL, the first one with the token, to output often kept in a file.
    hidden = [secret for secret in (urlsplit(settings.mongo_url).password, settings.board_password, token) if secret]
    # The environment, unlike Omniboard's options (--mu, -u), keeps the passwords and the token out of `ps`.
    env = {
        **os.environ,
        "MONGO_URI": omniboard_uri(settings),
        "PORT": str(port),
        "BOARD_HOST": host,
        "BOARD_USER": settings.board_user,
        "BOARD_PASSWORD": settings.board_password,
        "BOARD_TOKEN": token,
        "BOARD_FIRST_SCREEN": first_screen,
        "NODE_NO_WARNINGS": "1",  # hides the MongoDB driver's deprecation notices
    }
    process = subprocess.Popen(
        ["node", str(GUARD_SCRIPT), str(start_script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    )
    stop_signals = []

    def stop(signum: int, frame: types.FrameType | None) -> None:
        # Omniboard's exit ends its output, and with it the loop below.
        stop_signals.append(signum)
        process.terminate()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    served_port = None
    assert process.stdout is not None  # stdout=PIPE
    for line in process.stdout:
        for secret in hidden:
            line = line.replace(secret, "***")
        print(line, end="", flush=True)
        listening = LISTENING.search(line)
        if listening:
            served_port = int(listening[1])
        if CONNECTED in line and served_port:
            print(
                f"Omniboard shows database {settings.db_name!r} of {settings.safe_url}: "
                f"open http://{address_to_open(host)}:{served_port}{URL_PATH}{login_note(settings, token)}  "
                f"(Ctrl-C to stop)",
                flush=True,
            )
    returncode = process.wait()
    # A Ctrl-C in a terminal, or a `kill` of the process group, may reach Omniboard before this process.
    if stop_signals or returncode in (-signal.SIGINT, -signal.SIGTERM):
        print("Omniboard stopped.")
        return 0
    raise UserError(
        f"Omniboard exited with code {returncode} (its output is above); check that MONGO_URL points at "
        f"MongoDB 5.0 or older or at 'tracker db'"
    )


def address_to_open(host: str) -> str:
    if is_loopback(host):
        return "localhost"
    return socket.gethostname() if host in ("0.0.0.0", "::") else host  # every address: this machine's name


def login_note(settings: Settings, token: str) -> str:
    return f" and log in as {settings.board_user!r}" if settings.board_password else f"?token={token}"
