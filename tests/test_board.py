"""`tracker db` and `tracker board` as a user runs them: serving, stopping on Ctrl-C, and one-line errors."""
import json
import random
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pymongo
import pytest

from conftest import (REPO_ROOT, TrackerCommand, free_port, git, python_env, require_tool, run_experiment,
                      run_tracker, start_board, with_token)
from runstore.settings import STORE_DIR, Settings
from tracker.board import OMNIBOARD_VERSION, installed_in, omniboard_uri

TINY_ARGS = ["with", "smoke", "trainer.steps=20", "trainer.val_every=10", "data.limit=1000"]

def tracker(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], cwd=REPO_ROOT, env=python_env(**env),
        capture_output=True, text=True, timeout=60,
    )


def serving(repository, port, runs):
    """`tracker db --port PORT` started in a new git `repository`, serving once `runs` are in its sacred.runs."""
    git("init", "-q", cwd=repository)
    store = TrackerCommand("db", "--port", str(port), cwd=repository)
    try:
        store.wait_for(rf"mongodb://localhost:{port}", timeout_s=30)
        client = pymongo.MongoClient(f"mongodb://localhost:{port}", serverSelectionTimeoutMS=10_000)
        client.sacred.runs.insert_many(runs)
        client.close()
    except BaseException:
        store.kill()
        raise
    return store


def test_db_serves_a_store_that_keeps_its_data_and_stops_on_ctrl_c(tmp_path):
    """In a user's own repository: its data in .tracker/db/, which git does not see."""
    port = free_port()
    store = serving(tmp_path, port, [{"_id": 1, "status": "COMPLETED"}])
    try:
        assert store.interrupt() == 0
        store.wait_for(rf"^Stopped the run store at mongodb://localhost:{port}; its data stays in "
                       rf"{re.escape(str(tmp_path / STORE_DIR))}/$", timeout_s=5)
        assert list((tmp_path / STORE_DIR).glob("sacred*")), "no data files in the data directory"
        assert git("status", "--porcelain", "--untracked-files=all", cwd=tmp_path) == ""
    finally:
        store.kill()


def test_db_refuses_a_damaged_store_in_one_line_and_salvages_what_it_can_read(tmp_path):
    """The probe: 20 random pages written into .tracker/db/sacred.db; the store is not served, the damaged file stays
    as it was, and the readable rows are in a copy that the line says how to swap in."""
    port = free_port()
    store = serving(tmp_path, port, [{"_id": i, "status": "COMPLETED", "captured_out": "x" * 2000} for i in range(200)])
    try:
        assert store.interrupt() == 0
    finally:
        store.kill()
    damaged = tmp_path / STORE_DIR / "sacred.db"
    page_size = int.from_bytes(damaged.read_bytes()[16:18], "big")
    pages = damaged.stat().st_size // page_size
    noise = random.Random(27)
    with open(damaged, "r+b") as file:
        for page in noise.sample(range(1, pages), 20):  # the first page aside: its header names the page size
            file.seek(page * page_size)
            file.write(noise.randbytes(page_size))
    before = damaged.read_bytes()

    result = subprocess.run([sys.executable, "-m", "tracker", "db", "--port", str(port)], cwd=tmp_path,
                            env=python_env(), capture_output=True, text=True, timeout=60)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Serving" not in result.stdout
    copy = damaged.with_name("sacred.db.recovered")
    aside = damaged.with_name("damaged-sacred.db")
    line = re.fullmatch(rf"error: the run store's file {re.escape(str(damaged))} is damaged \(SQLite[^)]*\), so it "
                        rf"was not served; the (\d+) rows that could be read are in {re.escape(str(copy))}: use them "
                        rf"with `mkdir {re.escape(str(aside))} && mv {re.escape(str(damaged))} (.*) && mv "
                        rf"{re.escape(str(copy))} {re.escape(str(damaged))}`, then run tracker db again\n",
                        result.stderr)
    assert line, result.stderr
    assert damaged.read_bytes() == before
    with sqlite3.connect(copy) as salvaged:
        assert salvaged.execute("PRAGMA quick_check").fetchone() == ("ok",)


def test_db_on_a_busy_port_is_a_one_line_error(mongo_url):
    port = mongo_url.rsplit(":", 1)[1]
    result = tracker("db", "--port", port)
    assert result.returncode == 1
    assert result.stderr == f"error: port {port} is already in use (another MongoDB or 'tracker db'?); " \
                            f"stop it or choose another port with --port\n"


def test_board_with_an_unreachable_database_is_a_one_line_error():
    require_tool("node", "the database is checked after node")
    # Another machine's address (127.0.0.2 refuses at once): the embedded store is started only for this machine.
    result = tracker("board", MONGO_URL=f"mongodb://127.0.0.2:{free_port()}", SACRED_DB="sacred")
    assert result.returncode == 1
    assert result.stderr.startswith("error: MongoDB at mongodb://127.0.0.2:")
    assert "is unreachable; start it ('docker compose up -d', or 'tracker db'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_credentials_for_a_store_without_logins_are_a_one_line_error(mongo_url):
    """.env copied from .env.example (the docker stack's login) while `tracker db` serves the runs."""
    password = uuid.uuid4().hex  # generated: no password is written in tracked files
    with_login = mongo_url.replace("mongodb://", f"mongodb://sacred:{password}@") + "/?authSource=admin"
    result = tracker("board", MONGO_URL=with_login)
    assert result.returncode == 1
    assert result.stderr.startswith("error: MongoDB at mongodb://sacred:***@")
    assert "does not support logging in (is it 'tracker db'?); remove user:password from MONGO_URL" in result.stderr
    assert result.stderr.count("\n") == 1 and password not in result.stderr


