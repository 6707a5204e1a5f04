"""DistributedDataParallel through torchrun, on the CPU (gloo) with 2 processes: one recorded run with the metrics of
a single process with the same global batch (to the bit, when it adds the same two half-batch gradients), a signal to
one rank stopping both at one checkpoint that `tracker
resume` continues exactly, and one line for a batch that 2 processes cannot share."""
import math
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
import pytest
from conftest import REPO_ROOT, metric, newest_run, python_env, run_experiment, run_tracker
from test_experiment import artifact_bytes

from ingredients.batches import check_shareable
from runstore.errors import UserError
from runstore.predictions import Predictions

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# The signals task without BatchNorm and without dropout: two ranks train as one process does, exactly when it splits
# each batch as the ranks do (trainer.accumulate=2), else up to the order in which float gradients are added.
SIGNALS = ["with", "smoke", "trainer.steps=40", "trainer.val_every=20", "trainer.log_every=5", "data.train_size=1000",
           "data.eval_size=200", "model.batch_norm=False", "trainer.progress=False", "seed=3"]
# CIFAR's small CNN has BatchNorm (statistics of each rank's half batch) and dropout.
CIFAR = ["with", "smoke", "data.limit=500", "data.batch_size=32", "model.width=8", "model.dropout=0.1",
         "trainer.steps=24", "trainer.val_every=8", "trainer.log_every=4", "trainer.print_every=4",
         "trainer.checkpoint_every=100", "trainer.deterministic=True", "trainer.progress=False", "seed=5"]
COMPUTED = {"signals": ("train.loss", "train.mae", "lr", "val.loss", "val.mae", "test.mae"),
            "cifar": ("train.loss", "train.acc", "lr", "val.loss", "val.acc", "test.acc")}


def torchrun_command(experiment, args, project):
    return [*TORCHRUN, str(Path(project) / "experiments" / f"{experiment}.py"), *args]


def torchrun_env(mongo_url, db_name, runs_dir, project):
    return python_env(MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=runs_dir, PYTHONPATH=project,
                      OMP_NUM_THREADS=1)


def torchrun(experiment, args, workdir, mongo_url, db_name, runs_dir, project=REPO_ROOT):
    return subprocess.run(torchrun_command(experiment, args, project), cwd=workdir,
                          env=torchrun_env(mongo_url, db_name, runs_dir, project), capture_output=True, text=True,
                          timeout=300)


def metrics(db, run_id, names):
    return {name: metric(db, run_id, name) for name in names}


def assert_close(got, expected, rel):
    assert got.keys() == expected.keys()
    for name in got:
        assert got[name].keys() == expected[name].keys(), name
        for step, value in got[name].items():
            assert math.isclose(value, expected[name][step], rel_tol=rel, abs_tol=rel), (name, step)


def test_two_processes_record_one_run_with_the_metrics_of_one(workdir, mongo_url, mongo_db, db_name, tmp_path):
    ddp = torchrun("signals", SIGNALS, workdir, mongo_url, db_name, tmp_path / "ddp")
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    (run,) = list(mongo_db.runs.find())
    assert run["status"] == "COMPLETED" and run["info"]["world_size"] == 2
    assert [path.name for path in (tmp_path / "ddp").iterdir()] == [".gitignore"]  # uploaded; rank 1 wrote nothing
    output = ddp.stdout + ddp.stderr
    for line in ("Started run with ID", "Iteration 40/40", "Validation at step 40/40", "Best val mae"):
        assert output.count(line) == 1, output

    got = metrics(mongo_db, run["_id"], COMPUTED["signals"])
    assert len(got["val.mae"]) == 2 and len(got["train.loss"]) == 9, got  # steps 1, 5, ..., 40

    # torchrun's processes compute with one thread each; so does the single process, for the same float sums
    split = run_experiment([*SIGNALS, "trainer.accumulate=2"], workdir, mongo_url, db_name,
                           runs_dir=tmp_path / "split", experiment="signals", OMP_NUM_THREADS=1)
    assert split.returncode == 0, split.stderr
    one = newest_run(mongo_db)
    assert one["info"]["world_size"] == 1 and one["config"]["trainer"]["accumulate"] == 2
    assert metrics(mongo_db, one["_id"], COMPUTED["signals"]) == got
    assert run["result"] == one["result"]

    whole = run_experiment(SIGNALS, workdir, mongo_url, db_name, runs_dir=tmp_path / "whole", experiment="signals",
                           OMP_NUM_THREADS=1)
    assert whole.returncode == 0, whole.stderr
    one = newest_run(mongo_db)
    assert_close(metrics(mongo_db, one["_id"], COMPUTED["signals"]), got, rel=1e-5)
    assert math.isclose(run["result"], one["result"], rel_tol=1e-5)


