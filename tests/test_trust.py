"""What a rerun trusts: stored runs and sweep records are data, so only the local checkout's code ever runs.

Each planted payload would create a marker file if it ran; each test checks that it never appears, that the command
exits 1, and that it says so in one line naming the run and the field (docs/security.md, "What a rerun trusts").
"""
import json
import os
import pickle
import subprocess
import sys
import uuid

import pytest
from conftest import EXPERIMENT, git, newest_run, python_env, run_experiment, run_tracker


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def evil_script(path, marker):
    """A script that, if it ever ran, would leave `marker` behind."""
    path.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    return path


def plant_run(db, experiment, config=None, status="FAILED"):
    """A run document as an attacker with write access to the database would store it; returns its id."""
    run_id = 100 + db.runs.count_documents({})
    db.runs.insert_one({"_id": run_id, "status": status, "experiment": {"name": "cifar", "sources": [], **experiment},
                        "config": config or {"seed": 1}, "info": {}, "artifacts": [], "meta": {}})
    return run_id


def head(repo):
    return git("rev-parse", "HEAD", cwd=repo).strip()


# ---- main file and base_dir --------------------------------------------------------------------------------------
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_stored_mainfile_outside_the_checkout_never_runs(force, project_repo, tmp_path, mongo_url, mongo_db):
    marker = tmp_path / "PWNED"
    name = f"evil_{uuid.uuid4().hex[:8]}.py"
    evil = evil_script(project_repo.parent / name, marker)  # beside the checkout: ../evil.py from its root
    try:
        run_id = plant_run(mongo_db, {"base_dir": str(project_repo), "mainfile": f"../{name}", "repositories": [
            {"url": f"git:/{project_repo}", "commit": head(project_repo), "dirty": False}]})

        result = run_tracker(["rerun", *force, str(run_id)], tmp_path, mongo_url, mongo_db.name, project=project_repo)
    finally:
        evil.unlink()

    assert result.returncode == 1
    assert error_lines(result) == [f"error: run {run_id}'s experiment.mainfile '../{name}' is not a relative path "
                                   f"inside a checkout; it was not run: tracker starts only scripts of the checkout it "
                                   f"runs from"]
    assert not marker.exists()


@pytest.fixture
def other_repository(tmp_path):
    """Another git repository on this machine, holding a script that leaves a marker, committed."""
    other = tmp_path / "other"
    other.mkdir()
    evil_script(other / "evil.py", tmp_path / "PWNED")
    git("init", "-q", cwd=other)
    git("add", "evil.py", cwd=other)
    git("commit", "-q", "-m", "evil", cwd=other)
    return other


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_stored_base_dir_of_another_repository_never_runs(force, other_repository, project_repo, tmp_path,
                                                            mongo_url, mongo_db):
    entry = {"url": f"git:/{other_repository}", "commit": head(other_repository), "dirty": False}
    run_id = plant_run(mongo_db, {"base_dir": str(other_repository), "mainfile": "evil.py", "repositories": [entry]})
    here = tmp_path / "here"  # the folder the user reruns from, outside the other repository
    here.mkdir()

    result = run_tracker(["rerun", *force, str(run_id)], here, mongo_url, mongo_db.name, project=project_repo)

    assert result.returncode == 1
    (line,) = error_lines(result)
    assert line.startswith(f"error: run {run_id}'s experiment.base_dir '{other_repository}' is outside {here}; "
                           f"it was not run"), line
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_stored_repository_of_another_folder_is_refused(force, other_repository, project_repo, tmp_path, mongo_url,
                                                          mongo_db):
    mine = tmp_path / "mine"  # the user's own repository, which happens to have a file of the planted name
    mine.mkdir()
    evil_script(mine / "evil.py", tmp_path / "PWNED")
    git("init", "-q", cwd=mine)
    git("add", "evil.py", cwd=mine)
    git("commit", "-q", "-m", "mine", cwd=mine)
    entry = {"url": f"git:/{other_repository}", "commit": head(other_repository), "dirty": False}
    run_id = plant_run(mongo_db, {"base_dir": "/not/on/this/machine", "mainfile": "evil.py", "repositories": [entry]})

    result = run_tracker(["rerun", *force, str(run_id)], mine, mongo_url, mongo_db.name, project=project_repo)

    assert result.returncode == 1
    (line,) = error_lines(result)
    assert line.startswith(f"error: run {run_id}'s experiment.repositories names 'git:/{other_repository}' at commit "
                           f"{entry['commit'][:12]}, a repository outside {mine}"), line
    assert not (tmp_path / "PWNED").exists()


