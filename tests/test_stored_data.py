"""Stored data runs no code and reads no other files: a stored patch, a sweep record, a run folder's run.json, and
stored text printed to a terminal (docs/security.md, "What stored data can and cannot do").

Each planted payload would create a marker file if it ran; each test checks that it never appears.
"""
import hashlib
import io
import json
import os
import subprocess
import sys

import gridfs
import pytest
import torch
from conftest import git, python_env, run_tracker
from test_trust import sweep_record

from ingredients.checkpoint import CHECKPOINT_KEYS
from runstore.errors import UserError
from runstore.run_store import FolderStore, open_run
from runstore.settings import Settings
from tracker.launch import show_patch

PAYLOAD_TAG = "py/reduce"


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def payload(marker):
    """A jsonpickle value that, if Sacred decoded it, would create `marker`."""
    return {PAYLOAD_TAG: [{"py/function": "os.system"}, {"py/tuple": [f"touch {marker}"]}]}


def head(repo):
    return git("rev-parse", "HEAD", cwd=repo).strip()


# ---- 27.1: a stored patch is applied only when asked, after it is shown ---------------------------------------------
def marker_patch(repo, marker):
    """A patch of experiments/cifar.py that, once applied and run, creates `marker` (made with git, then undone)."""
    script = repo / "experiments" / "cifar.py"
    original = script.read_text()
    script.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n" + original)
    try:
        return git("diff", "--binary", "HEAD", "--", "experiments/cifar.py", cwd=repo).encode()
    finally:
        script.write_text(original)


def plant_dirty_run(db, reference, repo, patch, status="FAILED", checkpoint=None):
    """The reference run as an attacker with write access to the database would store it: uncommitted changes, and
    `patch` as its git_diff.patch (stored as Omniboard's API would, in GridFS). Its data.limit=10 ends a rerun early."""
    files = gridfs.GridFS(db)
    artifacts = [{"name": "git_diff.patch", "file_id": files.put(patch)}]
    if checkpoint is not None:
        artifacts.append({"name": "checkpoint.pt", "file_id": files.put(checkpoint)})
    experiment = {**reference["experiment"], "sources": [],
                  "repositories": [{"url": f"git:/{repo}", "commit": head(repo), "dirty": True}]}
    config = {**reference["config"], "data": {**reference["config"]["data"], "limit": 10}}
    run_id = 100 + db.runs.count_documents({})
    db.runs.insert_one({"_id": run_id, "status": status, "experiment": experiment, "config": config, "info": {},
                        "artifacts": artifacts, "meta": {}, "host": reference["host"],
                        "start_time": reference["start_time"]})
    return run_id


def a_checkpoint():
    buffer = io.BytesIO()
    torch.save({**dict.fromkeys(CHECKPOINT_KEYS, 0), "step": 8}, buffer)
    return buffer.getvalue()


