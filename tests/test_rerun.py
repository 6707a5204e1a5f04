"""`tracker rerun`: a recorded run runs again as a new run, with its stored config, on the code version chosen."""
import json
from hashlib import sha256

import pytest
from conftest import COMPUTED_METRICS, git, metric, newest_run, run_tracker

from runstore.layout import read_file


def run_count(db):
    return len(list(db.runs.find({}, {"_id": 1})))


def assert_same_metrics(db, run_id, other_id):
    for name in COMPUTED_METRICS:
        values = metric(db, run_id, name)
        assert values, f"run {run_id} logged no {name}"
        assert values == metric(db, other_id, name), name


def artifact_text(db, run, name):
    (file_id,) = [artifact["file_id"] for artifact in run["artifacts"] if artifact["name"] == name]
    return read_file(db, file_id).decode()


def recorded_repository(run):
    return run["experiment"]["repositories"][0]


@pytest.fixture
def changed_clone(project_repo, tmp_path):
    """A clone of the project with one more commit, which changes training (smaller crops)."""
    clone = tmp_path / "clone"
    git("clone", "-q", str(project_repo), str(clone), cwd=tmp_path)
    replace_in(clone / "ingredients" / "cifar" / "data.py", "CROP_PADDING = 4", "CROP_PADDING = 2")
    git("commit", "-q", "-am", "smaller crop padding", cwd=clone)
    return clone


def replace_in(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} is no longer in {path}; update this test"
    path.write_text(text.replace(old, new))


def test_rerun_gives_the_same_config_and_metrics(reference_run, project_repo, workdir, mongo_url):
    db, original = reference_run["db"], reference_run["run"]
    assert (original["config"]["lr"], original["config"]["model"]["width"]) == (0.02, 8)  # non-default values

    result = run_tracker(["rerun", str(original["_id"])], workdir, mongo_url, reference_run["db_name"],
                         project=project_repo)

    assert result.returncode == 0, result.stdout + result.stderr
    # One line says what runs: the script, the commit, and the values other than the experiment's defaults.
    (said,) = [line for line in result.stderr.splitlines() if line.startswith(f"rerun of run {original['_id']}: ")]
    commit = recorded_repository(original)["commit"][:12]
    assert said.startswith(f"rerun of run {original['_id']}: experiments/cifar.py at commit {commit} of "
                           f"{project_repo}; config differing from its defaults: "), said
    assert "lr=0.02" in said and "model.width=8" in said and f"seed={original['config']['seed']}" in said
    assert "trainer.steps=24" in said and "trainer.optimizer=" not in said
    rerun = newest_run(db)
    assert rerun["_id"] != original["_id"] and rerun["status"] == "COMPLETED"
    assert rerun["config"] == original["config"]  # the seed included
    assert rerun["info"]["rerun_of"] == original["_id"] and rerun["info"]["overrides"] == []
    assert "forced_instead_of" not in rerun["info"]
    assert recorded_repository(rerun) == recorded_repository(original)
    assert_same_metrics(db, rerun["_id"], original["_id"])
    assert rerun["result"] == original["result"]


def test_code_change_is_refused_and_at_commit_reproduces_the_run(reference_run, changed_clone, workdir, mongo_url):
    db, original = reference_run["db"], reference_run["run"]
    old_commit = recorded_repository(original)["commit"]
    new_commit = git("rev-parse", "HEAD", cwd=changed_clone).strip()
    runs_before = run_count(db)

    refused = run_tracker(["rerun", str(original["_id"])], workdir, mongo_url, reference_run["db_name"],
                          project=changed_clone)

    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert old_commit[:12] in refused.stderr and new_commit[:12] in refused.stderr
    assert run_count(db) == runs_before

    result = run_tracker(["rerun", str(original["_id"]), "--at-commit"], workdir, mongo_url,
                         reference_run["db_name"], project=changed_clone)

    assert result.returncode == 0, result.stdout + result.stderr
    rerun = newest_run(db)
    assert recorded_repository(rerun)["commit"] == old_commit and not recorded_repository(rerun)["dirty"]
    assert rerun["info"]["rerun_of"] == original["_id"] and rerun["config"] == original["config"]
    assert_same_metrics(db, rerun["_id"], original["_id"])
    assert git("worktree", "list", cwd=changed_clone).strip().count("\n") == 0  # the temporary worktree is gone


