"""Trained networks back from runs: `load_model`, `tracker get` and `tracker export`."""
import json
import subprocess
import sys

from conftest import LocalMongoServer, git, metric, python_env, run_experiment, run_tracker

# Recomputes the test accuracy of a run's best network as the trainer evaluates it, then prints it as JSON.
TEST_ACCURACY = """
import contextlib, json, sys, torch
from tracker import load_model
from tracker.models import run_command
from runstore.run_store import open_run
from ingredients.trainer import evaluate

network = load_model(sys.argv[1])
loaded_as = {"training": network.training, "device": str(next(network.parameters()).device)}
task, data, _ = run_command(open_run(sys.argv[1]), "rebuild")
channels_last = json.loads(sys.argv[2])
if channels_last:
    network = network.to(memory_format=torch.channels_last)
prepare = lambda inputs: inputs.contiguous(memory_format=torch.channels_last) if channels_last else inputs
metrics = evaluate(network, data.test, task.create_loss(), task.create_metrics(), task.predict, prepare,
                   contextlib.nullcontext)
print(json.dumps({"acc": metrics["acc"], **loaded_as}))
"""

# Predictions of an export folder's torch.export program, in a process that imports nothing of this project.
EXPORTED_PREDICTIONS = """
import json, sys, torch
folder = sys.argv[1]
program = torch.export.load(f"{folder}/model.pt2").module()
inputs = torch.load(f"{folder}/example_inputs.pt", weights_only=True)
print(json.dumps(program(inputs).tolist()))
"""

# The same inputs through load_model's network.
LOADED_PREDICTIONS = """
import json, sys, torch
from tracker import load_model
inputs = torch.load(f"{sys.argv[2]}/example_inputs.pt", weights_only=True)
with torch.no_grad():
    print(json.dumps(load_model(sys.argv[1]).eval()(inputs).tolist()))
"""


def python(code, *args, cwd, **env):
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=python_env(**env),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_load_model_gives_the_network_whose_test_accuracy_the_run_stored(reference_run, mongo_url, workdir):
    run = reference_run["run"]
    loaded = python(TEST_ACCURACY, run["_id"], json.dumps(run["config"]["trainer"]["channels_last"]), cwd=workdir,
                    MONGO_URL=mongo_url, SACRED_DB=reference_run["db_name"])
    (stored_acc,) = metric(reference_run["db"], run["_id"], "test.acc").values()
    assert loaded == {"acc": stored_acc, "training": False, "device": "cpu"}


def test_an_export_rebuilds_the_same_predictions_with_the_database_stopped(tmp_path, workdir, db_name):
    server = LocalMongoServer(tmp_path / "mongo").start()
    try:
        result = run_experiment(["with", "smoke", "data.limit=600", "trainer.steps=6", "trainer.val_every=3"],
                                workdir, server.url, db_name)
        assert result.returncode == 0, result.stderr
        export = tmp_path / "exported"
        git("init", "-q", cwd=tmp_path)  # the README's `tracker export 3 exported/run3` in a checkout
        result = run_tracker(["export", "1", str(export)], workdir, server.url, db_name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "pkg_resources" not in result.stderr  # Sacred's import warns of it, and the export does not show it
        loaded = python(LOADED_PREDICTIONS, 1, export, cwd=workdir, MONGO_URL=server.url, SACRED_DB=db_name)
    finally:
        server.stop()
    exported = {p.name for p in export.iterdir()}
    assert {"model_best.pt", "config.json", "results.json", "model.pt2", "README.md"} <= exported
    assert (export / "source" / "experiments" / "cifar.py").is_file()
    assert git("status", "--porcelain", "--", "exported", cwd=tmp_path) == ""  # it makes no later run dirty
    assert json.loads((export / "config.json").read_text())["trainer"]["steps"] == 6
    outside = tmp_path / "outside"
    outside.mkdir()
    assert python(EXPORTED_PREDICTIONS, export, cwd=outside, PYTHONPATH="") == loaded


def test_tracker_get_downloads_an_artifact_and_names_the_ones_there(smoke_run, mongo_url, workdir, tmp_path):
    run_id, db = smoke_run["run"]["_id"], smoke_run["db_name"]
    # As the README writes it: a folder that does not exist yet.
    git("init", "-q", cwd=tmp_path)
    result = run_tracker(["get", str(run_id), "results.json", "--out", "checkpoints/"], tmp_path, mongo_url, db)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "checkpoints" / "results.json").read_text())["steps"] == 300
    assert git("status", "--porcelain", cwd=tmp_path) == ""  # a record, which makes no later run dirty
    result = run_tracker(["get", str(run_id), "nope.pt"], workdir, mongo_url, db)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: run {run_id} has no artifact 'nope.pt'; it has {', '.join(smoke_run_artifacts(smoke_run))}"
    ]


def smoke_run_artifacts(smoke_run):
    return list(dict.fromkeys(entry["name"] for entry in smoke_run["run"]["artifacts"]))


def test_a_run_without_models_gives_one_line(workdir, mongo_url, db_name):
    # Interrupted before the end of training: a checkpoint, but no model_best.pt.
    result = run_experiment(["with", "smoke", "data.limit=10"], workdir, mongo_url, db_name)
    assert result.returncode == 1
    for command in (["export", "1", str(workdir / "never")], ["get", "1", "model_best.pt"]):
        result = run_tracker(command, workdir, mongo_url, db_name)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "model_best.pt" in result.stderr
    assert not (workdir / "never").exists()
