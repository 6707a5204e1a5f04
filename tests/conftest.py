"""Fixtures: a real MongoDB-compatible server, isolated databases, and experiment runs in subprocesses.

The server is TEST_MONGO_URL when set (e.g. the compose stack's mongod); otherwise nx-27017
(MongoDB's wire protocol over SQLite) is started on a free port for the test session.
"""
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pymongo
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO_ROOT / "experiments" / "cifar.py"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalMongoServer:
    """nx-27017 in a subprocess, through the project's own launcher; can be killed and restarted in place."""

    def __init__(self, data_dir, port=None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout_s=20):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "observers.local_server", "--data-dir", str(self.data_dir),
             "--port", str(self.port), "--quiet"],
            cwd=REPO_ROOT, env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                pymongo.MongoClient(self.url, serverSelectionTimeoutMS=500).admin.command("ping")
                return self
            except pymongo.errors.PyMongoError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"nx-27017 exited with {self.process.returncode}")
                time.sleep(0.2)
        raise RuntimeError(f"nx-27017 did not answer on port {self.port} within {timeout_s}s")

    def kill(self):
        """Stop abruptly, as a crash or a pulled cable would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class TrackerCommand:
    """`tracker <args>` in its own process group, its output collected by a thread so that waits can time out."""

    def __init__(self, *args, **env):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracker", *args], cwd=REPO_ROOT, env=python_env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.output = []
        self._lines = queue.Queue()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern, timeout_s):
        """The first match of `pattern` in a line of the output; fails when the command ends or time is up."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} within {timeout_s}s; output:\n{''.join(self.output)}") from None
            if line is None:
                raise AssertionError(f"exited before {pattern!r}; output:\n{''.join(self.output)}")
            match = re.search(pattern, line)
            if match:
                return match

    def interrupt(self, timeout_s=20):
        """Press Ctrl-C; return the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout_s)

    def kill(self):
        """Stop whatever is left of the process group: the command and what it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # all of it has exited
        self.process.wait()


def require_tool(path_or_name, why):
    """Skip when a tool is missing locally; fail in CI, where .ci/run installs everything."""
    if shutil.which(path_or_name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{path_or_name} is missing in CI; .ci/run installs it ({why})")
        pytest.skip(f"{path_or_name} is not installed ({why})")


def start_board(mongo_url, db_name, timeout_s=300):
    """`tracker board` on a free port; returns the command and the URL it printed.

    The timeout covers installing Omniboard on first use (about a minute); .ci/run installs it beforehand.
    """
    require_tool("node", "tracker board runs Omniboard with Node.js")
    board = TrackerCommand("board", "--port", str(free_port()), MONGO_URL=mongo_url, SACRED_DB=db_name)
    return board, board.wait_for(r"open (http://\S+)", timeout_s)[1]


def python_env(**extra):
    """The environment for project subprocesses: this checkout first on the path, no stray .env settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "SACRED_DB", "RUNS_DIR")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory):
    """URL of a MongoDB-compatible server for the whole session."""
    if os.environ.get("TEST_MONGO_URL"):
        yield os.environ["TEST_MONGO_URL"]
        return
    server = LocalMongoServer(tmp_path_factory.mktemp("mongo")).start()
    yield server.url
    server.stop()


@pytest.fixture
def db_name():
    """A fresh database name per test, so tests never see each other's runs."""
    return f"test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mongo_db(mongo_url, db_name):
    client = pymongo.MongoClient(mongo_url)
    yield client[db_name]
    client.drop_database(db_name)
    client.close()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """Working directory for experiment subprocesses; the generated dataset in data/ is shared by all tests."""
    return tmp_path_factory.mktemp("work")


def run_experiment(args, workdir, mongo_url, db_name, runs_dir=None, timeout=300, **env):
    """Run experiments/cifar.py with `args` in a subprocess; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(EXPERIMENT), *args],
        cwd=workdir,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=runs_dir or Path(workdir) / "runs", **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, mongo_url, workdir):
    """One `with smoke lr=0.01` run recorded in MongoDB, shared by the tests that only read it."""
    db_name = f"smoke_{uuid.uuid4().hex[:10]}"
    result = run_experiment(["with", "smoke", "lr=0.01", "-c", "smoke test"], workdir, mongo_url, db_name)
    assert result.returncode == 0, result.stdout + result.stderr
    client = pymongo.MongoClient(mongo_url)
    run = client[db_name].runs.find_one(sort=[("_id", -1)])
    yield {"db": client[db_name], "run": run, "process": result, "db_name": db_name}
    client.drop_database(db_name)
    client.close()
