"""Hostile and broken inputs: planted code in stored runs, killed runs, bad settings, stray files, NaN and inf.

Each test checks what a user sees: one line, the exit status, and that nothing is lost or recorded wrongly.
"""
import datetime
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import uuid

import pytest
from conftest import (COMPUTED_METRICS, REPO_ROOT, git, metric, newest_run, python_env, run_experiment,
                      run_tracker)

from runstore.errors import UserError
from observers.git_state import MAX_UNTRACKED_FILE_BYTES, patch_digest, record_uncommitted_changes, uncommitted_changes
from runstore.run_store import StoredRun
from runstore.liveness import STALE_HEARTBEAT_S, death, process_temp_dirs
from runstore.local_run import LocalRun
from runstore.settings import load_settings, project_root, redact

NONFINITE = REPO_ROOT / "tests" / "nonfinite_experiment.py"
UNREACHABLE = "mongodb://127.0.0.1:1"


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


# ---- stored configs are data, never code -----------------------------------------------------------------------
PAYLOAD = {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": ["touch PWNED"]}]}


def planted_folder(tmp_path):
    """A file-store run folder whose config holds the payload."""
    folder = tmp_path / "runs" / "1"
    folder.mkdir(parents=True)
    entry = {"status": "INTERRUPTED", "host": {"hostname": "elsewhere"}, "start_time": "2026-01-01T00:00:00",
             "experiment": {"name": "cifar", "base_dir": str(REPO_ROOT), "mainfile": "experiments/cifar.py",
                            "sources": [], "repositories": []},
             "command": "main", "meta": {}, "resources": [], "artifacts": [], "heartbeat": "2026-01-01T00:00:10"}
    (folder / "run.json").write_text(json.dumps(entry))
    (folder / "config.json").write_text(json.dumps({"lr": PAYLOAD, "seed": 1}))
    return folder


def test_planted_code_in_a_stored_config_is_refused_and_never_runs(tmp_path, mongo_url, mongo_db):
    folder = planted_folder(tmp_path)
    mongo_db.runs.insert_one({"_id": 7, "status": "INTERRUPTED", "experiment": {"name": "cifar"},
                              "config": {"trainer": {"steps": PAYLOAD}}, "info": {}})
    for command in ("rerun", "resume"):
        for run, key in ((str(folder), "config.lr.py/reduce"), ("7", "config.trainer.steps.py/reduce")):
            result = run_tracker([command, run], tmp_path, mongo_url, mongo_db.name)
            assert result.returncode == 1
            assert error_lines(result) == [f"error: run {run if run == '7' else folder}'s config holds the jsonpickle "
                                           f"tag at {key}, which would run code when read; it was not used: stored "
                                           f"values must be plain JSON (numbers, text, lists, objects)"], \
                result.stderr
    assert not (tmp_path / "PWNED").exists() and not (REPO_ROOT / "PWNED").exists()

    (folder / "config.json").write_text(json.dumps({"lr": 0.1}))
    (folder / "info.json").write_text(json.dumps({"note": [PAYLOAD]}))
    synced = run_tracker(["sync", str(folder)], tmp_path, mongo_url, mongo_db.name)
    assert synced.returncode == 1
    assert "info holds the jsonpickle tag at info.note[0].py/reduce" in synced.stdout
    assert mongo_db.runs.count_documents({}) == 1  # only the planted document; nothing was uploaded


# ---- dead runs ---------------------------------------------------------------------------------------------------
KILL_ARGS = ["with", "smoke", "trainer.steps=60", "trainer.checkpoint_every=10", "trainer.val_every=20",
             "data.limit=1000", "trainer.progress=False", "trainer.deterministic=True", "trainer.print_every=10",
             "seed=4321"]


def test_killed_run_is_marked_dead_once_and_resumes_to_the_uninterrupted_result(
    project_repo, workdir, mongo_url, mongo_db, tmp_path
):
    uninterrupted = run_experiment(KILL_ARGS, workdir, mongo_url, mongo_db.name, project=project_repo)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    original = newest_run(mongo_db)

    runs_dir = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, str(project_repo / "experiments" / "cifar.py"), *KILL_ARGS], cwd=workdir,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name, RUNS_DIR=runs_dir, PYTHONPATH=project_repo),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for line in process.stdout:  # step 20's line comes after step 10's checkpoint
            if re.match(r"Iteration\s+20/60", line):
                process.send_signal(signal.SIGSTOP)  # frozen, but alive: resume must refuse it
                break
        killed = newest_run(mongo_db)
        assert killed["status"] == "RUNNING" and killed["info"]["pid"] == process.pid
        refused = run_tracker(["resume", str(killed["_id"])], workdir, mongo_url, mongo_db.name, project=project_repo)
        assert refused.returncode == 1
        assert error_lines(refused) == [
            f"error: run {killed['_id']} is still running (its process {process.pid} on this host "
            f"({platform.node()}) is alive); resume it once it has ended (Ctrl-C stops it with a checkpoint)"]
    finally:
        process.kill()
        process.wait()

    (temp_dir,) = process_temp_dirs(process.pid)
    assert any(temp_dir.glob("*/checkpoint.pt")), "the trainer's files are in the run's folder"
    first = run_tracker(["sync", str(runs_dir)], workdir, mongo_url, mongo_db.name)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"it had died (process {process.pid} on host {platform.node()} is gone)" in first.stdout
    dead = mongo_db.runs.find_one({"_id": killed["_id"]})
    assert dead["status"] == "INTERRUPTED"
    assert dead["info"]["died"]["how"] == f"process {process.pid} on host {platform.node()} is gone"
    assert not temp_dir.exists()
    second = run_tracker(["sync", str(runs_dir)], workdir, mongo_url, mongo_db.name)
    assert second.returncode == 0 and "0 uploaded, 1 skipped, 0 failed" in second.stdout, second.stdout
    assert "died" not in second.stdout
    assert mongo_db.runs.find_one({"_id": killed["_id"]}) == dead

    resumed = run_tracker(["resume", str(killed["_id"])], workdir, mongo_url, mongo_db.name, project=project_repo)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    continued = newest_run(mongo_db)
    step = continued["info"]["resumed_after_step"]
    assert continued["status"] == "COMPLETED" and step in (10, 20)
    for name in COMPUTED_METRICS:
        expected = {s: v for s, v in metric(mongo_db, original["_id"], name).items() if s > step}
        assert metric(mongo_db, continued["_id"], name) == expected != {}, name
    assert continued["result"] == original["result"]


def test_runs_lists_a_run_whose_process_is_gone_as_dead_in_either_store_without_a_sync(tmp_path, mongo_url,
                                                                                       mongo_db):
    """Runs of this host, RUNNING with a recent heartbeat: one whose process has exited, one whose stored pid is not a
    number (only the heartbeat can tell: still alive), one whose process (this test's) lives."""
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    now = datetime.datetime.utcnow().replace(microsecond=0)
    pids = {"1": int(exited.stdout), "2": "12x", "3": os.getpid()}
    for number, pid in pids.items():
        entry = {"status": "RUNNING", "host": {"hostname": platform.node()}, "start_time": now.isoformat(),
                 "heartbeat": now.isoformat(), "experiment": {"name": f"local{number}"}, "artifacts": []}
        folder = tmp_path / "runs" / number
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps(entry))
        (folder / "config.json").write_text(json.dumps({"seed": 1}))
        (folder / "info.json").write_text(json.dumps({"pid": pid}))
        mongo_db.runs.insert_one({**entry, "_id": int(number), "experiment": {"name": f"mongo{number}"},
                                  "start_time": now, "heartbeat": now, "config": {"seed": 1}, "info": {"pid": pid}})

    result = run_tracker(["runs", "--format", "json"], tmp_path, mongo_url, mongo_db.name)

    assert result.returncode == 0, result.stderr
    statuses = {row["experiment"]: row["status"] for row in json.loads(result.stdout)}
    assert statuses == {"mongo1": "INTERRUPTED?", "mongo2": "RUNNING", "mongo3": "RUNNING",
                        "local1": "INTERRUPTED?", "local2": "RUNNING", "local3": "RUNNING"}


