"""`tracker board`: Omniboard from its npm package (installed on first use) showing the runs in MONGO_URL/SACRED_DB."""
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from observers.choose import require_database
from observers.settings import load_settings, project_root
from observers.errors import UserError

OMNIBOARD_VERSION = "2.16.1"
INSTALL_DIR = Path(".tracker") / "omniboard" / OMNIBOARD_VERSION  # in the project root (observers.settings)
URL_PATH = "/sacred"  # Omniboard serves its UI here whatever the database is called
# Omniboard takes the next port when the asked one is busy, and says which one it took.
LISTENING = re.compile(r"Omniboard is listening on port (\d+)")
CONNECTED = "established successfully"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "board",
        help="browse the recorded runs in Omniboard (no docker needed)",
        description=(
            f"Run Omniboard {OMNIBOARD_VERSION} on the runs in MONGO_URL/SACRED_DB (environment or .env) until "
            f"Ctrl-C. Needs Node.js; the npm package is installed into {INSTALL_DIR}/ of the project root on first use."
        ),
    )
    parser.add_argument("--port", type=int, default=9000, help="port to serve on (default: 9000)")
    parser.add_argument(
        "--install", action="store_true",
        help="only install Omniboard (e.g. on a login node before going offline) and exit",
    )
    parser.set_defaults(func=run)


def require(tool):
    if shutil.which(tool) is None:
        raise UserError(
            f"'{tool}' was not found; Omniboard needs Node.js with npm: install it (e.g. 'sudo apt install nodejs "
            f"npm' or from https://nodejs.org) or use the docker stack ('docker compose up -d')"
        )


def installed_in():
    """INSTALL_DIR in the project root (observers.settings), wherever in the project the command runs."""
    return project_root() / INSTALL_DIR


def install():
    """Omniboard's start script, installed with npm into INSTALL_DIR unless it is already there."""
    install_dir = installed_in()
    start_script = install_dir / "node_modules" / "omniboard" / "dist" / "start.js"
    if start_script.is_file():
        return start_script
    require("npm")
    # Installed aside and renamed when complete, so an interrupted install is redone rather than used.
    partial = install_dir.with_name(install_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"Installing Omniboard {OMNIBOARD_VERSION} into {install_dir}/ (first use only, about a minute)...",
          flush=True)
    result = subprocess.run(
        ["npm", "install", "--prefix", str(partial), "--no-audit", "--no-fund", "--loglevel=error",
         f"omniboard@{OMNIBOARD_VERSION}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"npm could not install omniboard@{OMNIBOARD_VERSION} ({last_line}); "
            f"check access to the npm registry and run 'tracker board' again"
        )
    partial.rename(install_dir)
    return start_script


def omniboard_uri(settings):
    """MONGO_URL with SACRED_DB as its path: Omniboard takes the database to show from the URI."""
    parts = urlsplit(settings.mongo_url)
    query = parse_qsl(parts.query)
    auth_db = parts.path.strip("/")
    if auth_db and not any(key.lower() == "authsource" for key, _ in query):
        query.append(("authSource", auth_db))  # a database in MONGO_URL's path is where its user authenticates
    return urlunsplit(parts._replace(path="/" + settings.db_name, query=urlencode(query)))


def run(args):
    if args.install:
        install()
        print(f"Omniboard {OMNIBOARD_VERSION} is installed in {installed_in()}/; start it with 'tracker board'")
        return 0
    require("node")
    settings = load_settings()
    require_database(
        settings, "start it ('docker compose up -d', or 'tracker db' without docker) or point MONGO_URL in .env "
        "at a running server"
    ).client.close()
    start_script = install()
    return serve(start_script, settings, args.port)


def serve(start_script, settings, port):
    """Run Omniboard, echoing its output, until it exits or Ctrl-C (or `kill`) stops it."""
    password = urlsplit(settings.mongo_url).password
    env = {
        **os.environ,
        "MONGO_URI": omniboard_uri(settings),  # the environment, unlike --mu, keeps the password out of `ps`
        "PORT": str(port),
        "NODE_NO_WARNINGS": "1",  # hides the MongoDB driver's deprecation notices
    }
    process = subprocess.Popen(
        ["node", str(start_script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    )
    stop_signals = []

    def stop(signum, frame):
        # Omniboard's exit ends its output, and with it the loop below.
        stop_signals.append(signum)
        process.terminate()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    served_port = None
    for line in process.stdout:
        print(line.replace(password, "***") if password else line, end="", flush=True)
        listening = LISTENING.search(line)
        if listening:
            served_port = int(listening[1])
        if CONNECTED in line and served_port:
            print(
                f"Omniboard shows database {settings.db_name!r} of {settings.safe_url}: "
                f"open http://localhost:{served_port}{URL_PATH}  (Ctrl-C to stop)",
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