@pytest.mark.parametrize("mongo_url, expected", [
    ("mongodb://localhost:27017", "mongodb://localhost:27017/runs_db"),
    ("mongodb://{login}@localhost:27017/?authSource=admin", "mongodb://{login}@localhost:27017/runs_db?authSource=admin"),
    # The database in MONGO_URL's path is where the user logs in; Omniboard's path is the one to show.
    ("mongodb://{login}@db.example.org/admin", "mongodb://{login}@db.example.org/runs_db?authSource=admin"),
])
def test_board_gives_omniboard_the_database_to_show_and_where_to_log_in(mongo_url, expected):
    login = f"someone:{uuid.uuid4().hex}"
    settings = Settings(mongo_url.format(login=login), "runs_db", Path("runs"))
    assert omniboard_uri(settings) == expected.format(login=login)


def test_board_without_node_is_a_one_line_error(mongo_url, tmp_path):
    result = tracker("board", MONGO_URL=mongo_url, PATH=str(tmp_path))  # an empty PATH: no node, no npm
    assert result.returncode == 1
    assert result.stderr.startswith("error: 'node' was not found; Omniboard needs Node.js with npm: install it")
    assert result.stderr.count("\n") == 1


def test_omniboard_is_installed_once_per_user_in_the_cache_whatever_the_project(tmp_path):
    start_script = installed_in() / "node_modules" / "omniboard" / "dist" / "start.js"
    assert start_script.is_file(), "install Omniboard first: tracker board --install (.ci/run does)"
    cache = tmp_path / "cache"  # XDG_CACHE_HOME: this user's cache, holding this machine's install
    in_cache = cache / "sacred-tracker" / "omniboard" / OMNIBOARD_VERSION
    in_cache.parent.mkdir(parents=True)
    in_cache.symlink_to(installed_in())
    other_project = tmp_path / "other"
    git("init", "-q", str(other_project), cwd=tmp_path)
    for project in (REPO_ROOT, other_project):
        # No npm on the PATH: a second install would fail.
        result = subprocess.run([sys.executable, "-m", "tracker", "board", "--install"], cwd=project,
                                env=python_env(XDG_CACHE_HOME=cache, PATH=tmp_path), capture_output=True, text=True,
                                timeout=60)
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert result.stdout == (f"Omniboard {OMNIBOARD_VERSION} is installed in {in_cache}/; start it with "
                                 f"'tracker board'\n")
    assert not (other_project / ".tracker").exists()


def test_board_serves_the_runs_api_and_stops_on_ctrl_c(smoke_run, mongo_url):
    board, url = start_board(mongo_url, smoke_run["db_name"])
    try:
        runs_url = with_token(f"{url}/api/v1/Runs?select=_id,status", board.token)
        with urllib.request.urlopen(runs_url, timeout=30) as response:
            runs = json.load(response)
        assert runs == [{"_id": smoke_run["run"]["_id"], "status": "COMPLETED"}]
        assert board.interrupt() == 0
        assert board.output[-1] == "Omniboard stopped.\n"
        with pytest.raises(urllib.error.URLError):  # Omniboard went with it
            urllib.request.urlopen(url, timeout=5)
    finally:
        board.kill()


def test_board_starts_with_one_warning_when_the_store_refuses_its_columns(mongo_db, mongo_url):
    """A unique index stands in for a read-only user's database: the columns' insert is refused, and the board
    shows the runs all the same."""
    for run_id, lr in ((1, 0.1), (2, 0.2)):  # lr differs: the board stores a column for it
        mongo_db.runs.insert_one({"_id": run_id, "status": "COMPLETED", "config": {"lr": lr}})
    columns = mongo_db["omniboard.custom.columns"]
    columns.create_index("made_by", unique=True)
    columns.insert_one({"name": "mine", "config_path": "config.seed", "made_by": "tracker board"})
    board, url = start_board(mongo_url, mongo_db.name)
    try:
        warnings = [line for line in board.output if "WARNING" in line]
        assert len(warnings) == 1 and warnings[0].startswith(
            "WARNING: the database refused Omniboard's first-screen columns (UNIQUE constraint failed: "), warnings
        assert warnings[0].endswith("); the board starts without them\n"), warnings
        with urllib.request.urlopen(with_token(f"{url}/api/v1/Runs?select=_id", board.token), timeout=30) as response:
            assert json.load(response) == [{"_id": 1}, {"_id": 2}]
    finally:
        board.kill()


