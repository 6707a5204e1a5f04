"""End to end: `experiments/cifar.py` runs as a user runs it, and we read back what the run store holds."""
import io
import json
import re
import subprocess
import sys
import uuid

import gridfs
import pytest
import torch

from ingredients.cifar.model import build_model
from conftest import EXPERIMENT, REPO_ROOT, free_port, newest_run, python_env, run_experiment, run_tracker

QUICK = ["trainer.steps=20", "trainer.val_every=10", "data.limit=1000"]


def artifact_bytes(db, run, name):
    [file_id] = [a["file_id"] for a in run["artifacts"] if a["name"] == name][-1:]
    return gridfs.GridFS(db).get(file_id).read()


def test_smoke_run_is_recorded_completely_in_mongodb(smoke_run):
    db, run = smoke_run["db"], smoke_run["run"]
    assert run["status"] == "COMPLETED"
    assert run["result"] >= 0.6
    assert run["config"]["lr"] == 0.01
    assert "lr" not in run["config"]["trainer"]  # one learning rate only
    assert run["meta"]["comment"] == "smoke test"
    data = run["info"]["data"]  # in-memory tensors: fingerprinted over their bytes
    assert data["rule"] == "tensors" and len(data["digest"]) == 16 and data["counts"]["train"] == 6000

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    assert {repo["commit"] for repo in run["experiment"]["repositories"]} == {head}
    assert "experiments/cifar.py" in [name for name, _ in run["experiment"]["sources"]]

    assert "Iteration 100/300 | examples/s:" in run["captured_out"]
    assert "Fetch data time:" in run["captured_out"]
    assert "Validation at step 300/300" in run["captured_out"]
    # The first best score has no previous one (not "-inf -> 0.5123").
    assert re.search(r"Validation at step 100/300 .*\nNew best score: \d\.\d{4}\n", run["captured_out"])
    assert "inf" not in run["captured_out"]

    metrics = {m["name"]: m for m in db.metrics.find({"run_id": run["_id"]})}
    assert {"train.loss", "train.acc", "lr", "examples_per_s", "time.data_ms", "time.step_ms",
            "val.loss", "val.acc"} <= set(metrics)
    assert metrics["lr"]["steps"][0] == 1 and metrics["lr"]["values"][0] == 0.01
    assert metrics["train.loss"]["steps"] == [1] + list(range(10, 301, 10))
    assert metrics["val.acc"]["steps"] == [100, 200, 300]
    assert max(metrics["val.acc"]["values"]) == run["result"]


def test_smoke_run_artifacts_are_usable(smoke_run):
    db, run = smoke_run["db"], smoke_run["run"]
    names = {a["name"] for a in run["artifacts"]}
    assert {"checkpoint.pt", "model_best.pt", "model_last.pt", "results.json", "confusion_matrix.png",
            "train_samples.png"} <= names
    results = json.loads(artifact_bytes(db, run, "results.json"))
    assert results["best_val_acc"] == run["result"] and results["steps"] == 300
    for png in ("confusion_matrix.png", "train_samples.png"):
        assert artifact_bytes(db, run, png).startswith(b"\x89PNG")
    model = build_model(num_classes=10, arch="simple", width=16, dropout=0.0)
    model.load_state_dict(torch.load(io.BytesIO(artifact_bytes(db, run, "model_best.pt")), weights_only=True))
    checkpoint = torch.load(io.BytesIO(artifact_bytes(db, run, "checkpoint.pt")), weights_only=True)
    assert checkpoint["step"] == 300