def test_force_runs_this_code_and_at_commit_restores_uncommitted_changes(
    reference_run, changed_clone, workdir, mongo_url
):
    db, original = reference_run["db"], reference_run["run"]
    data_file = changed_clone / "ingredients" / "cifar" / "data.py"
    replace_in(data_file, "CROP_PADDING = 2", "CROP_PADDING = 3")  # uncommitted
    head = git("rev-parse", "HEAD", cwd=changed_clone).strip()
    # data.limit=10 (fewer images than a batch) ends these runs early: what is tested is the code they ran.
    stop_early = ["with", "data.limit=10"]

    forced = run_tracker(["rerun", "--force", str(original["_id"]), *stop_early], workdir, mongo_url,
                         reference_run["db_name"], project=changed_clone)

    assert forced.returncode == 1 and "larger than the 10 training images" in forced.stderr, forced.stderr
    run = newest_run(db)
    assert run["info"]["forced_instead_of"] == recorded_repository(original)
    assert run["info"]["rerun_of"] == original["_id"] and run["info"]["overrides"] == ["data.limit=10"]
    assert run["config"] == {**original["config"], "data": {**original["config"]["data"], "limit": 10}}
    assert (recorded_repository(run)["commit"], recorded_repository(run)["dirty"]) == (head, True)
    patch = artifact_text(db, run, "git_diff.patch")
    assert "+CROP_PADDING = 3" in patch

    git("checkout", "--", ".", cwd=changed_clone)  # the checkout is clean again, at the same commit
    refused = run_tracker(["rerun", str(run["_id"])], workdir, mongo_url, reference_run["db_name"],
                          project=changed_clone)
    assert refused.returncode == 1 and "with uncommitted changes" in refused.stderr
    assert "add --at-commit --apply-diff to run the original code with its stored git_diff.patch" in refused.stderr

    again = run_tracker(["rerun", str(run["_id"]), "--at-commit", "--apply-diff"], workdir, mongo_url,
                        reference_run["db_name"], project=changed_clone)

    assert again.returncode == 1 and "larger than the 10 training images" in again.stderr, again.stderr
    rerun = newest_run(db)
    assert rerun["info"]["rerun_of"] == run["_id"] and rerun["config"] == run["config"]
    assert (recorded_repository(rerun)["commit"], recorded_repository(rerun)["dirty"]) == (head, True)
    # Its temporary worktree had the forced run's changes re-applied, so it recorded the same patch.
    assert artifact_text(db, rerun, "git_diff.patch") == patch
    assert f"  ingredients/cifar/data.py  +1 -1\n  sha256 {sha256(patch.encode()).hexdigest()}\n" in again.stderr
    assert "CROP_PADDING = 2" in data_file.read_text()  # this checkout was not touched


def test_force_refuses_config_keys_the_code_no_longer_has(reference_run, project_repo, tmp_path, workdir,
                                                          mongo_url):
    db, original = reference_run["db"], reference_run["run"]
    clone = tmp_path / "clone"
    git("clone", "-q", str(project_repo), str(clone), cwd=tmp_path)
    for path in (clone / "ingredients" / "trainer.py", clone / "experiments" / "cifar.py"):
        replace_in(path, "print_every", "report_every")
    git("commit", "-q", "-am", "rename trainer.print_every", cwd=clone)
    runs_before = run_count(db)

    result = run_tracker(["rerun", "--force", str(original["_id"])], workdir, mongo_url, reference_run["db_name"],
                         project=clone)

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "trainer.print_every" in result.stderr and "--at-commit" in result.stderr
    assert run_count(db) == runs_before


def test_rerun_of_a_file_store_run(failed_file_store_run, reference_run, project_repo, workdir, mongo_url):
    assert json.loads((failed_file_store_run / "run.json").read_text())["status"] == "FAILED"

    result = run_tracker(["rerun", str(failed_file_store_run)], workdir, mongo_url, reference_run["db_name"],
                         project=project_repo)

    # The stored config fails as the original did, and the new run is recorded in MongoDB.
    assert result.returncode == 1 and "data.batch_size=64 is larger" in result.stderr
    rerun = newest_run(reference_run["db"])
    assert rerun["status"] == "FAILED"
    assert rerun["info"]["rerun_of"] == str(failed_file_store_run.resolve())
    assert rerun["config"] == json.loads((failed_file_store_run / "config.json").read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        (["rerun", "999"], "there is no run 999"),
        (["rerun", "no-such-run"], "neither a run id nor a run folder"),
        (["rerun", "1", "lr=0.05"], "put config changes after 'with'"),
    ],
)
def test_rerun_errors_are_one_line(args, message, workdir, mongo_url, mongo_db, db_name):
    result = run_tracker(args, workdir, mongo_url, db_name)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr
