"""`tracker sweep` on the local executor: trials are ordinary tracked runs, tagged and recorded with their sweep."""
import json
import os
import re
import signal
import time

import pytest
from conftest import EXPERIMENT, REPO_ROOT, TrackerCommand, git, metric, run_tracker

from runstore.layout import read_file

QUADRATIC = REPO_ROOT / "tests" / "quadratic_experiment.py"  # a trial of a second, without torch
# A trial of a few seconds: 20 steps of the smoke model on 1000 generated images.
TINY = ["with", "smoke", "trainer.steps=20", "trainer.val_every=10", "data.limit=1000", "trainer.progress=False"]


def sweep_runs(db, sweep_id):
    return sorted(db.runs.find({"info.sweep.id": sweep_id}), key=lambda run: run["info"]["sweep"]["trial"])


def sweep_id_of(output):
    return int(re.search(r"^sweep (\d+): ", output, re.M).group(1))


def test_random_sweep_runs_two_trials_at_once(mongo_url, mongo_db, db_name, workdir):
    # OMP_NUM_THREADS unset, as in a user's shell: the two trials share the cores.
    result = run_tracker(["sweep", "--random", "3", "--parallel", "2", str(EXPERIMENT), *TINY,
                          "lr=loguniform(1e-3,0.3)", "model.width=choice(8,16)"], workdir, mongo_url, db_name,
                         timeout=900, OMP_NUM_THREADS=None)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sweep_id = sweep_id_of(output)
    assert "0/3 done, 2 running, 0 failed" in output and "3 running" not in output
    assert "3/3 done, 0 running, 0 failed; best " in output
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // 2)
    assert f"2 trials at once share this machine's {cores} cores: each trains with {threads} torch thread" in output
    runs = sweep_runs(mongo_db, sweep_id)
    assert [run["info"]["sweep"]["trial"] for run in runs] == [0, 1, 2]
    assert [run["info"]["torch_threads"] for run in runs] == [threads] * 3
    for run in runs:
        params = run["info"]["sweep"]["params"]
        assert run["status"] == "COMPLETED" and run["omniboard"]["tags"] == [f"sweep-{sweep_id}"]
        assert 1e-3 <= params["lr"] <= 0.3 and params["model.width"] in (8, 16)
        assert run["config"]["lr"] == params["lr"] and run["config"]["model"]["width"] == params["model.width"]
    # The table lists the trials best first, and the record in MongoDB has every trial's run and result.
    table = re.findall(r"^(\d+)\s+(\d+)\s+COMPLETED\s+([\d.]+)", output, re.M)
    assert [float(row[2]) for row in table] == sorted((round(run["result"], 4) for run in runs), reverse=True)
    record = mongo_db.sweeps.find_one({"_id": sweep_id})
    assert record["status"] == "COMPLETED"
    assert {(t["number"], t["run"], t["result"]) for t in record["trials"]} == {
        (run["info"]["sweep"]["trial"], run["_id"], run["result"]) for run in runs}


