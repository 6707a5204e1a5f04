"""`tracker db`: a local MongoDB-compatible run store (nx-27017 over SQLite) for machines without docker."""
import socket
from pathlib import Path

from observers.errors import UserError
from observers.settings import TRACKER_DIR, project_root

DEFAULT_DATA_DIR = Path(TRACKER_DIR) / "db"  # in the project root (observers.settings)
HOST = "127.0.0.1"  # local only: the store has no authentication


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "db",
        help="serve a local MongoDB-compatible run store (no docker needed)",
        description=(
            "Serve a MongoDB-compatible run store (nx-27017, data in SQLite files) in the foreground until "
            "Ctrl-C. Experiments record into it with MONGO_URL=mongodb://localhost:PORT; 'tracker board' shows it."
        ),
    )
    parser.add_argument("--port", type=int, default=27017, help="port to listen on (default: 27017)")
    parser.add_argument(
        "--data-dir", type=Path, help=f"where the data is kept (default: {DEFAULT_DATA_DIR} in the project root)"
    )
    parser.set_defaults(func=run)


def check_port_free(port):
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will, so TIME_WAIT doesn't count
        try:
            probe.bind((HOST, port))
        except OSError:
            raise UserError(
                f"port {port} is already in use (another MongoDB or 'tracker db'?); "
                f"stop it or choose another port with --port"
            ) from None


def run(args):
    check_port_free(args.port)
    data_dir = args.data_dir or project_root() / DEFAULT_DATA_DIR
    print(f"Serving the run store in {data_dir}/ at mongodb://localhost:{args.port} (Ctrl-C to stop)", flush=True)
    from observers.local_server import serve  # here: only this command needs nx-27017

    try:
        serve(data_dir, host=HOST, port=args.port, quiet=True)
    except SystemExit as stopped:  # nx-27017 exits with status 0 on Ctrl-C and SIGTERM
        if stopped.code:
            raise
    print(f"Stopped the run store at mongodb://localhost:{args.port}; its data stays in {data_dir}/", flush=True)
    return 0