@pytest.fixture(scope="module")
def cifar_ddp(project_repo, workdir, mongo_url, tmp_path_factory):
    """An uninterrupted 2-process CIFAR run, made from `project_repo` so that `tracker resume` runs its code."""
    import pymongo

    db_name = "ddp_cifar"
    result = torchrun("cifar", CIFAR, workdir, mongo_url, db_name, tmp_path_factory.mktemp("runs"), project_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    client = pymongo.MongoClient(mongo_url)
    yield {"db": client[db_name], "db_name": db_name, "run": newest_run(client[db_name])}
    client.drop_database(db_name)
    client.close()


def test_with_batchnorm_two_processes_come_close_to_one(cifar_ddp, workdir, mongo_url, tmp_path):
    db, run = cifar_ddp["db"], cifar_ddp["run"]
    single = run_experiment(CIFAR, workdir, mongo_url, cifar_ddp["db_name"], runs_dir=tmp_path)
    assert single.returncode == 0, single.stderr
    one = newest_run(db)
    got, expected = metrics(db, run["_id"], COMPUTED["cifar"]), metrics(db, one["_id"], COMPUTED["cifar"])
    assert got["lr"] == expected["lr"]
    assert abs(got["train.loss"][1] - expected["train.loss"][1]) < 0.05  # the same images, other BatchNorm statistics
    assert abs(run["result"] - one["result"]) < 0.1
    # Each rank evaluates its share of the test split; the stored predictions hold every example, in order.
    shared, alone = (Predictions.from_bytes(artifact_bytes(db, doc, "predictions.test.npz")) for doc in (run, one))
    assert list(shared.ids) == list(range(500)) and list(shared.targets) == list(alone.targets)
    [test_acc] = metric(db, run["_id"], "test.acc").values()
    assert shared.correct().mean() == pytest.approx(test_acc)


def rank_process(torchrun_process, rank, timeout_s=60):
    """The worker process of `rank` started by torchrun."""
    parent = psutil.Process(torchrun_process.pid)
    for child in parent.children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "python" in child.name():
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no process of rank {rank}")


def test_a_signal_to_one_rank_stops_both_and_resume_gives_the_uninterrupted_run(cifar_ddp, project_repo, workdir,
                                                                                  mongo_url, tmp_path):
    db, original = cifar_ddp["db"], cifar_ddp["run"]
    process = subprocess.Popen(torchrun_command("cifar", CIFAR, project_repo), cwd=workdir,
                               env=torchrun_env(mongo_url, cifar_ddp["db_name"], tmp_path, project_repo),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    output = []
    for line in process.stdout:
        output.append(line)
        if re.match(r"Iteration\s+8/24", line):
            rank_process(process, 1).send_signal(signal.SIGTERM)
    process.wait()
    watchdog.cancel()
    output = "".join(output)
    (stopped_at,) = re.findall(r"Stopped by a signal to another rank at step (\d+)/24", output)
    assert int(stopped_at) % 4 == 0, output  # the ranks agree on stopping at logged steps (trainer.log_every=4) only
    interrupted = newest_run(db)
    assert interrupted["status"] == "INTERRUPTED" and interrupted["_id"] != original["_id"], output
    assert [a["name"] for a in interrupted["artifacts"]].count("checkpoint.pt") == 1

    result = run_tracker(["resume", str(interrupted["_id"])], workdir, mongo_url, cifar_ddp["db_name"],
                         project=project_repo, OMP_NUM_THREADS=1)
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = db.runs.find_one({"info.resumed_from": interrupted["_id"]})
    assert resumed["status"] == "COMPLETED" and resumed["info"]["world_size"] == 2, result.stderr
    assert resumed["result"] == original["result"]
    for name in COMPUTED["cifar"]:
        before, after = metric(db, interrupted["_id"], name), metric(db, resumed["_id"], name)
        assert {**before, **after} == metric(db, original["_id"], name), name


def test_a_sigkilled_rank_leaves_the_run_failed_and_no_temporary_folder(workdir, mongo_url, mongo_db, db_name,
                                                                          tmp_path):
    """torchrun ends rank 0 with SIGTERM once rank 1 is gone: rank 0 records the failure first, and removes the
    killed rank's temporary folder and its own."""
    process = subprocess.Popen(torchrun_command("cifar", [*CIFAR, "trainer.steps=2000"], REPO_ROOT), cwd=workdir,
                               env=torchrun_env(mongo_url, db_name, tmp_path, REPO_ROOT),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    output, ranks = [], []
    for line in process.stdout:
        output.append(line)
        if re.match(r"Iteration\s+8/2000", line) and not ranks:
            ranks = [rank_process(process, 0), rank_process(process, 1)]
            ranks[1].send_signal(signal.SIGKILL)
    process.wait()
    watchdog.cancel()
    output = "".join(output)
    (run,) = list(mongo_db.runs.find())
    assert run["status"] == "FAILED" and run["info"]["pid"] == ranks[0].pid, output
    for rank in ranks:
        assert not list(Path(tempfile.gettempdir()).glob(f"tracker-process-{rank.pid}*")), f"rank {rank}'s folder"


def test_a_batch_that_two_processes_cannot_share_is_one_line(workdir, mongo_url, mongo_db, db_name, tmp_path):
    result = torchrun("signals", [*SIGNALS, "data.batch_size=63"], workdir, mongo_url, db_name, tmp_path)
    assert result.returncode == 1
    line = ("data.batch_size=63 is the global batch, which 2 processes cannot share equally; use a multiple of 2, "
            "e.g. with data.batch_size=62")
    assert (result.stdout + result.stderr).count(line) == 1, result.stderr
    assert mongo_db.runs.count_documents({}) == 0


def test_a_batch_that_processes_and_accumulation_cannot_share_names_both():
    """The same check as above (ingredients.batches, called by the trainer's config check), with trainer.accumulate."""
    with pytest.raises(UserError) as refused:
        check_shareable(64, world_size=2, accumulate=3)
    assert str(refused.value) == (
        "data.batch_size=64 is the global batch, which 2 processes and trainer.accumulate=3 cannot share equally; "
        "use a multiple of 6, e.g. with data.batch_size=60")