# ---- sweep records -----------------------------------------------------------------------------------------------
def sweep_record(tmp_path, **changes):
    """A sweep's record as `tracker sweep` stores it, with one queued trial."""
    return {"_id": 1, "script": str(EXPERIMENT), "arguments": ["smoke", "lr=[0.1]"], "search": "grid",
            "direction": "maximize", "budget": 1, "cwd": str(tmp_path), "started": "2026-12-01T00:00:00+00:00",
            "status": "INTERRUPTED", "executor": "local", "slurm": {}, "parallel": None,
            "folder": str(tmp_path / "sweeps" / "1"),
            "trials": [{"number": 0, "params": {"lr": 0.1}, "status": "QUEUED", "run": None, "result": None,
                        "runs": []}], **changes}


@pytest.mark.parametrize("field, in_file", [
    ("script", False), ("script", True), ("cwd", False), ("folder", False),
])
def test_a_sweep_record_pointing_elsewhere_never_runs(field, in_file, tmp_path, mongo_url, mongo_db):
    marker = tmp_path / "PWNED"
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"  # the user's project, and a folder outside it
    here.mkdir()
    elsewhere.mkdir()
    evil = evil_script(elsewhere / "evil.py", marker)
    planted = {"script": str(evil), "cwd": str(elsewhere), "folder": str(elsewhere / "sweeps" / "1")}[field]
    mongo_db.sweeps.insert_one(sweep_record(here, **{field: planted}))
    if in_file:  # the sweep's own record on this machine still holds what it ran
        folder = here / "sweeps" / "1"
        folder.mkdir(parents=True)
        (folder / "sweep.json").write_text(json.dumps(sweep_record(here)))

    result = run_tracker(["sweep", "--continue", "1"], here, mongo_url, mongo_db.name)

    assert result.returncode == 1
    (line,) = error_lines(result)
    if in_file:
        assert line.startswith(f"error: sweep 1's {field} in MongoDB ({planted!r}) differs from the one in "
                               f"{here / 'sweeps' / '1' / 'sweep.json'}"), line
    else:
        assert line.startswith(f"error: sweep 1's {field} {planted!r} is "), line
    assert line.endswith("it was not run: tracker starts only scripts of the checkout it runs from"), line
    assert not marker.exists()
    assert mongo_db.runs.count_documents({}) == 0