def test_optuna_sweep_interrupted_after_two_trials_continues_to_four(mongo_url, mongo_db, db_name, workdir):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    sweep = TrackerCommand("sweep", "--optuna", "4", "--parallel", "2", str(EXPERIMENT), *TINY,
                           "lr=loguniform(1e-3,0.3)", cwd=workdir, MONGO_URL=mongo_url, SACRED_DB=db_name,
                           RUNS_DIR=workdir / "runs")
    try:
        sweep.wait_for(r"2/4 done", timeout_s=400)
        os.killpg(sweep.process.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        assert sweep.process.wait(180) == 130, "".join(sweep.output)
    finally:
        sweep.kill()
    output = "".join(sweep.output)
    sweep_id = sweep_id_of(output)
    assert re.search(r"trials finished: 0, 1; not finished: 2, 3; continue with `tracker sweep --continue \d+`",
                     output), output

    result = run_tracker(["sweep", "--continue", str(sweep_id)], workdir, mongo_url, db_name)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "4/4 done" in output and f"sweep {sweep_id}: all 4 trials completed" in output
    completed = [run for run in sweep_runs(mongo_db, sweep_id) if run["status"] == "COMPLETED"]
    assert sorted(run["info"]["sweep"]["trial"] for run in completed) == [0, 1, 2, 3]
    folder = json.loads((workdir / "sweeps" / str(sweep_id) / "sweep.json").read_text())["folder"]
    study = optuna.load_study(study_name=f"sweep-{sweep_id}",
                              storage=JournalStorage(JournalFileBackend(f"{folder}/optuna.journal")))
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 4
    assert {trial.number: trial.value for trial in study.trials} == {
        run["info"]["sweep"]["trial"]: run["result"] for run in completed}


def sweep_of_a_killed_trial(steps, mongo_url, mongo_db, db_name, tmp_path):
    """(the run document, the output) of a one-trial sweep of `steps` steps whose run was killed as soon as MongoDB
    had its process and its trial, before Sacred's first heartbeat (10 s): a run killed early is found too."""
    sweep = TrackerCommand("sweep", str(EXPERIMENT), *TINY, f"trainer.steps={steps}", "lr=[0.01]", cwd=tmp_path,
                           MONGO_URL=mongo_url, SACRED_DB=db_name, RUNS_DIR=tmp_path / "runs")
    try:
        deadline = time.monotonic() + 300
        while (run := mongo_db.runs.find_one({"info.pid": {"$exists": True}, "info.sweep.trial": 0})) is None:
            assert time.monotonic() < deadline and sweep.process.poll() is None, "".join(sweep.output)
            time.sleep(0.2)
        # Found before Sacred's first heartbeat, which brings the first training metrics 10 s after the start.
        assert mongo_db.metrics.find_one({"run_id": run["_id"], "name": "train.loss"}) is None
        os.kill(run["info"]["pid"], signal.SIGKILL)  # as the kernel's OOM killer or `kill -9` would
        assert sweep.process.wait(120) == 1
    finally:
        sweep.kill()
    return run, "".join(sweep.output)


def test_a_killed_trial_is_reported_with_the_signal_and_its_run_id(mongo_url, mongo_db, db_name, tmp_path):
    run, output = sweep_of_a_killed_trial(5000, mongo_url, mongo_db, db_name, tmp_path)
    assert f"trial 0 failed (run {run['_id']}):\n    killed by signal 9 (SIGKILL)\n" in output, output


def test_a_killed_trial_that_continue_finished_counts_once_in_groups_and_sync(mongo_url, mongo_db, db_name,
                                                                              tmp_path):
    """The killed run stays RUNNING in MongoDB and in its folder; `--continue` runs the trial again, and marks it."""
    killed, output = sweep_of_a_killed_trial(100, mongo_url, mongo_db, db_name, tmp_path)

    result = run_tracker(["sweep", "--continue", str(sweep_id_of(output))], tmp_path, mongo_url, db_name)

    assert result.returncode == 0, result.stdout + result.stderr
    continued = mongo_db.runs.find_one({"_id": {"$ne": killed["_id"]}})
    assert continued["status"] == "COMPLETED"
    assert mongo_db.runs.find_one({"_id": killed["_id"]})["info"]["continued_by"] == continued["_id"]
    groups = run_tracker(["runs", "--group", "--format", "json"], tmp_path, mongo_url, db_name)
    assert [(group["n"], group["not_completed"], group["runs"]) for group in json.loads(groups.stdout)] == [
        (1, 0, [continued["_id"]])], groups.stdout + groups.stderr
    synced = run_tracker(["sync"], tmp_path, mongo_url, db_name)
    assert f"it had died (process {killed['info']['pid']} " in synced.stdout, synced.stdout
    assert f"run {continued['_id']} continues it" in synced.stdout and "tracker resume" not in synced.stdout


def test_eight_trials_started_together_keep_their_own_ids_and_records(mongo_url, mongo_db, db_name, workdir):
    seeds = list(range(1, 9))
    result = run_tracker(["sweep", "--parallel", "8", str(QUADRATIC), "with", "steps=4", "save_result=True",
                          f"seed={seeds}"], workdir, mongo_url, db_name, timeout=900)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    runs = sweep_runs(mongo_db, sweep_id_of(output))
    assert len({run["_id"] for run in runs}) == 8
    for run in runs:  # each run's config, metrics, output and artifacts are its own
        seed = run["config"]["seed"]
        assert seed == run["info"]["sweep"]["params"]["seed"]
        assert sorted(metric(mongo_db, run["_id"], "val.loss")) == [1, 2, 3, 4]
        assert metric(mongo_db, run["_id"], "val.loss")[4] == run["result"]
        artifacts = {artifact["name"]: artifact["file_id"] for artifact in run["artifacts"]}
        assert json.loads(read_file(mongo_db, artifacts["result.json"])) == {"seed": seed, "result": run["result"]}
        assert f"result {run['result']!r} from seed {seed}\n" in run["captured_out"]
        assert mongo_db.fs.files.find_one({"_id": artifacts["result.json"]})["filename"].startswith(
            f"artifact://runs/{run['_id']}/")
    assert len({run["result"] for run in runs}) == 8  # eight seeds, eight starting points


@pytest.mark.parametrize("arguments, message", [
    (["lr=[0.1,"], "'lr=[0.1,' is malformed"),
    (["lr=[0.1,(]"], "'lr=[0.1,(]' is malformed"),
    (["lr=loguniform(0.3)"], "needs two numbers low < high above 0"),
    (["lr=normal(0,1)"], "unknown distribution 'normal'"),
    (["lr=loguniform(1e-3,0.3)"], "is drawn at random; add --random N or --optuna N"),
    (["lr=[0.1]", "--executor", "cloud"], "unknown executor 'cloud'"),
    (["lr=[0.1]", "--slurm", "partition=gpu"], "--slurm parameters need --executor slurm"),
    (["lr=[0.1]", "trainer.stepz=3"], "rejects the sweep's config"),
    (["lr=[0.1]", "--executor", "slurm", "--slurm", "partitionn=gpu"], "partitionn=... is not a submitit SLURM"),
    (["lr=[0.1]", "--executor", "slurm"], "SLURM"),  # no sbatch, or no controller answers
])
def test_bad_input_is_one_line_and_submits_nothing(arguments, message, mongo_url, mongo_db, db_name, tmp_path):
    result = run_tracker(["sweep", str(EXPERIMENT), "with", "smoke", *arguments], tmp_path, mongo_url, db_name,
                         SLURM_CONF=tmp_path / "no-cluster.conf")

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and message in result.stderr, \
        result.stderr
    assert not (tmp_path / "sweeps").exists() and mongo_db.sweeps.count_documents({}) == 0


def test_eight_uploads_at_the_same_instant_get_distinct_ids(mongo_url, mongo_db, db_name, tmp_path):
    """The race of Sacred #244 without the processes around it: 8 runs' first uploads released together."""
    import datetime
    import threading

    import pymongo

    from runstore.local_run import LocalRun
    from observers.upload import RunUploader, UploadState

    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    runs = [LocalRun(
        dir=tmp_path, config={"seed": n}, info={"tags": [f"sweep-{n}"]}, captured_out=f"output of run {n}\n",
        metrics={"loss": {"steps": [0], "values": [float(n)], "timestamps": [now.isoformat()]}},
        entry={"experiment": {"name": "race", "base_dir": str(tmp_path), "sources": []}, "command": "main",
               "host": {"hostname": "here"}, "start_time": (now + datetime.timedelta(microseconds=n)).isoformat(),
               "meta": {}, "status": "COMPLETED", "resources": [], "artifacts": [], "result": n},
    ) for n in range(8)]
    barrier, ids = threading.Barrier(8), {}

    def upload(run):
        uploader = RunUploader(pymongo.MongoClient(mongo_url)[db_name])
        barrier.wait()
        ids[run.config["seed"]] = uploader.upload(run, UploadState())

    threads = [threading.Thread(target=upload, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert sorted(ids.values()) == list(range(1, 9))
    for n, run_id in ids.items():
        doc = mongo_db.runs.find_one({"_id": run_id})
        assert doc["config"]["seed"] == doc["result"] == n and doc["captured_out"] == f"output of run {n}\n"
        assert doc["omniboard"]["tags"] == [f"sweep-{n}"] and metric(mongo_db, run_id, "loss") == {0: float(n)}


def test_after_a_sweep_in_a_clean_clone_git_status_is_empty_and_its_trial_reruns(project_repo, mongo_url, mongo_db,
                                                                                  db_name, tmp_path):
    clone = tmp_path / "clone"
    git("clone", "-q", str(project_repo), str(clone), cwd=tmp_path)
    (clone / ".gitignore").write_text("__pycache__/\n")  # as a user's own repository: no entry for the tracker
    git("commit", "-qam", "a .gitignore that knows nothing of the tracker", cwd=clone)
    experiment = str(clone / "experiments" / "cifar.py")
    data = f"data.root={tmp_path / 'data'}"

    swept = run_tracker(["sweep", experiment, *TINY, data, "lr=[0.02]"], clone, mongo_url, db_name,
                        project=str(clone), timeout=900)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert (clone / "sweeps").is_dir() and (clone / "runs").is_dir()
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
    (trial,) = sweep_runs(mongo_db, sweep_id_of(swept.stdout))
    assert trial["experiment"]["repositories"][0]["dirty"] is False and "untracked_files" not in trial["info"]

    # The stored data.root is outside the clone's data/, so the rerun is given it again
    # (tracker.launch.check_data_root).
    rerun = run_tracker(["rerun", str(trial["_id"]), "with", f"data.root={trial['config']['data']['root']}"], clone,
                        mongo_url, db_name, project=str(clone), timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