def test_a_stored_patch_runs_only_with_apply_diff_after_it_is_shown(reference_run, project_repo, tmp_path, mongo_url,
                                                                     mongo_db):
    marker = tmp_path / "PWNED"
    patch = marker_patch(project_repo, marker)
    run_id = plant_dirty_run(mongo_db, reference_run["run"], project_repo, patch)
    resumable = plant_dirty_run(mongo_db, reference_run["run"], project_repo, patch, "INTERRUPTED", a_checkpoint())
    patch_is_code = ("that patch is code, and anyone who can write to the run store may have changed it: read what "
                     "it changes above, then add --apply-diff to apply it, or --force to run this checkout's code")

    def screen(run):
        return [f"run {run}'s git_diff.patch is code; applied to its commit, it changes:",
                "  experiments/cifar.py  +2 -0", f"  sha256 {hashlib.sha256(patch).hexdigest()}",
                f"  no folder of run {run} in RUNS_DIR recorded a sha256 to check it against (a run's folder is "
                f"removed once MongoDB holds it)"]

    def tracker(*args):
        return run_tracker(list(args), tmp_path, mongo_url, mongo_db.name, project=project_repo)

    plain = tracker("rerun", str(run_id))
    assert plain.returncode == 1
    (line,) = error_lines(plain)
    assert line.endswith("with uncommitted changes (this checkout: commit "
                         f"{head(project_repo)[:12]}); add --at-commit --apply-diff to run the original code with its "
                         "stored git_diff.patch, which is code (its files, line counts and sha256 are shown before it "
                         "runs), or --force to run this checkout's code"), line
    for command, run in (("rerun", run_id), ("resume", resumable)):
        refused = tracker(command, "--at-commit", str(run))
        assert refused.returncode == 1
        # What it would change is shown first, so that the user chooses --apply-diff knowing it.
        assert error_lines(refused) == [*screen(run), f"error: run {run} ran at commit {head(project_repo)[:12]} with "
                                        f"uncommitted changes, stored as its git_diff.patch; {patch_is_code}"]
    assert not marker.exists()
    assert mongo_db.runs.count_documents({}) == 2

    applied = tracker("rerun", "--at-commit", "--apply-diff", str(run_id))

    # The user asked for it, so the patch ran; what it changes was shown first.
    assert applied.returncode == 1 and "larger than the 10 training images" in applied.stderr, applied.stderr
    assert marker.exists()
    shown = applied.stderr[:applied.stderr.index(f"rerun of run {run_id}: ")]
    assert shown == "\n".join(screen(run_id)) + "\n"


def stored_folder_run(tmp_path, patch, recorded):
    """A file-store run folder holding `patch`, whose info.json recorded the sha256 `recorded`."""
    folder = tmp_path / "runs" / "1"
    folder.mkdir(parents=True)
    entry = {"status": "FAILED", "artifacts": ["git_diff.patch"], "experiment": {"name": "cifar", "sources": []},
             "resources": []}
    (folder / "run.json").write_text(json.dumps(entry))
    (folder / "config.json").write_text("{}")
    (folder / "info.json").write_text(json.dumps({"git_diff_sha256": recorded}))
    (folder / "git_diff.patch").write_bytes(patch)
    return FolderStore(folder.parent).open(folder)


def test_a_number_names_a_database_run_even_beside_a_folder_of_that_name(tmp_path, monkeypatch, mongo_url):
    folder_run = stored_folder_run(tmp_path, b"", "")  # tmp_path/runs/1
    monkeypatch.chdir(folder_run.key.parent)
    settings = Settings(mongo_url=mongo_url, db_name="no_runs_here", runs_dir=tmp_path / "runs")

    with pytest.raises(UserError, match="^there is no run 1 in database 'no_runs_here'"):
        open_run("1", settings)
    assert open_run("./1", settings).origin == str(folder_run.key)


NUMSTAT = "2\t0\texperiments/cifar.py\n-\t-\tdata.bin"


def test_the_patch_screen_checks_the_digest_the_run_recorded_in_its_folder(tmp_path, capsys):
    patch = b"diff --git a/x b/x\n"
    digest = hashlib.sha256(patch).hexdigest()
    same = stored_folder_run(tmp_path / "same", patch, digest)
    show_patch(same, patch, NUMSTAT)
    assert capsys.readouterr().err == (f"run {same.key}'s git_diff.patch is code; applied to its commit, it changes:\n"
                                       f"  experiments/cifar.py  +2 -0\n"
                                       f"  data.bin              binary\n"
                                       f"  sha256 {digest}\n"
                                       f"  the same sha256 as the run recorded in {same.key / 'info.json'}\n")

    changed = stored_folder_run(tmp_path / "changed", patch, "0" * 64)
    with pytest.raises(UserError) as refused:
        show_patch(changed, patch, NUMSTAT)
    assert str(refused.value) == (f"run {changed.key}'s git_diff.patch has sha256 {digest}, but the run recorded "
                                  f"{'0' * 64} in {changed.key / 'info.json'}: it was changed since, and was not "
                                  f"applied; use --force to run this checkout's code")


