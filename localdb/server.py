"""Runs nx-27017, a MongoDB wire-protocol server over SQLite, as a local run store without docker.

nx-27017 has no logins, so the store is kept private by the file system: its data folder is made owner-only, and it
listens on a Unix socket in that folder (runstore.settings.store_url), which only its user can open. With a TCP port
instead, every user of the machine can connect to 127.0.0.1.

One server per data folder: the server holds a lock on the folder's pid file while it serves, and the lock goes
with the process however it ends. A pid file that nobody holds locked was left by a server that died (`kill -9`,
a reboot), whatever process has that pid now.
"""
import argparse
import asyncio
import concurrent.futures
import fcntl
import functools
import logging
import os
import signal
import socket
import sys

from compat import nx27017

from localdb import nx_adapter
from localdb.integrity import check_store
from observers.startup import imports_done
from runstore.errors import UserError
from runstore.settings import STORE_SOCKET, create_tracker_folder, shown_url, store_url

HOST = "127.0.0.1"  # with a TCP port: this machine only
PID_FILE = "server.pid"  # in the data folder; locked while a server serves the folder
# nx-27017 answers each request in asyncio's default thread pool, which has 6 threads on 2 cores: requests waiting
# for one busy database (a sweep's parallel trials) would take them all and stall every other client, handshakes too.
REQUEST_THREADS = 64
SOCKET_PATH_MAX = 107  # bytes in a Unix socket's path on Linux (sun_path, less its terminating NUL)


def serve(data_dir, port=None, quiet=False):
    """Serve the databases kept in `data_dir` until interrupted: on its Unix socket, or on HOST:`port`."""
    data_dir = create_tracker_folder(data_dir).resolve()
    data_dir.chmod(0o700)  # the SQLite files, the log and the socket: the owner's only
    socket_path = data_dir / STORE_SOCKET
    if port is None and len(os.fsencode(socket_path)) > SOCKET_PATH_MAX:
        raise UserError(
            f"the store's socket {socket_path} is longer than the {SOCKET_PATH_MAX} bytes a Unix socket allows; "
            f"choose a shorter --data-dir, or serve TCP with --port (open to every user of this machine)"
        )
    if port is not None:
        check_port_free(port)
    pid_file = claim(data_dir)  # held until this process ends
    check_store(data_dir)  # after the claim: no other server writes the files while they are checked
    url = f"mongodb://localhost:{port}" if port else shown_url(store_url(data_dir))
    who = "every user of this machine can connect" if port else "only you can connect"
    ready = f"Serving the run store in {data_dir}/ at {url} ({who}; Ctrl-C to stop)"
    nx27017.serve_forever_with(functools.partial(_serve_forever, None if port else socket_path, ready))
    nx_adapter.install()
    imports_done()
    if quiet:
        logging.disable(logging.INFO)
    nx27017.run_server([
        "--data-dir", str(data_dir),
        "--host", HOST,
        "--port", str(port or 0),
        "--pid-file", pid_file.name,
        "--log-file", str(data_dir / "server.log"),
    ])


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


def claim(data_dir):
    """The data folder's pid file, opened and locked for this process, or UserError naming the server that holds it.

    A pid file left unlocked is stale: it is emptied with one line saying so, and nx-27017 writes this process's pid.
    """
    pid_file = open(data_dir / PID_FILE, "a+")
    try:
        fcntl.flock(pid_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid_file.seek(0)
        pid = pid_file.read().strip() or "starting"
        pid_file.close()
        raise UserError(
            f"the run store in {data_dir}/ is already served by process {pid}; use that one, or stop it "
            f"(Ctrl-C in its terminal, or 'kill {pid}') and start again"
        ) from None
    pid_file.seek(0)
    stale_pid = pid_file.read().strip()
    if stale_pid:
        print(f"Removed the stale pid file {pid_file.name}: process {stale_pid} is not serving this store "
              f"(it was stopped without cleaning up)", flush=True)
        pid_file.truncate(0)  # nx-27017 refuses to start while the pid in it belongs to a live process
        pid_file.flush()
    return pid_file


def _serve_forever(socket_path, ready, host, port, handler, use_threading=False):
    """Stands in for nx_27017.daemon.run_server_threaded (nx-27017 0.8.1), which listens on TCP only and tells no one
    when it is ready. nx-27017's connection handler serves any stream: here the owner-only socket at `socket_path`,
    or `host`:`port` when it is None; `ready` is printed once it listens (and the pid file is written)."""

    def connected(reader, writer):
        return nx27017.handle_client(reader, writer, handler)

    async def serve():
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="request"))
        if socket_path is None:
            server = await asyncio.start_server(connected, host, port)
        else:
            server = await asyncio.start_unix_server(connected, socket_path)
            socket_path.chmod(0o600)  # connecting needs write access to the socket: the owner's only, as its folder
        # Ctrl-C and SIGTERM end the loop between requests: nx-27017's own handlers raise SystemExit wherever the
        # main thread is, which can be inside a lock that the shutdown then waits on.
        stopped = asyncio.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(number, stopped.set)
        print(ready, flush=True)
        async with server:
            await stopped.wait()

    try:
        asyncio.run(serve())
    finally:
        if socket_path is not None:
            socket_path.unlink(missing_ok=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, help="serve TCP on 127.0.0.1:PORT instead of the data folder's socket")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    try:
        serve(args.data_dir, args.port, args.quiet)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
