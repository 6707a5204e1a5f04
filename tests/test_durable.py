"""No run is lost: the database is killed and restarted for real during runs, huge runs are recorded whole, and
`tracker sync` uploads local copies exactly once. Each test checks exactly what landed in MongoDB."""
import datetime
import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pymongo
import pytest
import torch
from conftest import EXPERIMENT, REPO_ROOT, LocalMongoServer, free_port, python_env
from flood_experiment import output_line

from runstore.layout import PLOT_POINTS, TAIL_CHARS, read_file, read_metric

FLOOD = REPO_ROOT / "tests" / "flood_experiment.py"
TRAIN_METRICS = ["train.loss", "train.acc", "lr", "examples_per_s", "time.data_ms", "time.step_ms"]
TRAINER_ARTIFACTS = {"train_samples.png", "checkpoint.pt", "model_last.pt", "model_best.pt", "confusion_matrix.png",
                     "results.json"}


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory):
    """A database server of their own for the tests that kill it."""
    server = LocalMongoServer(tmp_path_factory.mktemp("fault-mongo")).start()
    yield server
    server.stop()


@pytest.fixture
def fault_db(fault_server):
    """A fresh database on the fault server; (name, client with short timeouts)."""
    db_name = f"fault_{uuid.uuid4().hex[:10]}"
    client = pymongo.MongoClient(fault_server.url, serverSelectionTimeoutMS=20000)
    yield db_name, client
    client.drop_database(db_name)
    client.close()


def start_experiment(script, args, workdir, mongo_url, db_name, runs_dir, log_dir):
    """The experiment as a background process; its output goes to files so nothing can block on a pipe."""
    return subprocess.Popen(
        [sys.executable, str(script), *args], cwd=workdir,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=runs_dir),
        stdout=open(log_dir / "stdout.txt", "w"), stderr=open(log_dir / "stderr.txt", "w"),
    )