def test_a_run_on_another_host_is_dead_once_its_heartbeat_is_too_old():
    now = datetime.datetime(2026, 1, 1, 12, 0, 0)
    run = {"status": "RUNNING", "host": {"hostname": "another-node"}, "start_time": "2026-01-01T10:00:00"}
    recent = {**run, "heartbeat": (now - datetime.timedelta(seconds=STALE_HEARTBEAT_S - 1)).isoformat()}
    silent = {**run, "heartbeat": now - datetime.timedelta(seconds=STALE_HEARTBEAT_S + 1)}  # as MongoDB returns it
    assert death(recent, {"pid": 1}, now) is None
    assert death(silent, {"pid": 1}, now) == {
        "at": now.isoformat(), "how": f"no heartbeat from host another-node for {STALE_HEARTBEAT_S + 1} s "
                                      f"(limit {STALE_HEARTBEAT_S} s)"}
    assert death({**silent, "status": "COMPLETED"}, {}, now) is None


def test_an_uploaded_run_leaves_nothing_in_runs_dir(tmp_path, mongo_url, mongo_db):
    runs_dir = tmp_path / "runs"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "flood_experiment.py")], cwd=tmp_path,
                            env=python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name, RUNS_DIR=runs_dir),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    run = newest_run(mongo_db)
    assert run["status"] == "COMPLETED" and "tests/flood_experiment.py" in [n for n, _ in run["experiment"]["sources"]]
    assert [path.name for path in runs_dir.iterdir()] == [".gitignore"]  # no _sources/ left behind


# ---- settings ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, message", [
    ({"MONGO_URL": "garbage"}, "MONGO_URL 'garbage' is not a valid MongoDB URL (it must start with mongodb://"),
    ({"RUNS_DIR": "/proc/x"}, "RUNS_DIR=/proc/x is not a writable folder"),
    ({"RUNS_DIR": "file"}, "is not a writable folder (it is a file)"),
    ({"args": ["trainer.stepz=3"]}, "trainer.stepz is not a config key; did you mean trainer.steps"),
    ({"args": ['trainer.steps={"$a": 1}']}, "config key '$a' contains '.' or starts with '$', which MongoDB does "
                                            "not allow in keys; rename it, e.g. to 'a'"),
])
def test_broken_settings_stop_the_run_in_one_line(setting, message, workdir, mongo_url, mongo_db, tmp_path):
    (tmp_path / "file").write_text("not a folder\n")
    env = {"runs_dir": tmp_path / setting.get("RUNS_DIR", "runs"), "mongo_url": setting.get("MONGO_URL", mongo_url)}
    result = run_experiment(["with", "smoke", *setting.get("args", [])], workdir, db_name=mongo_db.name, **env)
    assert result.returncode == 1
    assert len(error_lines(result)) == 1 and message in error_lines(result)[0], result.stderr
    assert mongo_db.runs.count_documents({}) == 0


def test_password_with_an_at_sign_is_masked_whole():
    password = f"{uuid.uuid4().hex[:6]}@{uuid.uuid4().hex[:6]}"
    assert redact(f"mongodb://alice:{password}@db.example:27017/") == "mongodb://alice:***@db.example:27017/"


