"""What a run writes to files, and what `tracker sync` uploads from them: no other user can plant or read them, a
damaged file never passes for a whole one, and one bad folder or value neither blocks nor poisons the others.

Each test checks what a user sees: one line, the exit status, and what landed in MongoDB.
"""
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT, newest_run, python_env, run_tracker

from runstore.layout import read_file
from runstore.local_run import run_folders

QUADRATIC = REPO_ROOT / "tests" / "quadratic_experiment.py"


def run_planted(prelude, args, cwd, mongo_url, db_name, **env):
    """tests/quadratic_experiment.py with `args`, in a process that first runs `prelude` (Python source)."""
    script = f"{prelude}\nimport runpy, sys\nsys.argv = {[str(QUADRATIC), *args]!r}\n" \
             f"runpy.run_path({str(QUADRATIC)!r}, run_name='__main__')\n"
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=cwd / "runs", **env))


def artifact_bytes(db, run, name):
    return read_file(db, next(artifact["file_id"] for artifact in run["artifacts"] if artifact["name"] == name))


# ---- temporary folders -------------------------------------------------------------------------------------------
def test_a_temporary_folder_planted_at_the_run_s_process_name_is_never_written_through(tmp_path, mongo_url, mongo_db):
    target = tmp_path / "secret.txt"
    target.write_text("root's own file\n")
    target.chmod(0o600)
    # Another user's folder where the run's process folder was predictably named, linking to the run's files.
    prelude = (f"import os\nplanted = os.path.join({tempfile.gettempdir()!r}, f'tracker-process-{{os.getpid()}}')\n"
               f"os.mkdir(planted)\nos.chmod(planted, 0o777)\n"
               f"os.symlink({str(target)!r}, os.path.join(planted, 'environment.json'))\n"
               f"print('planted', planted)")
    result = run_planted(prelude, ["with", "steps=2"], tmp_path, mongo_url, mongo_db.name)
    assert result.returncode == 0, result.stderr
    planted = result.stdout.split("planted ", 1)[1].split()[0]
    try:
        assert target.read_text() == "root's own file\n"
        assert os.listdir(planted) == ["environment.json"]
        run = newest_run(mongo_db)
        assert run["status"] == "COMPLETED"
        assert b'"packages"' in artifact_bytes(mongo_db, run, "environment.json")
    finally:
        os.unlink(os.path.join(planted, "environment.json"))
        os.rmdir(planted)


# ---- .env ----------------------------------------------------------------------------------------------------------
def test_an_env_file_others_can_read_gets_one_warning_from_commands_and_runs(tmp_path, mongo_url, mongo_db):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    shutil.copy(QUADRATIC, project / "tests")  # its base_dir, and so its .env, is `project`
    env_file = project / ".env"
    env_file.write_text("MONGO_PASSWORD=s3cret\n")
    env_file.chmod(0o644)  # what `cp .env.example .env` gives
    warning = f"WARNING: {env_file} holds a password that other users can read (mode 644); make it yours alone " \
              f"with `chmod 600 {env_file}`"
    command = run_tracker(["runs"], project, mongo_url, mongo_db.name)
    run = subprocess.run([sys.executable, "tests/quadratic_experiment.py", "with", "steps=2"], cwd=project,
                         env=python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name), capture_output=True, text=True,
                         timeout=120)
    assert command.returncode == run.returncode == 0, command.stderr + run.stderr
    for result in (command, run):
        assert [line for line in result.stderr.splitlines() if "other users can read" in line] == [warning]

    env_file.chmod(0o600)
    quiet = run_tracker(["runs"], project, mongo_url, mongo_db.name)
    assert quiet.returncode == 0 and "other users can read" not in quiet.stderr, quiet.stderr


def test_the_readme_creates_env_readable_by_its_user_alone():
    assert "install -m 600 .env.example .env" in (REPO_ROOT / "README.md").read_text()
    assert "cp .env.example" not in (REPO_ROOT / "README.md").read_text()


# ---- values MongoDB cannot store ---------------------------------------------------------------------------------
FREE_CONFIG = REPO_ROOT / "tests" / "free_config_experiment.py"