# ---- 27.9: an --at-commit run records into the checkout's own store ------------------------------------------------
def test_an_at_commit_run_records_into_the_checkouts_store_not_the_worktree(failed_file_store_run, project_repo,
                                                                            tmp_path):
    clone = tmp_path / "clone"
    git("clone", "-q", str(project_repo), str(clone), cwd=tmp_path)
    git("commit", "-q", "--allow-empty", "-m", "later", cwd=clone)  # the run's commit is not this checkout's
    env = python_env(PYTHONPATH=clone)  # no MONGO_URL or RUNS_DIR: the project's default store, which is not started

    result = subprocess.run([sys.executable, "-m", "tracker", "rerun", "--at-commit", str(failed_file_store_run)],
                            cwd=clone, env=env, capture_output=True, text=True, timeout=300)

    # The run fails as the original did (data.limit=10), says so in its exit status, and stays in clone/runs.
    assert result.returncode == 1 and "larger than the 10 training images" in result.stderr, result.stderr
    (folder,) = [path for path in (clone / "runs").iterdir() if path.name.isdigit()]
    assert json.loads((folder / "run.json").read_text())["status"] == "FAILED"
    assert json.loads((folder / "info.json").read_text())["rerun_of"] == str(failed_file_store_run.resolve())
    assert git("worktree", "list", cwd=clone).strip().count("\n") == 0  # the temporary worktree is gone


# ---- 27.2: a sweep record's values reach the trial as plain JSON only ---------------------------------------------
@pytest.mark.parametrize("planted", ["params", "arguments", "a params key", "a json:// key"])
@pytest.mark.parametrize("in_database", [True, False])
def test_a_sweep_record_holding_jsonpickle_never_runs(planted, in_database, tmp_path, mongo_url, mongo_db):
    marker, here = tmp_path / "PWNED", tmp_path / "here"
    here.mkdir()
    if planted == "params":
        changes = {"trials": [{"number": 0, "params": {"lr": payload(marker)}, "status": "QUEUED", "run": None,
                               "result": None, "runs": []}]}
        where = f"trials[0].params.lr.{PAYLOAD_TAG}"
    elif planted == "a params key":  # Sacred splits `with` arguments at the first '=': the rest is the value
        changes = {"trials": [{"number": 0, "params": {f"lr={payload(marker)!r}#": 1}, "status": "QUEUED",
                               "run": None, "result": None, "runs": []}]}
        where = f"trials[0].params.lr.{PAYLOAD_TAG}"
    elif planted == "a json:// key":  # jsonpickle decodes such a key, as Sacred reads it
        key = f"json://{json.dumps(payload(marker))}"
        changes = {"trials": [{"number": 0, "params": {"lr": {key: 1}}, "status": "QUEUED", "run": None,
                               "result": None, "runs": []}]}
        where = f"trials[0].params.lr.{key}"
    else:  # a fixed argument, given to every trial as it is
        changes = {"arguments": ["smoke", f"trainer.steps={payload(marker)!r}", "lr=[0.1]"]}
        where = f"arguments.trainer.steps.{PAYLOAD_TAG}"
    record = sweep_record(here, **changes)
    if in_database:
        mongo_db.sweeps.insert_one(record)
        copy = "MongoDB"
    else:
        folder = here / "sweeps" / "1"
        folder.mkdir(parents=True)
        (folder / "sweep.json").write_text(json.dumps(record))
        copy = folder / "sweep.json"

    result = run_tracker(["sweep", "--continue", "1"], here, mongo_url, mongo_db.name)

    assert result.returncode == 1
    assert error_lines(result) == [f"error: sweep 1's record in {copy} holds the jsonpickle tag at {where}, which "
                                   f"would run code when read; it was not used: stored values must be plain JSON "
                                   f"(numbers, text, lists, objects)"]
    assert not marker.exists()
    assert mongo_db.runs.count_documents({}) == 0


