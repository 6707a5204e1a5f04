"""Choosing the run store: MongoDB when reachable, the file store when not, a clear error when misconfigured."""
import subprocess
import sys
import uuid

import pytest
from observers.choose import choose_observers
from observers.durable import DurableMongoObserver
from observers.origin import Handoff
from runstore.run_ref import RunRef
from runstore.run_store import handed_back_run
from runstore.settings import Settings, load_settings, project_root, redact, store_url
from conftest import REPO_ROOT, free_port, python_env
from runstore.errors import UserError

QUADRATIC = REPO_ROOT / "tests" / "quadratic_experiment.py"


def settings(url, tmp_path, db="sacred"):
    return Settings(mongo_url=url, db_name=db, runs_dir=tmp_path / "runs")


def test_reachable_mongodb_records_into_the_configured_database(mongo_url, db_name, tmp_path, capsys):
    [observer] = choose_observers(settings(mongo_url, tmp_path, db_name))
    assert isinstance(observer, DurableMongoObserver)
    assert (observer.db_name, observer.basedir) == (db_name, str(tmp_path / "runs"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["a loopback port", "the socket of a tracker db that is not running"])
def test_unreachable_mongodb_warns_once_and_keeps_the_run_locally(where, tmp_path, capsys):
    # How long it takes to find out: benchmarks/offline_start.py
    url = (f"mongodb://127.0.0.1:{free_port()}" if where == "a loopback port"
           else store_url(tmp_path / ".tracker" / "db"))
    [observer] = choose_observers(settings(url, tmp_path))
    assert observer.basedir == str(tmp_path / "runs")
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "unreachable" in warning[0] and str(tmp_path / "runs") in warning[0]
    assert "tracker sync" in warning[0]


# Passwords in these tests are generated, so that no password is written in tracked files.
PASSWORD = uuid.uuid4().hex


@pytest.mark.parametrize("url", [f"mongodb://u:{PASSWORD}@[bad", "http://localhost:27017", "mongodb://host:notaport"],
                         ids=["a password and a bad host", "another scheme", "a port that is no number"])
def test_malformed_url_is_a_one_line_error_without_the_password(url, tmp_path):
    with pytest.raises(UserError) as error:
        choose_observers(settings(url, tmp_path))
    message = str(error.value)
    assert "is not a valid MongoDB URL" in message and "MONGO_URL" in message
    assert PASSWORD not in message and "\n" not in message


def test_settings_come_from_the_environment_before_the_env_file(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text(f"MONGO_URL=mongodb://user:{PASSWORD}@db.example:27017/?authSource=admin\nSACRED_DB=from_file\n")
    for name in ("MONGO_URL", "SACRED_DB", "RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)
    loaded = load_settings(env_file)
    assert (loaded.mongo_url, loaded.db_name, loaded.runs_dir) == (
        f"mongodb://user:{PASSWORD}@db.example:27017/?authSource=admin", "from_file",
        project_root() / "runs")
    assert loaded.safe_url == "mongodb://user:***@db.example:27017/?authSource=admin"
    monkeypatch.setenv("SACRED_DB", "from_env")
    assert load_settings(env_file).db_name == "from_env"
    # Without MONGO_URL: the project's own `tracker db`, on its socket.
    socket_path = project_root() / ".tracker" / "db" / "mongodb.sock"
    assert load_settings(tmp_path / "missing.env").mongo_url == "mongodb://" + str(socket_path).replace("/", "%2F")


def test_redact_masks_only_the_password():
    assert redact(f"mongodb://alice:{PASSWORD}@localhost:27017/?authSource=admin") == (
        "mongodb://alice:***@localhost:27017/?authSource=admin")
    assert redact("mongodb://localhost:27017") == "mongodb://localhost:27017"


@pytest.mark.parametrize("store", ["MongoDB", "the file store"])
def test_a_run_started_with_a_handoff_names_itself_there(store, mongo_url, mongo_db, db_name, tmp_path):
    """How `tracker rerun`, `resume` and a sweep's trial learn which run they started (observers.origin.Handoff):
    each names its own, although a later run carries the same info (a search for the newest would find that one)."""
    url = mongo_url if store == "MongoDB" else f"mongodb://127.0.0.1:{free_port()}"
    env = python_env(MONGO_URL=url, SACRED_DB=db_name, RUNS_DIR=tmp_path / "runs")
    handoffs = {}
    for lr in (0.3, 0.2):
        (tmp_path / str(lr)).mkdir()
        handoffs[lr] = Handoff.create(tmp_path / str(lr), {"rerun_of": 41, "tags": ["handed"]})
        started = subprocess.run([sys.executable, str(QUADRATIC), "with", f"lr={lr}"],
                                 env={**env, **handoffs[lr].env()}, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr

    for lr, handoff in handoffs.items():
        run = handed_back_run(handoff.answered(), settings(url, tmp_path, db_name))
        assert run.config["lr"] == lr and run.doc["status"] == "COMPLETED"
        assert run.info["rerun_of"] == 41 and run.info["tags"] == ["handed"]
        if store == "MongoDB":  # uploaded whole: its folder is gone, and its database id names it
            assert handoff.answered() == RunRef(run.origin)
            assert mongo_db.runs.find_one({"_id": run.origin})["config"]["lr"] == lr
        else:
            assert run.key == handoff.answered().folder and run.key.parent == (tmp_path / "runs").resolve()