def test_board_alone_starts_the_store_and_shows_a_run_recorded_while_no_database_ran(workdir, tmp_path):
    """The newcomer's path: a run lands in runs/ (nothing at MONGO_URL), then `tracker board` shows it."""
    url = f"mongodb://127.0.0.1:{free_port()}"
    db_name = f"test_{uuid.uuid4().hex[:10]}"
    runs_dir = tmp_path / "runs"
    result = run_experiment(TINY_ARGS, workdir, url, db_name, runs_dir=runs_dir)
    assert result.returncode == 0 and "tracker sync" in result.stderr, result.stderr
    require_tool("node", "tracker board runs Omniboard with Node.js")
    board = TrackerCommand("board", "--port", str(free_port()), MONGO_URL=url, SACRED_DB=db_name, RUNS_DIR=runs_dir)
    try:
        assert board.wait_for("Nothing answers at", 30)
        uploaded = board.wait_for(r"uploaded .*runs/1: run (\d+) \(COMPLETED", 120)
        board.wait_for(f"Showing database '{db_name}' of the embedded run store", 30)
        board_url, token = board.wait_for(r"open (http://\S+)\?token=(\S+)", 300).groups()
        runs_url = with_token(f"{board_url}/api/v1/Runs?select=_id,status,duration", token)
        with urllib.request.urlopen(runs_url, timeout=30) as response:
            (run,) = json.load(response)
        assert run["_id"] == int(uploaded[1]) and run["status"] == "COMPLETED" and run["duration"] > 0
        assert board.interrupt() == 0
        assert "Omniboard stopped.\n" in board.output and board.output[-1] == "Run store stopped.\n", board.output
        with pytest.raises(pymongo.errors.PyMongoError):  # the store went with it
            pymongo.MongoClient(url, serverSelectionTimeoutMS=1000).admin.command("ping")
    finally:
        board.kill()
        _drop_store_database(db_name)


def _drop_store_database(db_name):
    """The embedded store keeps data in .tracker/db/ of the checkout; remove this test's database file."""
    for path in (REPO_ROOT / STORE_DIR).glob(f"{db_name}.db*"):
        path.unlink()


def test_db_reports_a_failed_request_in_one_line(tmp_path):
    port = free_port()
    store = TrackerCommand("db", "--port", str(port), "--data-dir", str(tmp_path / "db"))
    try:
        store.wait_for(rf"mongodb://localhost:{port}", timeout_s=30)
        client = pymongo.MongoClient(f"mongodb://localhost:{port}", serverSelectionTimeoutMS=10_000)
        with pytest.raises(pymongo.errors.OperationFailure):
            client["not%name"].runs.insert_one({"_id": 1})  # nx-27017 keeps databases in files named after them
        error = store.wait_for(r"ERROR .*", 30)[0]
        assert "Invalid database name: 'not%name'" in error
        client.close()
        assert store.interrupt() == 0
        assert not any("Traceback" in line or line.startswith("  File") for line in store.output), store.output
    finally:
        store.kill()


def test_configure_stores_columns_that_follow_the_runs_and_keeps_the_users(mongo_db, mongo_url, db_name, workdir):
    summaries = [{"name": "val.acc", "min": 0.1, "max": 0.8}, {"name": "train.loss", "min": 0.2, "max": 2.0}]

    def add_run(run_id, steps, arch, log_every=5):
        mongo_db.runs.insert_one({"_id": run_id, "result": 0.8, "metric_summaries": summaries, "config": {
            "lr": 0.1, "seed": run_id, "trainer": {"steps": steps, "log_every": log_every}, "model": {"arch": arch}}})

    def columns(collection):
        return {column["name"]: column.get("config_path") or column["metric_name"]
                for column in mongo_db[f"omniboard.{collection}.columns"].find()}

    for run_id, (steps, arch) in enumerate([(100, "simple"), (200, "simple"), (200, "resnet18")], start=1):
        add_run(run_id, steps, arch)
    configured = run_tracker(["board", "--configure"], workdir, mongo_url, db_name)
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout == "Omniboard's first screen shows the columns trainer.steps, model.arch, best_val_acc\n"
    assert columns("custom") == {"trainer.steps": "config.trainer.steps", "model.arch": "config.model.arch"}
    assert columns("metric") == {"best_val_acc": "val.acc"}

    # The user's own choices in Omniboard: the score column renamed, a column of their own; then the runs change.
    mongo_db["omniboard.metric.columns"].update_one({}, {"$set": {"name": "acc"}})
    mongo_db["omniboard.custom.columns"].insert_one({"name": "rate", "config_path": "config.lr"})
    mongo_db.runs.delete_one({"_id": 1})  # the steps no longer differ
    add_run(4, 200, "simple", log_every=10)
    again = run_tracker(["board", "--configure"], workdir, mongo_url, db_name)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ("Omniboard's first screen shows the columns model.arch, trainer.log_every, beside your "
                            "own: rate, acc\n")
    assert columns("custom") == {"model.arch": "config.model.arch", "trainer.log_every": "config.trainer.log_every",
                                 "rate": "config.lr"}
    assert columns("metric") == {"acc": "val.acc"}  # the renamed column shows the score: no second one