def test_a_trial_only_in_the_databases_copy_of_a_sweep_record_never_runs(tmp_path, mongo_url, mongo_db):
    here = tmp_path / "here"
    folder = here / "sweeps" / "1"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(sweep_record(here)))
    planted = {"number": 1, "params": {"lr": 0.5}, "status": "QUEUED", "run": None, "result": None, "runs": []}
    mongo_db.sweeps.insert_one(sweep_record(here, trials=[*sweep_record(here)["trials"], planted]))

    result = run_tracker(["sweep", "--continue", "1"], here, mongo_url, mongo_db.name)

    assert result.returncode == 1
    assert error_lines(result) == [f"error: sweep 1's trial 1's params in MongoDB ({{'lr': 0.5}}) differs from the one "
                                   f"in {folder / 'sweep.json'} (None); it was not run: tracker starts only scripts "
                                   f"of the checkout it runs from"]
    assert mongo_db.runs.count_documents({}) == 0


@pytest.mark.parametrize("planted, in_database", [("arguments", True), ("params", False)])
def test_a_sweep_records_data_root_outside_the_data_folder_is_used_only_when_given_again(
    planted, in_database, tmp_path, mongo_url, mongo_db
):
    """As `tracker rerun` (test_trust): a stored data.root, in the fixed arguments or a trial's params of either copy
    of the record, is used by `--continue` only when the user gives data.root again."""
    here, elsewhere = tmp_path / "here", str(tmp_path / "elsewhere")
    if planted == "arguments":
        record, label = sweep_record(here, arguments=["smoke", f"data.root={elsewhere}", "lr=[0.1]"]), "sweep 1"
    else:
        # A short run: given again, the trial trains (what it trains is not what this test checks).
        record = sweep_record(here, arguments=["smoke", "trainer.steps=20", "trainer.val_every=10", "lr=[0.1]"],
                              trials=[{"number": 0, "params": {"lr": 0.1, "data.root": elsewhere},
                                       "status": "QUEUED", "run": None, "result": None, "runs": []}])
        label = "sweep 1's trial 0"
    folder = here / "sweeps" / "1"
    folder.mkdir(parents=True)
    if in_database:
        mongo_db.sweeps.insert_one(record)
    else:
        (folder / "sweep.json").write_text(json.dumps(record))

    refused = run_tracker(["sweep", "--continue", "1"], here, mongo_url, mongo_db.name)

    assert refused.returncode == 1
    assert error_lines(refused) == [
        f"error: {label}'s data.root {elsewhere!r} is outside the experiment's data folder 'data'; it was not used, "
        f"so that a rerun writes data only there: give it on the command line to use it (with data.root=PATH)"]
    assert mongo_db.runs.count_documents({}) == 0
    assert not os.path.exists(elsewhere)

    if planted == "params":  # given again, the user's own folder is used
        given = tmp_path / "my data"
        again = run_tracker(["sweep", "--continue", "1", "with", f"data.root={given}"], here, mongo_url,
                            mongo_db.name)
        assert again.returncode == 0, again.stdout + again.stderr
        assert [run["config"]["data"]["root"] for run in mongo_db.runs.find()] == [str(given)]
        assert not os.path.exists(elsewhere)


# ---- 27.4: `tracker sync` reads only files inside the run folder ---------------------------------------------------
@pytest.mark.parametrize("kind", ["an artifact", "a source", "a resource", "a linked artifact"])
def test_sync_reads_nothing_outside_the_run_folder(kind, tmp_path, mongo_url, mongo_db):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "a.txt").write_text("the secret")
    folder = tmp_path / "runs" / "1"
    (folder / "_sources").mkdir(parents=True)
    named = {"an artifact": "../../secret/a.txt", "a source": "../secret/a.txt",
             "a resource": str(secret / "a.txt"), "a linked artifact": "a.txt"}[kind]
    entry = {"status": "COMPLETED", "host": {"hostname": "elsewhere"}, "start_time": "2026-01-01T00:00:00",
             "stop_time": "2026-01-01T00:00:10", "heartbeat": "2026-01-01T00:00:10", "command": "main", "meta": {},
             "experiment": {"name": "cifar", "base_dir": str(tmp_path), "mainfile": "cifar.py", "repositories": [],
                            "sources": [["cifar.py", named]] if kind == "a source" else []},
             "resources": [[named, named]] if kind == "a resource" else [],
             "artifacts": [named] if "artifact" in kind else [], "result": 0.5}
    if kind == "a linked artifact":
        os.symlink(secret / "a.txt", folder / "a.txt")
    (folder / "run.json").write_text(json.dumps(entry))
    (folder / "config.json").write_text(json.dumps({"seed": 1}))

    result = run_tracker(["sync", str(folder)], tmp_path, mongo_url, mongo_db.name)

    # Not uploaded at all, so nothing is half there: the folder stays, to be repaired or removed.
    assert result.returncode == 1
    assert f"failed {folder}: {folder / 'run.json'} names {named!r} as {kind.replace('a linked', 'an')}, outside the " \
           f"run folder; it was not read; repair or remove the folder" in result.stdout.splitlines(), result.stdout
    assert mongo_db.runs.count_documents({}) == 0 and mongo_db["fs.files"].count_documents({}) == 0
    assert (folder / "run.json").is_file()