def test_runs_dir_and_env_file_belong_to_the_project_root(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "experiments").mkdir(parents=True)
    (project / ".env").write_text("SACRED_DB=from_project\n")
    for name in ("MONGO_URL", "SACRED_DB", "RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(project / "experiments")
    assert (load_settings().db_name, load_settings().runs_dir) == ("from_project", project / "runs")
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().runs_dir == tmp_path / "elsewhere"
    (tmp_path / "repo" / ".git").mkdir(parents=True)  # tracker db and board keep .tracker/ here too
    (tmp_path / "repo" / "notes").mkdir()
    assert project_root(tmp_path / "repo" / "notes") == tmp_path / "repo"
    assert project_root(tmp_path / "loose") == project  # outside any checkout: the one around the working folder


# ---- untracked files in the diff artifact -------------------------------------------------------------------------
def test_untracked_files_go_into_the_patch_only_when_small_and_not_secret(tmp_path):
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py", cwd=tmp_path)
    git("commit", "-q", "-m", "first", cwd=tmp_path)
    (tmp_path / "idea.py").write_text("IDEA = 1\n")
    (tmp_path / ".env.local").write_text("MONGO_PASSWORD=hunter2\n")
    (tmp_path / "deploy_key").write_text("-----BEGIN-----\n")
    (tmp_path / "data.bin").write_bytes(b"x" * (MAX_UNTRACKED_FILE_BYTES + 1))
    # Environments and caches, not ignored, are no changes: a venv in an untracked folder, node_modules, caches.
    for name in ("envs/py/pyvenv.cfg", "envs/py/lib/site.py", "envs/conda/conda-meta/history", "envs/conda/x.py",
                 "node_modules/pad/index.js", "pkg/__pycache__/m.cpython-311.pyc", ".mypy_cache/3.11/m.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")

    changes = uncommitted_changes(tmp_path)

    assert changes.included == ["idea.py"] and "IDEA = 1" in changes.patch
    assert "hunter2" not in changes.patch and "BEGIN" not in changes.patch and "xxxx" not in changes.patch
    assert sorted(changes.left_out, key=lambda entry: entry["file"]) == [
        {"file": ".env.local", "why": "the name looks like a secret"},
        {"file": "data.bin",
         "why": f"{MAX_UNTRACKED_FILE_BYTES + 1} bytes, over the {MAX_UNTRACKED_FILE_BYTES} bytes per file"},
        {"file": "deploy_key", "why": "the name looks like a secret"},
    ]



def test_many_left_out_files_are_counted_in_one_line_not_listed_in_full(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    (repo / "train.py").write_text("print(1)\n")
    git("add", "train.py", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    for i in range(30):
        (repo / f"secret_{i}.txt").write_text("hunter2\n")
    run = type("Run", (), {"info": {}, "add_artifact": lambda self, *args, **kwargs: None})()

    record_uncommitted_changes(run, repo, tmp_path)

    recorded = run.info["untracked_files"]
    assert (len(recorded["left_out"]), recorded["left_out_count"], recorded["included"]) == (20, 30, [])
    assert capsys.readouterr().err == (
        "WARNING: 30 untracked files left out of git_diff.patch (names like secrets, or too large), listed in the "
        "run's info.untracked_files; add them to .gitignore to keep runs clean\n")


def test_untracked_only_changes_count_as_uncommitted_for_rerun(tmp_path):
    import git as gitpython

    from tracker.launch import code_for

    git("init", "-q", cwd=tmp_path)
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py", cwd=tmp_path)
    git("commit", "-q", "-m", "first", cwd=tmp_path)
    repo = gitpython.Repo(tmp_path)
    head = repo.head.commit.hexsha

    def stored(info):  # a run at this commit that Sacred recorded as clean
        doc = {"experiment": {"repositories": [{"commit": head, "dirty": False, "url": f"git:/{tmp_path}"}]}}
        return StoredRun("run 3", 3, doc, {}, info, store=None, key=3)

    untracked = {"untracked_files": {"included": ["idea.py"], "left_out": []}}
    with pytest.raises(UserError, match=f"run 3 ran at commit {head[:12]} with uncommitted changes"):
        with code_for(stored(untracked), tmp_path, repo, at_commit=False, force=False):
            pass
    (tmp_path / "idea.py").write_text("IDEA = 1\n")
    with pytest.raises(UserError, match="this checkout .* has uncommitted changes"):
        with code_for(stored({}), tmp_path, repo, at_commit=False, force=False):
            pass


def test_a_run_without_a_commit_is_rerun_only_with_force(tmp_path):
    # A run of an installed wheel, outside any git repository: --at-commit has no commit to run.
    from tracker.launch import code_for

    stored = StoredRun("run runs/1", "runs/1", {"experiment": {}}, {}, {}, store=None, key="runs/1")
    with pytest.raises(UserError) as refused:
        with code_for(stored, tmp_path, None, at_commit=False, force=False):
            pass
    assert str(refused.value) == ("run runs/1 recorded no git commit, so its code cannot be compared with this "
                                  "checkout; add --force to run this checkout's code")
    with code_for(stored, tmp_path, None, at_commit=False, force=True) as (folder, forced, _):
        assert folder == tmp_path and forced == {"forced_instead_of": {"commit": None}}


def test_a_run_is_rerun_without_force_while_the_checkout_has_the_changes_it_recorded(tmp_path):
    # The README's own experiment: line.py saved and run, not committed; `tracker rerun` runs the same code.
    import git as gitpython

    from tracker.launch import code_for

    git("init", "-q", cwd=tmp_path)
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py", cwd=tmp_path)
    git("commit", "-q", "-m", "first", cwd=tmp_path)
    (tmp_path / "line.py").write_text("LINE = 1\n")
    (tmp_path / "api.key").write_text("secret\n")  # left out of the patch: its name looks like a secret
    repo = gitpython.Repo(tmp_path)
    changes = uncommitted_changes(tmp_path)
    info = {"git_diff_sha256": patch_digest(changes.patch.encode()),
            "untracked_files": {"included": changes.included, "left_out": changes.left_out, "left_out_count": 1}}
    doc = {"experiment": {"repositories": [{"commit": repo.head.commit.hexsha, "dirty": False,
                                            "url": f"git:/{tmp_path}"}]}}
    stored = StoredRun("run 3", 3, doc, {}, info, store=None, key=3)

    with code_for(stored, tmp_path, repo, at_commit=False, force=False) as (folder, forced, _):
        assert (folder, forced) == (tmp_path, {})
    (tmp_path / "line.py").write_text("LINE = 2\n")
    with pytest.raises(UserError, match="run 3 ran at commit .* with uncommitted changes"):
        with code_for(stored, tmp_path, repo, at_commit=False, force=False):
            pass
    (tmp_path / "line.py").write_text("LINE = 1\n")
    (tmp_path / "api.key").unlink()
    with pytest.raises(UserError, match="run 3 ran at commit .* with uncommitted changes"):
        with code_for(stored, tmp_path, repo, at_commit=False, force=False):
            pass


# ---- NaN and infinities ------------------------------------------------------------------------------------------
def test_nan_and_infinities_survive_the_file_store_and_sync(tmp_path, mongo_url, mongo_db):
    runs_dir = tmp_path / "runs"
    recorded = subprocess.run([sys.executable, str(NONFINITE)], cwd=tmp_path, capture_output=True, text=True,
                              env=python_env(MONGO_URL=UNREACHABLE, SACRED_DB=mongo_db.name, RUNS_DIR=runs_dir),
                              timeout=120)
    assert recorded.returncode == 0, recorded.stderr
    (folder,) = [path for path in runs_dir.iterdir() if path.name.isdigit()]
    local = LocalRun.load(folder)
    assert local.config["scale"] == math.inf and math.isnan(local.info["spread"]) and local.entry["result"] == -math.inf
    assert math.isnan(local.metrics["loss"]["values"][1]) and local.metrics["loss"]["values"][2] == math.inf

    synced = run_tracker(["sync", str(folder)], tmp_path, mongo_url, mongo_db.name)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    run = newest_run(mongo_db)
    assert run["config"]["scale"] == math.inf and math.isnan(run["info"]["spread"]) and run["result"] == -math.inf
    points = metric(mongo_db, run["_id"], "loss")
    assert points[0] == 1.0 and math.isnan(points[1]) and points[2] == math.inf
    plotted = mongo_db.metrics.find_one({"run_id": run["_id"], "name": "loss"})["values"]
    assert math.isnan(plotted[1]) and plotted[2] == math.inf


def test_a_raw_pickle_checkpoint_gets_one_line_without_torch_warnings(tmp_path):
    import pickle
    import warnings

    from ingredients.checkpoint import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"step": 3}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserError, match="run 3's checkpoint.pt is corrupted or holds more than tensors"):
            load_checkpoint(path, label="run 3's checkpoint.pt")
    assert [str(warning.message) for warning in caught] == []
