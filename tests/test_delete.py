"""`tracker delete` and `tracker gc`: a deleted run leaves nothing behind, sources shared by other runs stay."""
import subprocess
import sys
import uuid

import pymongo
import pytest

from conftest import python_env, run_experiment, run_tracker

TINY_ARGS = ["with", "smoke", "trainer.steps=10", "trainer.val_every=5", "data.limit=500"]


@pytest.fixture(scope="module")
def two_runs(mongo_url, workdir):
    """Two tiny runs of the same code in a fresh database: they share their source files."""
    db_name = f"delete_{uuid.uuid4().hex[:10]}"
    for _ in range(2):
        result = run_experiment(TINY_ARGS, workdir, mongo_url, db_name)
        assert result.returncode == 0, result.stderr
    client = pymongo.MongoClient(mongo_url)
    yield client[db_name]
    client.drop_database(db_name)
    client.close()


def stored(db):
    """What the database holds: run ids, metric and metric-point owners, GridFS file ids."""
    return {
        "runs": sorted(doc["_id"] for doc in db.runs.find({}, {"_id": 1})),
        "metrics": sorted({doc["run_id"] for doc in db.metrics.find({}, {"run_id": 1})}),
        "metric_points": sorted({doc["run_id"] for doc in db.metric_points.find({}, {"run_id": 1})}),
        "files": {doc["_id"] for doc in db.fs.files.find({}, {"_id": 1})},
    }


def gc(db, mongo_url, workdir, *args):
    result = run_tracker(["gc", "--min-age", "0", *args], workdir, mongo_url, db.name)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_delete_removes_the_run_and_its_files_but_keeps_shared_sources(two_runs, mongo_url, workdir):
    db = two_runs
    first, second = (db.runs.find_one({"_id": run_id}) for run_id in stored(db)["runs"])
    sources = {source[1] for source in first["experiment"]["sources"]}
    assert sources == {source[1] for source in second["experiment"]["sources"]}  # stored once, used by both
    artifacts = {entry["file_id"] for entry in first["artifacts"]}
    metrics = db.metrics.count_documents({"run_id": first["_id"]})  # sys.* ones too when the run took long enough

    refused = subprocess.run(
        [sys.executable, "-m", "tracker", "delete", str(first["_id"])], cwd=workdir, input="n\n", text=True,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=db.name), capture_output=True, timeout=60,
    )
    assert refused.returncode == 1 and "nothing deleted" in refused.stdout
    assert f"Delete 1 run from database {db.name!r}? [y/N]" in refused.stdout
    assert stored(db)["runs"] == [first["_id"], second["_id"]]
    unasked = subprocess.run(  # no terminal, as in a script or CI
        [sys.executable, "-m", "tracker", "delete", str(first["_id"]), str(second["_id"])], cwd=workdir,
        stdin=subprocess.DEVNULL, env=python_env(MONGO_URL=mongo_url, SACRED_DB=db.name), capture_output=True,
        text=True, timeout=60,
    )
    assert unasked.returncode == 1 and unasked.stderr.splitlines() == [
        "error: nothing deleted: no answer could be read (no terminal?); add --yes to delete without asking"]
    assert stored(db)["runs"] == [first["_id"], second["_id"]]

    result = run_tracker(["delete", "--yes", str(first["_id"])], workdir, mongo_url, db.name)
    assert result.returncode == 0, result.stderr
    assert f"run {first['_id']}: cifar COMPLETED, started {first['start_time']:%Y-%m-%d %H:%M:%S}\n" in result.stdout
    assert f"deleted run {first['_id']}: {metrics} metrics, {metrics} chunks of metric points, {len(artifacts)} " \
           f"GridFS files, 1 run (" in result.stdout
    after = stored(db)
    assert after["runs"] == after["metrics"] == after["metric_points"] == [second["_id"]]
    assert not artifacts & after["files"] and sources <= after["files"]
    assert gc(db, mongo_url, workdir, "--dry-run").startswith("would free nothing")


def test_gc_removes_what_a_delete_of_the_run_document_alone_left(two_runs, mongo_url, workdir):
    db = two_runs
    run = db.runs.find_one(sort=[("_id", -1)])
    metrics = db.metrics.count_documents({"run_id": run["_id"]})  # sys.* ones too when the run took long enough
    db.runs.delete_one({"_id": run["_id"]})  # as a delete that knows only the run document

    report = gc(db, mongo_url, workdir, "--dry-run")
    assert report.startswith(f"would free {metrics} metrics, {metrics} chunks of metric points, ")
    assert "GridFS files" in report
    assert stored(db)["metric_points"] == [run["_id"]]  # a dry run removes nothing
    assert gc(db, mongo_url, workdir).startswith(f"freed {metrics} metrics, {metrics} chunks of metric points, ")
    assert stored(db) == {"runs": [], "metrics": [], "metric_points": [], "files": set()}
    assert gc(db, mongo_url, workdir, "--dry-run").startswith("would free nothing")
