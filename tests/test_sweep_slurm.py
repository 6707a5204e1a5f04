"""`tracker sweep --executor slurm` on a real single-node SLURM cluster (Debian's slurm-wlm and munge, run as root)."""
import os
import re
import subprocess
import time

import pytest
from conftest import COMPUTED_METRICS, EXPERIMENT, REFERENCE_ARGS, TrackerCommand, metric, require_tool, run_tracker
from slurm_cluster import DAEMONS, SlurmCluster
from test_sweep import TINY, sweep_id_of, sweep_runs


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A SLURM cluster of this machine for the module's tests; the environment that reaches it."""
    for daemon in DAEMONS:
        require_tool(daemon, "the SLURM tests run a single-node cluster from Debian's slurm-wlm and munge")
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the SLURM tests run slurmd as root; CI runs as root")
        pytest.skip("the SLURM tests run slurmd as root")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster.start().env
    finally:
        cluster.stop()


def test_grid_sweep_on_slurm_runs_every_trial_as_a_tagged_run(slurm, mongo_url, mongo_db, db_name, workdir):
    started = time.monotonic()
    result = run_tracker(["sweep", "--executor", "slurm", "--slurm", "timeout_min=10", str(EXPERIMENT), *TINY,
                          "lr=[0.02,0.05]", "model.width=[8,16]"], workdir, mongo_url, db_name, timeout=900,
                         **slurm)
    seconds = time.monotonic() - started

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sweep_id = sweep_id_of(output)
    runs = sweep_runs(mongo_db, sweep_id)
    assert [run["status"] for run in runs] == ["COMPLETED"] * 4
    assert [run["omniboard"]["tags"] for run in runs] == [[f"sweep-{sweep_id}"]] * 4
    assert [(run["config"]["lr"], run["config"]["model"]["width"]) for run in runs] == [
        (0.02, 8), (0.02, 16), (0.05, 8), (0.05, 16)]
    assert "4/4 done, 0 running, 0 failed" in output and "Bypassing sacct error" not in output
    print(f"4-trial SLURM sweep: {seconds:.1f} s; trial runs (start to stop): "
          + ", ".join(f"{(run['stop_time'] - run['start_time']).total_seconds():.1f} s"
                      if hasattr(run["stop_time"], "year") else str(run["stop_time"]) for run in runs))


def test_a_failing_trial_is_reported_and_the_others_complete(slurm, mongo_url, mongo_db, db_name, workdir):
    # data.limit=10 leaves fewer training images than one batch: that trial's run fails.
    result = run_tracker(["sweep", "--executor", "slurm", str(EXPERIMENT), *TINY, "data.limit=[1000,10]"],
                         workdir, mongo_url, db_name, timeout=900, **slurm)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    failed, completed = sorted(sweep_runs(mongo_db, sweep_id_of(output)), key=lambda run: run["status"])[::-1]
    assert completed["status"] == "COMPLETED" and failed["status"] == "FAILED"
    assert re.search(rf"trial 1 failed \(run {failed['_id']}\):\n(    .*\n)*    .*data.batch_size=64 is larger", output)
    assert "1 of 2 trials completed, 1 failed" in output


def test_a_trial_signalled_before_its_time_limit_is_requeued_and_continues(
        slurm, reference_run, mongo_url, workdir):
    db, original = reference_run["db"], reference_run["run"]
    sweep = TrackerCommand("sweep", "--executor", "slurm", str(EXPERIMENT), *REFERENCE_ARGS,
                           f"seed={original['config']['seed']}", "trainer.progress=False", "lr=[0.02]",
                           cwd=workdir, MONGO_URL=mongo_url, SACRED_DB=reference_run["db_name"],
                           RUNS_DIR=workdir / "runs", **slurm)
    try:
        sweep_id = int(sweep.wait_for(r"^sweep (\d+): ", timeout_s=120)[1])
        jobs = workdir / "sweeps" / str(sweep_id) / "jobs"
        log = wait_for_file(jobs, "_0_log.out", timeout_s=300)
        wait_for_text(log, re.compile(r"Iteration\s+4/24"), timeout_s=300)
        # What SLURM sends before a time limit (submitit asks for USR2 90 s before it), sent now.
        job_id = log.name.split("_")[0]
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, env={**os.environ, **slurm})
        sweep.wait_for(r"1/1 done", timeout_s=400)
        assert sweep.process.wait(60) == 0
    finally:
        sweep.kill()

    interrupted, resumed = sweep_runs(db, sweep_id)  # the trial's two runs, oldest first (same trial number)
    if interrupted["_id"] > resumed["_id"]:
        interrupted, resumed = resumed, interrupted
    assert interrupted["status"] == "INTERRUPTED" and resumed["status"] == "COMPLETED"
    assert resumed["info"]["resumed_from"] == interrupted["_id"]
    stopped_at = resumed["info"]["resumed_after_step"]
    assert 4 <= stopped_at < 24
    for name in COMPUTED_METRICS:
        uninterrupted = metric(db, original["_id"], name)
        assert metric(db, interrupted["_id"], name) == {s: v for s, v in uninterrupted.items() if s <= stopped_at}
        assert metric(db, resumed["_id"], name) == {s: v for s, v in uninterrupted.items() if s > stopped_at} != {}
    assert resumed["result"] == original["result"]


def wait_for_file(folder, suffix, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no *{suffix} in {folder} within {timeout_s}s")


def wait_for_text(path, pattern, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pattern.search(path.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {pattern.pattern!r} in {path} within {timeout_s}s:\n{path.read_text()[-2000:]}")


def test_a_pruned_sweep_on_slurm_stops_a_hopeless_trial(slurm, mongo_url, mongo_db, db_name, workdir):
    from test_pruning import PRUNED_SWEEP, check_pruned_sweep

    # One trial at a time, as on the local executor: the median pruner compares with trials that have finished.
    result = run_tracker([*PRUNED_SWEEP[:1], "--executor", "slurm", "--parallel", "1", *PRUNED_SWEEP[1:]],
                         workdir, mongo_url, db_name, timeout=900, **slurm)
    check_pruned_sweep(result, mongo_db)


def test_a_trial_of_two_tasks_trains_with_ddp_and_is_one_run(slurm, mongo_url, mongo_db, db_name, workdir):
    result = run_tracker(["sweep", "--executor", "slurm", "--slurm", "timeout_min=10", "--slurm", "tasks_per_node=2",
                          str(EXPERIMENT), *TINY, "lr=[0.02]"], workdir, mongo_url, db_name, timeout=900, **slurm)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (run,) = sweep_runs(mongo_db, sweep_id_of(output))
    assert run["status"] == "COMPLETED" and run["info"]["world_size"] == 2
    assert mongo_db.runs.count_documents({}) == 1
    assert "1/1 done, 0 running, 0 failed" in output