# ---- data files --------------------------------------------------------------------------------------------------
class Payload:
    """Unpickles as a call of os.system."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_planted_cifar_pickles_never_run(tmp_path, workdir, mongo_url, mongo_db):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "planted" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps({"data": Payload(f"touch {marker}"), "labels": []}))

    result = run_experiment(["with", "smoke", "data.dataset=cifar10", f"data.root={folder.parent}"], workdir,
                            mongo_url, mongo_db.name)

    assert result.returncode == 1
    lines = [line for line in error_lines(result) if line.startswith("error: ") or "Traceback" in line]
    assert lines == [f"error: {folder / 'data_batch_1'} is not a CIFAR-10 file (it names posix.system, which "
                     f"CIFAR-10's files never hold); it was not read: put the files of cifar-10-python.tar.gz there, "
                     f"or delete the folder to download them again"], result.stderr
    assert not marker.exists()


# ---- data.root -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("root", ["../../../elsewhere", "; touch X", "/tmp/elsewhere"])
def test_a_stored_data_root_outside_the_data_folder_is_refused(root, reference_run, project_repo, tmp_path, mongo_url,
                                                               mongo_db):
    original = reference_run["run"]
    config = {**original["config"], "data": {**original["config"]["data"], "root": root}}
    run_id = plant_run(mongo_db, original["experiment"], config)

    refused = run_tracker(["rerun", str(run_id)], tmp_path, mongo_url, mongo_db.name, project=project_repo)

    assert refused.returncode == 1
    assert error_lines(refused) == [
        f"error: run {run_id}'s data.root {root!r} is outside the experiment's data folder 'data'; it was not used, "
        f"so that a rerun writes data only there: give it on the command line to use it (with data.root=PATH)"]
    assert mongo_db.runs.count_documents({}) == 1
    assert not (project_repo / "; touch X").exists()


def test_a_data_root_outside_the_data_folder_is_used_when_given_again(reference_run, project_repo, tmp_path,
                                                                      mongo_url, mongo_db):
    original = reference_run["run"]
    config = {**original["config"], "data": {**original["config"]["data"], "root": "/tmp/elsewhere"}}
    run_id = plant_run(mongo_db, original["experiment"], config)
    # Given on the command line, the user's own folder is used (data.limit=10 ends the run once the data is read).
    given = tmp_path / "my data"
    again = run_tracker(["rerun", str(run_id), "with", f"data.root={given}", "data.limit=10"], tmp_path, mongo_url,
                        mongo_db.name, project=project_repo)

    assert again.returncode == 1 and "larger than the 10 training images" in again.stderr, again.stderr
    assert (given / "synthetic" / "cifar-10-batches-py" / "test_batch").is_file()


@pytest.mark.parametrize("world_size, line", [
    ("2 --rdzv-endpoint=evil.example:1", "info.world_size '2 --rdzv-endpoint=evil.example:1' is not a number of "
                                         "processes; it was not run"),
    (0, "info.world_size '0' is not a number of processes; it was not run"),
    (2.0, "info.world_size '2.0' is not a number of processes; it was not run"),
    (10**6, f"was trained by 1000000 processes, more than this machine's {os.cpu_count()} CPU cores; it was not run: "
            f"run it on a machine with 1000000 or more"),
])
def test_a_stored_world_size_reaches_torchrun_only_as_a_number_this_machine_can_start(
    world_size, line, reference_run, project_repo, tmp_path, mongo_url, mongo_db
):
    original = reference_run["run"]
    run_id = plant_run(mongo_db, original["experiment"], original["config"])
    mongo_db.runs.update_one({"_id": run_id}, {"$set": {"info.world_size": world_size}})

    result = run_tracker(["rerun", str(run_id)], tmp_path, mongo_url, mongo_db.name, project=project_repo)

    assert result.returncode == 1
    separator = "'s " if line.startswith("info.") else " "
    assert error_lines(result) == [f"error: run {run_id}{separator}{line}"]
    assert mongo_db.runs.count_documents({}) == 1


# ---- notebook-style runs ---------------------------------------------------------------------------------------------
def test_a_rerun_whose_script_ignores_its_config_fails_naming_the_keys(project_repo, mongo_url, mongo_db):
    script = "tests/notebook_experiment.py"
    made = subprocess.run([sys.executable, script], cwd=project_repo, capture_output=True, text=True, timeout=300,
                          env=python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name, PYTHONPATH=project_repo))
    assert made.returncode == 0, made.stderr
    original = newest_run(mongo_db)
    assert original["status"] == "COMPLETED" and original["config"]["steps"] == 5

    result = run_tracker(["rerun", str(original["_id"]), "with", "steps=7"], project_repo, mongo_url, mongo_db.name,
                         project=project_repo)

    assert result.returncode == 1
    rerun = newest_run(mongo_db)
    assert rerun["_id"] != original["_id"] and rerun["info"]["rerun_of"] == original["_id"]
    assert rerun["status"] == "FAILED" and rerun["result"] is None
    lines = [line for line in error_lines(result) if line.startswith("error: ") or "Traceback" in line]
    assert lines == [f"error: run {rerun['_id']}'s config differs from the stored one in seed and leaves out the "
                     f"changes steps=7, because its script ignores its command line (it calls ex.run itself); the run "
                     f"was stopped: rerun such a run with its script's own ex.run(config_updates=<the stored config>), "
                     f"see README"], result.stderr
    assert "the script ignores its command line" in result.stderr  # the line saying what the rerun runs
