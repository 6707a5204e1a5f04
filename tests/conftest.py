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

from runstore.layout import read_metric

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
            [sys.executable, "-m", "localdb.server", "--data-dir", str(self.data_dir),
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
                    raise RuntimeError(f"nx-27017 exited with {self.process.returncode}") from None
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

    def __init__(self, *args, cwd=REPO_ROOT, **env):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracker", *args], cwd=cwd, env=python_env(**env),
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


def start_board(mongo_url, db_name, *args, timeout_s=300, **env):
    """`tracker board` on a free port, with more `args` and `env`; returns the command and the URL it printed, less
    its token, which is kept as the command's `token` (None with a login).

    The timeout covers installing Omniboard on first use (about a minute); .ci/run installs it beforehand.
    """
    require_tool("node", "tracker board runs Omniboard with Node.js")
    board = TrackerCommand("board", "--port", str(free_port()), *args, MONGO_URL=mongo_url, SACRED_DB=db_name, **env)
    url, _, board.token = board.wait_for(r"open (http://\S+?)(\?token=(\S+))?(\s|$)", timeout_s).group(1, 2, 3)
    return board, url


def with_token(url, token):
    """`url` of a board with its token, as the user opens it."""
    return f"{url}{'&' if '?' in url else '?'}token={token}"


def python_env(**extra):
    """The environment for project subprocesses: this checkout first on the path, no stray .env settings, and no
    terminal size (pytest-xdist's workers set COLUMNS=80, which tables would fit), as for output into a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "SACRED_DB", "RUNS_DIR", "COLUMNS", "LINES")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    # One torch thread per process: tests run several at once on few cores (a run and its DataLoader workers, the
    # database server, sweep trials side by side), and torch's threads would wait for each other at every operation.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return {k: v for k, v in env.items() if extra.get(k, "") is not None}  # NAME=None leaves NAME out


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


def run_experiment(args, workdir, mongo_url, db_name, runs_dir=None, timeout=300, project=None, experiment="cifar",
                   **env):
    """Run experiments/<experiment>.py with `args` in a subprocess; return the CompletedProcess.

    `project`: run the code of that checkout (e.g. a `project_repo` copy) instead of this one.
    """
    if project is not None:
        env["PYTHONPATH"] = project
    script = Path(project or REPO_ROOT) / "experiments" / f"{experiment}.py"
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=workdir,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=runs_dir or Path(workdir) / "runs", **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def interrupt_at(pattern, args, workdir, mongo_url, db_name, project, experiment="cifar"):
    """Run an experiment like run_experiment and press Ctrl-C (SIGINT) once a line matches `pattern`.

    Returns (exit code, the whole output).
    """
    process = subprocess.Popen(
        [sys.executable, str(Path(project) / "experiments" / f"{experiment}.py"), *args],
        cwd=workdir, env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, PYTHONPATH=project),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    output = []
    for line in process.stdout:
        output.append(line)
        if re.match(pattern, line):
            process.send_signal(signal.SIGINT)
    returncode = process.wait()
    watchdog.cancel()
    return returncode, "".join(output)


def run_tracker(args, workdir, mongo_url, db_name, project=None, timeout=300, **env):
    """Run the `tracker` CLI (of `project`, default this checkout) in a subprocess; return the CompletedProcess."""
    if project is not None:
        env["PYTHONPATH"] = project
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        cwd=workdir,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=Path(workdir) / "runs", **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def git(*args, cwd):
    return subprocess.run(
        ["git", "-c", "user.name=tests", "-c", "user.email=tests@localhost", *args],
        cwd=cwd, check=True, capture_output=True, text=True, timeout=60,
    ).stdout


@pytest.fixture(scope="session")
def project_repo(tmp_path_factory):
    """This checkout's files, uncommitted changes included, as a fresh repository with one clean commit.

    Runs made from it have a clean git state (as in CI), whatever the state of the developer's checkout.
    """
    copy = tmp_path_factory.mktemp("project")
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT).split("\0")
    for name in filter(None, files):
        if (REPO_ROOT / name).is_file():  # deleted but not yet committed files are skipped
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, copy / name)
    git("init", "-q", cwd=copy)
    git("add", "-A", cwd=copy)
    git("commit", "-q", "-m", "the code under test", cwd=copy)
    return copy


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, mongo_url, workdir):
    """One `with smoke lr=0.01` run recorded in MongoDB, shared by the tests that only read it."""
    db_name = f"smoke_{uuid.uuid4().hex[:10]}"
    result = run_experiment(["with", "smoke", "lr=0.01", "-c", "smoke test"], workdir, mongo_url, db_name)
    assert result.returncode == 0, result.stdout + result.stderr
    client = pymongo.MongoClient(mongo_url)
    run = newest_run(client[db_name])
    yield {"db": client[db_name], "run": run, "process": result, "db_name": db_name}
    client.drop_database(db_name)
    client.close()


# A short `smoke` run with non-default values and the determinism switch on. Dropout makes resuming depend on
# the global RNG too; 500 training images in batches of 32 make the 24 steps cross an epoch boundary.
REFERENCE_ARGS = [
    "with", "smoke", "lr=0.02", "model.width=8", "model.dropout=0.1", "trainer.deterministic=True",
    "data.limit=500", "data.batch_size=32", "data.val_fraction=0.05",
    "trainer.steps=24", "trainer.val_every=8", "trainer.log_every=4", "trainer.print_every=4",
]


@pytest.fixture(scope="session")
def reference_run(project_repo, mongo_url, workdir):
    """One REFERENCE_ARGS run made from `project_repo`, recorded in MongoDB, for rerun and resume tests."""
    db_name = f"reference_{uuid.uuid4().hex[:10]}"
    result = run_experiment(REFERENCE_ARGS, workdir, mongo_url, db_name, project=project_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    client = pymongo.MongoClient(mongo_url)
    yield {"db": client[db_name], "db_name": db_name, "run": newest_run(client[db_name])}
    client.drop_database(db_name)
    client.close()


# Everything a run computes; the timing metrics (examples_per_s, time.*) differ between any two runs.
COMPUTED_METRICS = ("train.loss", "train.acc", "lr", "val.loss", "val.acc", "test.acc")


def newest_run(db):
    """The run with the highest id."""
    return db.runs.find_one(sort=[("_id", pymongo.DESCENDING)])


@pytest.fixture(scope="session")
def failed_file_store_run(project_repo, workdir, tmp_path_factory):
    """A run recorded in a file store (MongoDB unreachable) that failed before its first checkpoint."""
    runs_dir = tmp_path_factory.mktemp("file_store")
    result = run_experiment(["with", "smoke", "data.limit=10"], workdir, "mongodb://127.0.0.1:1", "unused",
                            runs_dir=runs_dir, project=project_repo)
    assert result.returncode == 1 and "data.batch_size=64 is larger" in result.stderr, result.stderr
    (folder,) = [path for path in runs_dir.iterdir() if path.name.isdigit()]
    return folder


def metric(db, run_id, name):
    """{step: value} of every point of a run's metric, as stored (exact float64)."""
    steps, values, _ = read_metric(db, run_id, name)
    return dict(zip(steps.tolist(), values.tolist()))
