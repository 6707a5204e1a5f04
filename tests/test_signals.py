"""The second experiment (experiments/signals.py): another task on the same trainer and the same one-line tracking."""
import json
import re
import uuid

import pymongo
import pytest
from conftest import free_port, interrupt_at, metric, newest_run, run_experiment, run_tracker

# Everything the signals task computes; the timing metrics differ between any two runs.
SIGNAL_METRICS = ("train.loss", "train.mae", "lr", "val.loss", "val.mae", "test.mae")
# A tiny deterministic run: 500 training signals in batches of 32 make its 24 steps cross an epoch boundary.
TINY = ["with", "smoke", "trainer.deterministic=True", "data.train_size=500", "data.eval_size=100",
        "data.batch_size=32", "trainer.steps=24", "trainer.val_every=8", "trainer.log_every=4", "trainer.print_every=4",
        "trainer.checkpoint_every=8", "trainer.progress=False"]


@pytest.fixture(scope="module")
def signals_smoke(project_repo, mongo_url, workdir):
    """One `with smoke` run of the signals experiment, made from the clean `project_repo`, recorded in MongoDB."""
    db_name = f"signals_{uuid.uuid4().hex[:10]}"
    # A fixed seed: the stated quality holds for most seeds (seeds 1 to 5 reached 0.35 to 0.48), not for every one.
    result = run_experiment(["with", "smoke", "trainer.progress=False", "seed=1"], workdir, mongo_url, db_name,
                            project=project_repo, experiment="signals")
    assert result.returncode == 0, result.stdout + result.stderr
    client = pymongo.MongoClient(mongo_url)
    yield {"db": client[db_name], "db_name": db_name, "run": newest_run(client[db_name])}
    client.drop_database(db_name)
    client.close()


def assert_same_metrics(db, run_id, other_id):
    for name in SIGNAL_METRICS:
        values = metric(db, run_id, name)
        assert values, f"run {run_id} logged no {name}"
        assert values == metric(db, other_id, name), name


def test_smoke_run_reaches_its_stated_quality_and_is_recorded(signals_smoke):
    db, run = signals_smoke["db"], signals_smoke["run"]
    assert run["status"] == "COMPLETED" and run["experiment"]["name"] == "signals"
    assert run["result"] < 0.5  # the smoke config's stated quality: validation MAE below 0.5 cycles per window
    assert run["experiment"]["repositories"][0]["commit"]
    assert "Iteration 300/300" in run["captured_out"] and "val mae:" in run["captured_out"]
    assert set(SIGNAL_METRICS) <= {m["name"] for m in db.metrics.find({"run_id": run["_id"]})}
    assert min(metric(db, run["_id"], "val.mae").values()) == run["result"]  # lower is better
    assert {"signal_samples.png", "checkpoint.pt", "model_best.pt", "model_last.pt", "results.json"} <= {
        a["name"] for a in run["artifacts"]}


def test_rerun_reproduces_the_smoke_run_exactly(signals_smoke, project_repo, workdir, mongo_url):
    db, original = signals_smoke["db"], signals_smoke["run"]
    result = run_tracker(["rerun", str(original["_id"])], workdir, mongo_url, signals_smoke["db_name"],
                         project=project_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    rerun = newest_run(db)
    assert rerun["info"]["rerun_of"] == original["_id"] and rerun["config"] == original["config"]
    assert_same_metrics(db, rerun["_id"], original["_id"])
    assert rerun["result"] == original["result"]


def test_interrupted_run_resumes_to_the_uninterrupted_metrics(project_repo, workdir, mongo_url, mongo_db):
    uninterrupted = run_experiment([*TINY, "seed=7"], workdir, mongo_url, mongo_db.name, project=project_repo,
                                   experiment="signals")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    original = newest_run(mongo_db)
    returncode, output = interrupt_at(r"Iteration\s+12/24", [*TINY, "seed=7"], workdir, mongo_url, mongo_db.name,
                                      project_repo, experiment="signals")
    interrupted = newest_run(mongo_db)
    assert returncode == 130 and interrupted["status"] == "INTERRUPTED", output
    stopped_at = int(re.search(r"Stopped by SIGINT at step (\d+)/24", output).group(1))

    result = run_tracker(["resume", str(interrupted["_id"])], workdir, mongo_url, mongo_db.name, project=project_repo)

    assert result.returncode == 0, result.stdout + result.stderr
    resumed = newest_run(mongo_db)
    assert resumed["info"]["resumed_from"] == interrupted["_id"] and resumed["result"] == original["result"]
    for name in SIGNAL_METRICS:
        full = metric(mongo_db, original["_id"], name)
        assert metric(mongo_db, resumed["_id"], name) == {s: v for s, v in full.items() if s > stopped_at} != {}


def test_file_store_run_syncs_with_all_its_metrics(project_repo, workdir, mongo_url, mongo_db, tmp_path):
    runs_dir = tmp_path / "runs"
    result = run_experiment(TINY, workdir, f"mongodb://127.0.0.1:{free_port()}", "unused", runs_dir=runs_dir,
                            project=project_repo, experiment="signals")
    assert result.returncode == 0 and "unreachable" in result.stderr, result.stderr
    local_metrics = json.loads((runs_dir / "1" / "metrics.json").read_text())

    synced = run_tracker(["sync", str(runs_dir)], workdir, mongo_url, mongo_db.name)

    assert synced.returncode == 0 and "1 uploaded" in synced.stdout, synced.stdout + synced.stderr
    run = newest_run(mongo_db)
    assert run["experiment"]["name"] == "signals" and run["status"] == "COMPLETED"
    for name in SIGNAL_METRICS:
        series = local_metrics[name]
        assert metric(mongo_db, run["_id"], name) == dict(zip(series["steps"], series["values"])), name