def wait_until_training(client, db_name, timeout_s=120):
    """Wait until the run's first training artifact is in MongoDB: the data is loaded and training begins."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client[db_name].runs.find_one({"artifacts.name": "train_samples.png"})
        if run is not None:
            return run
        time.sleep(0.2)
    raise AssertionError(f"training did not start within {timeout_s}s")


def wait_for_text(path, text, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} not in {path.name} within {timeout_s}s: {path.read_text()}"
        time.sleep(0.2)


def logged_steps(steps, log_every=10):
    """The steps at which the trainer logs training metrics: the first, every log_every-th and the last."""
    return sorted({1, *range(log_every, steps + 1, log_every), steps})


def assert_artifacts_intact(db, run):
    names = [artifact["name"] for artifact in run["artifacts"]]
    assert len(names) == len(set(names)), names
    for artifact in run["artifacts"]:
        assert hashlib.md5(read_file(db, artifact["file_id"])).hexdigest() == artifact["md5"], artifact["name"]
    return set(names)


def sync(mongo_url, db_name, runs_dir):
    return subprocess.run(
        [sys.executable, "-m", "tracker", "sync"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=runs_dir),
    )


def local_copies(runs_dir):
    return [path for path in runs_dir.iterdir() if path.name.isdigit()] if runs_dir.exists() else []


def test_a_run_survives_a_database_outage(fault_server, fault_db, workdir, tmp_path):
    db_name, client = fault_db
    steps, runs_dir = 600, tmp_path / "runs"  # training (about 50 steps/s) goes on past the 8 s outage
    process = start_experiment(EXPERIMENT, ["with", "smoke", f"trainer.steps={steps}", "trainer.checkpoint_every=200"],
                               workdir, fault_server.url, db_name, runs_dir, tmp_path)
    try:
        wait_until_training(client, db_name)
        fault_server.kill()
        killed_at = datetime.datetime.utcnow()
        wait_for_text(tmp_path / "stderr.txt", "is unreachable; training continues")  # an upload failed meanwhile
        restarted_at = datetime.datetime.utcnow()
        fault_server.start()
        assert process.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()
    finally:
        process.kill()
    db = client[db_name]
    [run] = db.runs.find()
    assert run["status"] == "COMPLETED" and run["local_copy"]["complete"]
    for name in TRAIN_METRICS:
        assert read_metric(db, run["_id"], name)[0].tolist() == logged_steps(steps), name
        assert db.metrics.find_one({"run_id": run["_id"], "name": name})["steps"] == logged_steps(steps)
    # Training went on during the outage, and what it logged then reached MongoDB afterwards.
    stamps = read_metric(db, run["_id"], "train.loss")[2].astype(datetime.datetime).tolist()
    assert any(killed_at < stamp < restarted_at for stamp in stamps), (killed_at, restarted_at, stamps)
    assert assert_artifacts_intact(db, run) >= TRAINER_ARTIFACTS
    [checkpoint] = [a for a in run["artifacts"] if a["name"] == "checkpoint.pt"]
    assert torch.load(io.BytesIO(read_file(db, checkpoint["file_id"])), weights_only=True)["step"] == steps
    assert "Best val acc" in run["captured_out"] and "answers again" in run["captured_out"]
    assert not local_copies(runs_dir), "the local copy is dropped once MongoDB holds the finished run"


def test_a_run_whose_database_never_returns_is_kept_and_synced_once(fault_server, fault_db, workdir, tmp_path,
                                                                    smoke_run):
    db_name, client = fault_db
    steps, runs_dir = 20, tmp_path / "runs"
    process = start_experiment(EXPERIMENT, ["with", "smoke", f"trainer.steps={steps}", "trainer.checkpoint_every=10"],
                               workdir, fault_server.url, db_name, runs_dir, tmp_path)
    try:
        wait_until_training(client, db_name)
        fault_server.kill()
        assert process.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()
        exited = datetime.datetime.utcnow()
    finally:
        process.kill()
        fault_server.start()
    [local_copy] = local_copies(runs_dir)
    entry = json.loads((local_copy / "run.json").read_text())
    assert entry["status"] == "COMPLETED"
    assert (exited - datetime.datetime.fromisoformat(entry["stop_time"])).total_seconds() < 30
    assert f"tracker sync {local_copy}" in (tmp_path / "stderr.txt").read_text()

    first = sync(fault_server.url, db_name, runs_dir)
    assert first.returncode == 0 and "1 uploaded, 0 skipped, 0 failed" in first.stdout, first.stdout + first.stderr
    db = client[db_name]
    [run] = db.runs.find()  # the document made when the run started, completed: no second run
    uninterrupted = smoke_run["run"]
    assert run["status"] == uninterrupted["status"] == "COMPLETED"
    assert assert_artifacts_intact(db, run) == {a["name"] for a in uninterrupted["artifacts"]}
    # sys.* samples come every 10 s, so how many there are depends on the run's duration.
    metric_names = {m["name"] for m in uninterrupted["info"]["metrics"] if not m["name"].startswith("sys.")}
    assert {m["name"] for m in run["info"]["metrics"] if not m["name"].startswith("sys.")} == metric_names
    assert read_metric(db, run["_id"], "train.loss")[0].tolist() == logged_steps(steps)
    assert read_metric(db, run["_id"], "val.acc")[0].tolist() == [steps]
    # The uninterrupted run follows the same rule with its 300 steps.
    full_steps = uninterrupted["config"]["trainer"]["steps"]
    assert read_metric(smoke_run["db"], uninterrupted["_id"], "train.loss")[0].tolist() == logged_steps(full_steps)
    assert "Best val acc" in run["captured_out"]

    def contents():
        return {name: len(list(db[name].find({}, {"_id": 1}))) for name in
                ("runs", "metrics", "metric_points", "fs.files", "fs.chunks")}

    before = contents()
    second = sync(fault_server.url, db_name, runs_dir)
    assert second.returncode == 0 and "0 uploaded, 1 skipped" in second.stdout, second.stdout + second.stderr
    assert f"already in MongoDB as run {run['_id']}" in second.stdout
    assert contents() == before


def test_huge_output_and_a_million_points_are_stored_whole(mongo_url, mongo_db, db_name, workdir, tmp_path):
    points = 1_000_000
    spike = 654_321
    process = start_experiment(FLOOD, ["with", "output_mb=100", f"points={points}", f"spike_at={spike}"], workdir,
                               mongo_url, db_name, tmp_path / "runs", tmp_path)
    assert process.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()
    [run] = mongo_db.runs.find()
    assert run["status"] == "COMPLETED" and run["result"] == points
    steps, values, _ = read_metric(mongo_db, run["_id"], "flood")
    assert steps.tolist() == list(range(points)) and values[spike] == points
    assert (np.delete(values, spike) == np.delete(steps, spike) / 2).all()
    plotted = mongo_db.metrics.find_one({"run_id": run["_id"], "name": "flood"})
    assert plotted["points"] == points and len(plotted["steps"]) <= PLOT_POINTS
    assert plotted["steps"][0] == 0 and plotted["steps"][-1] == points - 1
    assert plotted["values"][plotted["steps"].index(spike)] == points  # Omniboard's sample keeps the spike
    assert len(run["captured_out"]) < TAIL_CHARS + 200 and output_line(999_999) in run["captured_out"]
    [output] = [a for a in run["artifacts"] if a["name"] == "captured_out.txt"]
    full_output = read_file(mongo_db, output["file_id"]).decode()
    assert "".join(output_line(i) for i in range(1_000_000)) in full_output


def test_log_batch_points_are_kept_locally_and_synced_whole(mongo_url, mongo_db, db_name, workdir, tmp_path):
    points, runs_dir = 2500, tmp_path / "runs"
    process = start_experiment(FLOOD, ["with", f"points={points}", "batch=True"], workdir,
                               f"mongodb://127.0.0.1:{free_port()}", db_name, runs_dir, tmp_path)
    assert process.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()
    [local] = local_copies(runs_dir)
    series = json.loads((local / "metrics.json").read_text())["flood"]
    assert series["steps"] == list(range(points)) and series["values"] == [step / 2 for step in range(points)]
    stamps = [datetime.datetime.fromisoformat(stamp) for stamp in series["timestamps"]]
    assert stamps == sorted(stamps) and len(set(stamps[:1000])) == 1  # one log_batch call, one time

    assert sync(mongo_url, db_name, runs_dir).returncode == 0
    [run] = mongo_db.runs.find()
    steps, values, _ = read_metric(mongo_db, run["_id"], "flood")
    assert steps.tolist() == series["steps"] and values.tolist() == series["values"]


def test_an_oversized_run_document_is_named_as_such_and_kept(mongo_url, mongo_db, db_name, workdir, tmp_path):
    runs_dir = tmp_path / "runs"
    process = start_experiment(FLOOD, ["with", "info_mb=17"], workdir, mongo_url, db_name, runs_dir, tmp_path)
    assert process.wait(timeout=120) == 0
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "over MongoDB's 16 MB limit ('info' alone is" in stderr, stderr
    assert "unserializable" not in stderr
    [local_copy] = local_copies(runs_dir)
    assert len(json.loads((local_copy / "info.json").read_text())["blob"]) == 17 * 10**6


def test_unchanged_sources_are_stored_once(mongo_url, mongo_db, db_name, workdir, tmp_path):
    for _ in range(3):
        process = start_experiment(FLOOD, [], workdir, mongo_url, db_name, tmp_path / "runs", tmp_path)
        assert process.wait(timeout=120) == 0, (tmp_path / "stderr.txt").read_text()
    runs = list(mongo_db.runs.find())
    assert len(runs) == 3 and len({str(run["experiment"]["sources"]) for run in runs}) == 1
    stored = [f["filename"] for f in mongo_db.fs.files.find({}, {"filename": 1})]
    sources = [str(REPO_ROOT / name) for name, _ in runs[0]["experiment"]["sources"]]
    assert str(FLOOD) in sources
    # Each source once, for the three runs together (their artifacts, e.g. environment.json, are files too).
    assert sorted(name for name in stored if name in set(sources)) == sorted(sources)


def test_the_run_after_run_10_gets_id_11(mongo_url, mongo_db, db_name, workdir, tmp_path):
    # The next id follows the highest by value: 10, not 9 (the highest as text).
    mongo_db.runs.insert_many([{"_id": run_id, "status": "COMPLETED"} for run_id in range(1, 11)])
    process = start_experiment(FLOOD, [], workdir, mongo_url, db_name, tmp_path / "runs", tmp_path)
    assert process.wait(timeout=120) == 0, (tmp_path / "stderr.txt").read_text()
    assert mongo_db.runs.find_one({"_id": 11})["experiment"]["name"] == "flood"


# ---- no silent loss, exactly once --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def waiting_run(tmp_path_factory, workdir):
    """A finished flood run kept in a file store (MongoDB unreachable): 50 points, some output, one artifact."""
    runs_dir = tmp_path_factory.mktemp("waiting")
    process = start_experiment(FLOOD, ["with", "points=50", "output_mb=1", "artifact_kb=10"], workdir,
                               f"mongodb://127.0.0.1:{free_port()}", "unused", runs_dir, runs_dir)
    assert process.wait(timeout=120) == 0, (runs_dir / "stderr.txt").read_text()
    [folder] = local_copies(runs_dir)
    return folder


def copy_runs(waiting_run, runs_dir, count):
    """`count` copies of `waiting_run` in `runs_dir`, each its own run (its own start time), numbered from 1."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        folder = runs_dir / str(number)
        shutil.copytree(waiting_run, folder)
        entry = json.loads((folder / "run.json").read_text())
        entry["start_time"] = entry["start_time"][:-2] + f"{number:02d}"
        (folder / "run.json").write_text(json.dumps(entry))