def test_sync_reads_no_linked_run_file_outside_the_run_folder(tmp_path, mongo_url, mongo_db):
    (tmp_path / "secret.txt").write_text("the secret")
    folder = tmp_path / "runs" / "1"
    folder.mkdir(parents=True)
    entry = {"status": "COMPLETED", "host": {"hostname": "elsewhere"}, "start_time": "2026-01-01T00:00:00",
             "stop_time": "2026-01-01T00:00:10", "heartbeat": "2026-01-01T00:00:10", "command": "main", "meta": {},
             "experiment": {"name": "cifar", "base_dir": str(tmp_path), "mainfile": "cifar.py", "repositories": [],
                            "sources": []}, "resources": [], "artifacts": [], "result": 0.5}
    (folder / "run.json").write_text(json.dumps(entry))
    (folder / "config.json").write_text(json.dumps({"seed": 1}))
    os.symlink(tmp_path / "secret.txt", folder / "cout.txt")  # would be uploaded as the run's captured output

    result = run_tracker(["sync", str(folder)], tmp_path, mongo_url, mongo_db.name)

    assert result.returncode == 1
    assert f"failed {folder}: {folder / 'cout.txt'} links to a file outside the run folder; it was not read; repair " \
           f"or remove the folder" in result.stdout.splitlines(), result.stdout
    assert mongo_db.runs.count_documents({}) == 0


# ---- 27.8: stored text reaches the terminal with its control characters escaped --------------------------------------
ESCAPES = "\x1b]0;TITLE\x07\x1b[2J"
SHOWN = r"\x1b]0;TITLE\x07\x1b[2J"


def test_stored_text_is_printed_with_its_control_characters_escaped(reference_run, project_repo, tmp_path, mongo_url,
                                                                    mongo_db):
    reference = reference_run["run"]
    # A main file outside the checkout: the rerun warns of the packages, then refuses it (nothing trains).
    experiment = {**reference["experiment"], "name": "x" + ESCAPES, "mainfile": "../elsewhere.py"}
    for run_id, lr in ((1, ESCAPES), (2, 0.5)):
        mongo_db.runs.insert_one({
            "_id": run_id, "status": "COMPLETED", "experiment": experiment,
            "config": {**reference["config"], "lr": lr}, "host": reference["host"], "meta": {}, "artifacts": [],
            "start_time": reference["start_time"], "stop_time": reference["stop_time"], "result": 0.5,
            "info": {"environment": {"packages": {"torch" + ESCAPES: "0.0"}}}})

    def tracker(*args):
        return run_tracker(list(args), tmp_path, mongo_url, mongo_db.name, project=project_repo)

    runs, compare, rerun = tracker("runs"), tracker("compare", "1", "2"), tracker("rerun", "1")

    for result in (runs, compare, rerun):
        assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert "x" + SHOWN in runs.stdout and SHOWN in compare.stdout, runs.stdout + compare.stdout
    assert f"WARNING: run 1 ran with torch{SHOWN} 0.0; installed now: torch{SHOWN} (not installed)" \
           in rerun.stderr.splitlines(), rerun.stderr