def test_unreachable_mongodb_records_the_run_in_the_file_store(workdir, tmp_path):
    runs_dir = tmp_path / "runs"
    result = run_experiment(["with", "smoke", "lr=0.01", *QUICK], workdir, f"mongodb://127.0.0.1:{free_port()}",
                            "unused", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    assert "unreachable" in result.stderr
    run_dir = runs_dir / "1"
    for name in ("config.json", "run.json", "metrics.json", "cout.txt", "results.json", "model_best.pt",
                 "confusion_matrix.png", "train_samples.png"):
        assert (run_dir / name).is_file(), name
    run = json.loads((run_dir / "run.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    assert run["status"] == "COMPLETED" and run["experiment"]["repositories"][0]["commit"] == head
    assert json.loads((run_dir / "config.json").read_text())["lr"] == 0.01
    assert len(json.loads((run_dir / "metrics.json").read_text())["train.loss"]["steps"]) == 3  # steps 1, 10, 20
    assert "Iteration 20/20" in (run_dir / "cout.txt").read_text()


@pytest.mark.parametrize("update, names", [
    ("lr=abc", "lr='abc'"),
    ("model.arch=nope", "model.arch='nope'"),
    ("data.dataset=imagenet", "data.dataset='imagenet'"),
    ("data.stream=depth", "data.stream='depth'"),
    ("trainer.save_predictions=maybe", "trainer.save_predictions='maybe'"),
    ("data.batch_size=0", "data.batch_size=0"),
    ("lr=1e400", "lr=inf must be a finite number"),
    ("trainer.momentum=-1e400", "trainer.momentum=-inf must be a finite number"),
    ("trainer.weight_decay=1e400", "trainer.weight_decay=inf must be a finite number"),
])
def test_bad_config_values_fail_in_one_line_without_recording_a_run(update, names, workdir, mongo_url, mongo_db):
    result = run_experiment(["with", "smoke", update], workdir, mongo_url, mongo_db.name)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert mongo_db.runs.count_documents({}) == 0


@pytest.mark.parametrize("experiment, args, message", [
    ("cifar", ["smoke", "data.root=/proc/nope"],
     "data.root='/proc/nope' cannot hold the dataset (No such file or directory"),
    ("cifar", ["smoke", "data.root=/etc/hostname"],
     "data.root='/etc/hostname' cannot hold the dataset (Not a directory"),
    ("cifar", ["lr=0.01", "data.root={tmp_path}"],  # CIFAR-10 itself, offline
     "CIFAR-10 is not in {tmp_path}/cifar-10-batches-py/ and could not be downloaded"),
    ("cifar", ["fast", "data.root={tmp_path}"], "CIFAR-10 is not in {tmp_path}/cifar-10-batches-py/"),
    ("images", ["data.root={tmp_path}/tiles"], "data.root='{tmp_path}/tiles' is not a folder"),
])
def test_missing_data_is_refused_before_the_run_starts(experiment, args, message, workdir, mongo_url, mongo_db,
                                                       tmp_path):
    runs_dir = tmp_path / "runs"
    result = run_experiment(["with", *[arg.format(tmp_path=tmp_path) for arg in args]], workdir, mongo_url,
                            mongo_db.name, runs_dir=runs_dir, experiment=experiment,
                            https_proxy="http://127.0.0.1:1", HTTPS_PROXY="http://127.0.0.1:1")  # offline

    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {message.format(tmp_path=tmp_path)}"), result.stderr
    assert mongo_db.runs.count_documents({}) == 0 and not runs_dir.exists()


def test_a_bad_value_is_refused_before_the_data_is_fetched(workdir, mongo_url, mongo_db, tmp_path):
    # The README's `with lr=1e400` on a fresh clone: the line about lr, not a download of CIFAR-10 first.
    result = run_experiment(["with", "lr=1e400", f"data.root={tmp_path}"], workdir, mongo_url, mongo_db.name,
                            https_proxy="http://127.0.0.1:1", HTTPS_PROXY="http://127.0.0.1:1")  # offline

    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: lr=inf must be a finite number > 0, e.g. with lr=0.01"], result.stderr
    assert list(tmp_path.iterdir()) == [] and mongo_db.runs.count_documents({}) == 0


@pytest.mark.parametrize("experiment, update, message", [
    ("signals", "data.length=4", "data.length=4 is too short for model.stages=3"),
])
def test_data_errors_at_run_time_are_one_line_with_the_fix(experiment, update, message, workdir, mongo_url, mongo_db):
    result = run_experiment(["with", "smoke", update], workdir, mongo_url, mongo_db.name, experiment=experiment)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "\n  File " not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {message}") and ("use " in last or "give " in last), result.stderr


def test_a_run_is_tagged_and_commented_from_the_command_line(workdir, mongo_url, mongo_db, tmp_path):
    result = run_experiment(["with", "smoke", "trainer.steps=4", "trainer.val_every=2", "data.limit=200",
                             "trainer.progress=False", "-T", "baseline,first", "-c", "first try"], workdir, mongo_url,
                            mongo_db.name)

    assert result.returncode == 0, result.stderr
    run = newest_run(mongo_db)
    assert (run["omniboard"]["tags"], run["meta"]["comment"]) == (["baseline", "first"], "first try")
    listed = run_tracker(["runs", "--tag", "baseline", "--format", "json"], tmp_path, mongo_url, mongo_db.name)
    assert [row["id"] for row in json.loads(listed.stdout)] == [run["_id"]], listed.stderr


def test_malformed_mongo_url_fails_in_one_line(workdir, tmp_path):
    password = uuid.uuid4().hex  # generated: no password is written in tracked files
    result = run_experiment(["with", "smoke"], workdir, f"mongodb://user:{password}@[oops", "x",
                            runs_dir=tmp_path / "r")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MONGO_URL" in lines[0] and password not in lines[0], result.stderr
    assert not (tmp_path / "r").exists()


def test_sacred_commands_keep_working(workdir, mongo_url, mongo_db, tmp_path):
    env = python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name)
    usage = subprocess.run([sys.executable, str(EXPERIMENT), "--help"], env=env, capture_output=True, text=True)
    assert usage.returncode == 0 and "print_config" in usage.stdout
    shown = subprocess.run([sys.executable, str(EXPERIMENT), "print_config", "with", "smoke", "lr=0.02"],
                           env=env, cwd=workdir, capture_output=True, text=True)
    assert shown.returncode == 0 and "lr = 0.02" in shown.stdout
    assert "# learning rate of the optimizer" in shown.stdout

    unobserved = run_experiment(["-u", "with", "smoke", *QUICK], workdir, mongo_url, mongo_db.name)
    assert unobserved.returncode == 0, unobserved.stderr
    assert mongo_db.runs.count_documents({}) == 0

    file_store = tmp_path / "extra"
    both = run_experiment(["-F", str(file_store), "with", "smoke", *QUICK], workdir, mongo_url, mongo_db.name)
    assert both.returncode == 0, both.stderr
    assert mongo_db.runs.count_documents({"status": "COMPLETED"}) == 1
    assert (file_store / "1" / "run.json").is_file()


def test_dirty_tree_stores_a_patch_that_restores_the_code(tmp_path, workdir, mongo_url, mongo_db):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    model_file = clone / "ingredients" / "cifar" / "model.py"
    model_file.write_text(model_file.read_text() + "\n# an uncommitted experiment\n")
    (clone / "ingredients" / "new_idea.py").write_text("IDEA = 1\n")
    result = subprocess.run(
        [sys.executable, str(clone / "experiments" / "cifar.py"), "with", "smoke", *QUICK],
        cwd=workdir, env=python_env(PYTHONPATH=clone, MONGO_URL=mongo_url, SACRED_DB=mongo_db.name),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run = mongo_db.runs.find_one()
    assert all(repo["dirty"] for repo in run["experiment"]["repositories"])
    patch = artifact_bytes(mongo_db, run, "git_diff.patch")

    restored = tmp_path / "restored"
    subprocess.run(["git", "clone", "-q", str(clone), str(restored)], check=True)
    subprocess.run(["git", "apply", "-"], input=patch, cwd=restored, check=True)
    assert (restored / "ingredients" / "cifar" / "model.py").read_text() == model_file.read_text()
    assert (restored / "ingredients" / "new_idea.py").read_text() == "IDEA = 1\n"