def racing_syncs(mongo_url, db_name, runs_dirs):
    """`tracker sync` of each of `runs_dirs`, all started at once; their CompletedProcess-like results."""
    processes = [subprocess.Popen([sys.executable, "-m", "tracker", "sync", str(runs_dir)], cwd=REPO_ROOT,
                                  env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for runs_dir in runs_dirs]
    return [(process.wait(timeout=300), process.stdout.read()) for process in processes]


def assert_stored_once(db, runs):
    stored = list(db.runs.find({}, {"local_copy": 1, "status": 1, "info.metrics": 1, "artifacts": 1}))
    assert len(stored) == runs and len({doc["local_copy"]["key"] for doc in stored}) == runs
    for doc in stored:
        assert doc["status"] == "COMPLETED" and doc["local_copy"]["complete"], doc
        metrics = [metric["name"] for metric in db.metrics.find({"run_id": doc["_id"]}, {"name": 1})]
        assert len(metrics) == len(set(metrics)) and "flood" in metrics, metrics  # each once (sys.* beside it)
        assert read_metric(db, doc["_id"], "flood")[0].tolist() == list(range(50))
        names = [artifact["name"] for artifact in doc["artifacts"]]
        assert len(names) == len(set(names)) and {"blob.bin", "captured_out.txt"} <= set(names), names


def test_four_syncs_racing_over_five_runs_store_each_once(waiting_run, mongo_url, mongo_db, db_name, tmp_path):
    copy_runs(waiting_run, tmp_path / "runs", 5)
    results = racing_syncs(mongo_url, db_name, [tmp_path / "runs"] * 4)
    assert all(code == 0 for code, _ in results), results
    assert sum(output.count("\nuploaded ") + output.startswith("uploaded ") for _, output in results) == 5, results
    assert_stored_once(mongo_db, 5)


def test_copies_of_five_runs_synced_from_four_places_at_once_are_stored_once(waiting_run, mongo_url, mongo_db,
                                                                              db_name, tmp_path):
    # Four copies of the same runs (as on four machines, whose folder locks never meet): the database's key decides.
    places = [tmp_path / f"machine{index}" for index in range(4)]
    for place in places:
        copy_runs(waiting_run, place, 5)
    results = racing_syncs(mongo_url, db_name, places)
    assert all(code == 0 for code, _ in results), results
    assert_stored_once(mongo_db, 5)


def test_sync_marks_a_run_whose_metrics_and_output_are_truncated(waiting_run, mongo_url, mongo_db, db_name,
                                                                 tmp_path):
    copy_runs(waiting_run, tmp_path / "runs", 1)
    folder = tmp_path / "runs" / "1"
    metrics = (folder / "metrics.json").read_text()
    (folder / "metrics.json").write_text(metrics[: len(metrics) // 2])
    output = (folder / "cout.txt").read_text()
    (folder / "cout.txt").write_text(output[:1000])
    (folder / "blob.bin").unlink()

    result = sync(mongo_url, db_name, tmp_path / "runs")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 uploaded, 0 skipped, 0 failed, 1 incomplete" in result.stdout, result.stdout
    assert "COMPLETED" not in result.stdout
    [run] = mongo_db.runs.find()
    assert run["status"] == "FAILED" and "The run COMPLETED, but its local copy" in run["fail_trace"][0]
    missing = run["local_copy"]["missing"]
    assert missing[0].startswith("metrics.json: unreadable (truncated or not JSON"), missing
    missing = [line for line in missing if "metric sys." not in line]  # the system metrics' points are lost too
    assert missing[1:] == [f"cout.txt: 1000 of {len(output)} characters of output",
                           "metrics.json: 0 of 50 points of metric flood", "blob.bin: the artifact's file is missing"]
    assert "1 incomplete" in result.stdout and missing[-1] in result.stdout
    again = sync(mongo_url, db_name, tmp_path / "runs")
    assert "0 uploaded, 1 skipped" in again.stdout and mongo_db.runs.count_documents({}) == 1


def test_an_unreadable_run_folder_is_named_failed_and_listed(waiting_run, mongo_url, mongo_db, db_name, tmp_path):
    copy_runs(waiting_run, tmp_path / "runs", 2)
    broken = tmp_path / "runs" / "2" / "run.json"
    broken.write_text(broken.read_text()[:100])

    result = sync(mongo_url, db_name, tmp_path / "runs")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 uploaded, 0 skipped, 1 failed" in result.stdout
    assert f"failed {broken.parent}: {broken} is unreadable (truncated or not JSON: " in result.stdout, result.stdout
    listed = subprocess.run([sys.executable, "-m", "tracker", "runs", "--format", "csv"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120,
                            env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=tmp_path / "runs"))
    assert listed.returncode == 0, listed.stderr
    assert f"{broken.parent},,UNREADABLE," in listed.stdout, listed.stdout
    assert f"WARNING: {broken} is unreadable (truncated or not JSON" in listed.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB file system (tmpfs; the tests run as root), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def fill(disk, leave_bytes):
    """Fill `disk` up to `leave_bytes` free space with one file."""
    with open(disk / "filler", "wb") as filler:
        filler.truncate(0)
        for _ in range((shutil.disk_usage(disk).free - leave_bytes) // 4096):
            filler.write(b"x" * 4096)


def test_a_run_on_a_full_disk_is_recorded_whole_in_mongodb(small_disk, mongo_url, mongo_db, db_name, workdir,
                                                           tmp_path):
    # The 500 kB artifact finds 300 kB free, and 5 MB of output and 20,000 points come after it.
    fill(small_disk, 300_000)
    process = start_experiment(FLOOD, ["with", "output_mb=5", "points=20000", "artifact_kb=500"], workdir, mongo_url,
                               db_name, small_disk / "runs", tmp_path)
    assert process.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()
    stderr = (tmp_path / "stderr.txt").read_text()
    [warning] = [line for line in stderr.splitlines() if "local store failed" in line]
    assert f"the local store failed to write {small_disk / 'runs' / '1' / 'blob.bin'}" in warning, warning
    assert "(No space left on device; " in warning and f" MB free in {small_disk / 'runs'})" in warning
    assert "An error ocurred" not in stderr and "failed at some point" not in stderr
    [run] = mongo_db.runs.find()
    assert run["status"] == "COMPLETED" and run["local_copy"]["missing"] == [] and run["result"] == 20000
    assert read_metric(mongo_db, run["_id"], "flood")[0].tolist() == list(range(20000))
    artifacts = {a["name"]: read_file(mongo_db, a["file_id"]) for a in run["artifacts"]}
    assert artifacts["blob.bin"] == b"x" * 500_000
    assert "".join(output_line(i) for i in range(50_000)) in artifacts["captured_out.txt"].decode()
    assert not local_copies(small_disk / "runs")


def test_a_run_starting_on_a_full_disk_goes_on_in_mongodb(small_disk, mongo_url, mongo_db, db_name, workdir,
                                                          tmp_path):
    fill(small_disk, 0)
    process = start_experiment(FLOOD, ["with", "artifact_kb=5"], workdir, mongo_url, db_name, small_disk / "runs",
                               tmp_path)
    assert process.wait(timeout=120) == 0, (tmp_path / "stderr.txt").read_text()
    assert "WARNING: the local store failed to write" in (tmp_path / "stderr.txt").read_text()
    [run] = mongo_db.runs.find()
    assert run["status"] == "COMPLETED" and run["local_copy"]["missing"] == []
    assert "tests/flood_experiment.py" in [name for name, _ in run["experiment"]["sources"]]  # from the checkout
    assert read_metric(mongo_db, run["_id"], "flood")[0].tolist() == list(range(10))
    [blob] = [a for a in run["artifacts"] if a["name"] == "blob.bin"]
    assert read_file(mongo_db, blob["file_id"]) == b"x" * 5000


def test_a_full_disk_without_mongodb_fails_in_one_line(small_disk, db_name, workdir, tmp_path):
    fill(small_disk, 0)
    runs_dir = small_disk / "runs"
    process = start_experiment(FLOOD, [], workdir, f"mongodb://127.0.0.1:{free_port()}", db_name, runs_dir, tmp_path)
    assert process.wait(timeout=120) == 1
    stderr = (tmp_path / "stderr.txt").read_text()
    [line] = [line for line in stderr.splitlines() if "local store failed" in line]
    assert line.startswith(f"error: the local store failed to write {runs_dir / '1'}"), stderr
    assert "(No space left on device; 0.0 MB free in " in line and "did not take the run either" in line
    assert "Traceback" not in stderr and "Completed" not in stderr
    assert not local_copies(runs_dir)