def nested(levels):
    value = 1
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize("extra, line", [
    ({"a\0b": 1}, "UserError: key 'a\\x00b' in config.extra holds a NUL character, which MongoDB does not allow in "
                  "keys; rename it, e.g. to 'ab'"),
    (nested(300), "UserError: config is nested more than 99 levels deep"),
    ({"big": "x" * 20 * 2**20}, "UserError: config is 20.0 MB, over the 8 MB a run's config may take of MongoDB's "
                                "16 MB document; keep large data in a file added with _run.add_artifact"),
])
def test_a_config_mongodb_cannot_store_is_refused_before_the_run_starts(extra, line, tmp_path, mongo_url, mongo_db):
    config_file = tmp_path / "extra.json"
    config_file.write_text(json.dumps({"extra": extra}))
    result = subprocess.run([sys.executable, str(FREE_CONFIG), "with", str(config_file)], cwd=tmp_path,
                            env=python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name, RUNS_DIR=tmp_path / "runs"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [text for text in result.stderr.splitlines() if "Error" in text]
    assert len(errors) == 1 and errors[0].startswith(line), result.stderr[-2000:]
    assert not run_folders(tmp_path / "runs")
    assert mongo_db.runs.count_documents({}) == 0


# ---- tracker sync: what a folder holds is checked against what the run wrote ------------------------------------
UNREACHABLE = "mongodb://127.0.0.1:1"


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """A quadratic run recorded in a file store only (MongoDB unreachable): its folder, to be copied by tests."""
    runs_dir = tmp_path_factory.mktemp("offline") / "runs"
    result = subprocess.run([sys.executable, str(QUADRATIC), "with", "steps=3"], cwd=runs_dir.parent, timeout=120,
                            env=python_env(MONGO_URL=UNREACHABLE, SACRED_DB="unused", RUNS_DIR=runs_dir),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (folder,) = run_folders(runs_dir)
    return folder


def copy_run(folder, target, **entry):
    """A copy of the run folder `folder` at `target`, with `entry` changed in its run.json; returns `target`."""
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns(".upload.lock"))
    run_json = target / "run.json"
    run_json.write_text(json.dumps({**json.loads(run_json.read_text()), **entry}))
    return target


def test_a_truncated_or_altered_file_is_uploaded_as_missing_never_as_completed(offline_run, tmp_path, mongo_url,
                                                                                 mongo_db):
    folder = copy_run(offline_run, tmp_path / "runs" / "1")
    environment = folder / "environment.json"
    whole = environment.read_bytes()
    environment.write_bytes(whole[:len(whole) // 2])  # a copy cut short
    (source,) = (folder / "_sources").glob("quadratic_experiment_*.py")
    source.write_text(source.read_text().replace("lr = 0.1", "lr = 0.3"))  # the same size, other bytes
    result = run_tracker(["sync", str(folder)], tmp_path, mongo_url, mongo_db.name)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 uploaded, 0 skipped, 0 failed, 1 incomplete" in result.stdout, result.stdout
    run = newest_run(mongo_db)
    assert run["status"] == "FAILED"
    assert sorted(run["local_copy"]["missing"]) == [
        f"_sources/{source.name}: not the bytes the run wrote (its sha256 differs)",
        f"environment.json: {len(whole) // 2} of the {len(whole)} bytes the run wrote",
    ]
    assert "environment.json" not in [artifact["name"] for artifact in run["artifacts"]]
    assert "tests/quadratic_experiment.py" not in [name for name, _ in run["experiment"]["sources"]]


def test_broken_folders_are_named_and_every_other_run_is_uploaded_whole(offline_run, tmp_path, mongo_url, mongo_db):
    runs_dir = tmp_path / "runs"

    experiment = json.loads((offline_run / "run.json").read_text())["experiment"]

    def variant(number, config=None, **entry):
        """A copy as if recorded as run `number`: its own start time (another run to the database's unique key) and
        its sources in its own folder."""
        sources = [[name, f"{number}/_sources/{Path(stored).name}"] for name, stored in experiment["sources"]]
        folder = copy_run(offline_run, runs_dir / str(number), start_time=f"2026-01-{number}T00:00:00",
                          experiment={**experiment, "sources": sources}, **entry)
        if config is not None:
            (folder / "config.json").write_text(json.dumps(config))
        return folder

    nul_key = variant(11, config={"extra": {"a\0b": 1}})
    deep = variant(12, config={"extra": nested(300)})
    large = variant(13, config={"extra": "x" * 20 * 2**20})
    bad_pid = variant(14, status="RUNNING")
    (bad_pid / "info.json").write_text(json.dumps({"pid": "x"}))
    without_sources = variant(15)
    shutil.rmtree(without_sources / "_sources")  # a folder copied without its sources
    unreadable = variant(16)
    (unreadable / "run.json").write_text('{"status": "COMPLETED", ')
    whole = variant(17)

    result = run_tracker(["sync", str(runs_dir)], tmp_path, mongo_url, mongo_db.name)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:7] == [
        f"failed {nul_key}: key 'a\\x00b' in config.extra holds a NUL character, which MongoDB does not allow in "
        f"keys; rename it, e.g. to 'ab'",
        f"failed {deep}: config is nested more than 99 levels deep (at {lines[1].split('(at ')[1]}",
        f"failed {large}: config is 20.0 MB, over the 8 MB a run's config may take of MongoDB's 16 MB document; "
        f"keep large data in a file added with _run.add_artifact",
        f"failed {bad_pid}: info.pid 'x' is not a process id (a positive whole number); repair or remove the folder",
        lines[4], lines[5], lines[6],
    ]
    assert lines[4].startswith(f"incomplete {without_sources}: run ") and "_sources/quadratic_experiment" in lines[4]
    assert lines[5].startswith(f"failed {unreadable}: {unreadable / 'run.json'} is unreadable")
    assert lines[6].startswith(f"uploaded {whole}: run ")
    assert lines[7].startswith("1 uploaded, 0 skipped, 5 failed, 1 incomplete")
    runs = list(mongo_db.runs.find({}, {"status": 1, "config": 1, "start_time": 1}))
    assert sorted(run["status"] for run in runs) == ["COMPLETED", "FAILED"]  # no run without its status


def test_a_stored_field_of_the_wrong_type_is_one_line_naming_the_run_and_field(tmp_path, mongo_url, mongo_db):
    now = datetime.datetime.utcnow()
    mongo_db.runs.insert_one({"_id": 7, "status": "RUNNING", "host": {"hostname": platform.node()}, "start_time": now,
                              "heartbeat": now, "experiment": {"name": "quadratic"}, "config": {"lr": 0.1},
                              "info": {"pid": "x"}})
    (tmp_path / "runs").mkdir()
    synced = run_tracker(["sync"], tmp_path, mongo_url, mongo_db.name)
    assert synced.returncode == 1 and not synced.stderr, synced.stderr
    assert "failed run 7: info.pid 'x' is not a process id (a positive whole number); repair it in MongoDB or " \
           "delete it with `tracker delete 7`" in synced.stdout.splitlines()
    resumed = run_tracker(["resume", "7"], tmp_path, mongo_url, mongo_db.name)
    assert resumed.returncode == 1
    assert resumed.stderr.splitlines() == ["error: run 7's info.pid 'x' is not a process id (a positive whole "
                                           "number); repair its record, or start it again with `tracker rerun 7`"]


def test_a_run_mongodb_refuses_leaves_no_document_without_its_status(offline_run, tmp_path, mongo_url, mongo_db):
    folder = copy_run(offline_run, tmp_path / "runs" / "1", result="x" * 17 * 2**20)  # over the document limit
    result = run_tracker(["sync", str(folder)], tmp_path, mongo_url, mongo_db.name)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"failed {folder}: run 1's document is 17.0 MB, over MongoDB's 16 MB limit ('result' alone is 17.0 MB)" \
           in result.stdout, result.stdout
    assert mongo_db.runs.count_documents({}) == 0  # the whole run, or nothing
