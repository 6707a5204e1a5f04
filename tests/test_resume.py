"""Interrupting a run stores a checkpoint; `tracker resume` continues it to the uninterrupted run's result."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import (COMPUTED_METRICS, EXPERIMENT, REFERENCE_ARGS, interrupt_at, metric, newest_run, python_env,
                      run_tracker)

from ingredients.checkpoint import load_checkpoint
from ingredients.trainer import StopRequests
from runstore.errors import UserError


def test_interrupted_run_resumes_to_the_uninterrupted_result(reference_run, project_repo, workdir, mongo_url):
    db, original = reference_run["db"], reference_run["run"]
    # The reference run's config and seed, interrupted by SIGINT (Ctrl-C) once step 8 is reported.
    returncode, output = interrupt_at(r"Iteration\s+8/24", [*REFERENCE_ARGS, f"seed={original['config']['seed']}"],
                                      workdir, mongo_url, reference_run["db_name"], project_repo)
    assert returncode == 130, output
    stopped_at = int(re.search(r"Stopped by SIGINT at step (\d+)/24", output).group(1))
    assert 8 <= stopped_at < 24
    interrupted = newest_run(db)
    assert interrupted["status"] == "INTERRUPTED"
    assert "checkpoint.pt" in [artifact["name"] for artifact in interrupted["artifacts"]]

    result = run_tracker(["resume", str(interrupted["_id"])], workdir, mongo_url, reference_run["db_name"],
                         project=project_repo)

    assert result.returncode == 0, result.stdout + result.stderr
    resumed = db.runs.find_one({"info.resumed_from": interrupted["_id"]})
    assert resumed is not None, result.stdout + result.stderr
    assert resumed["status"] == "COMPLETED" and resumed["config"] == original["config"], result.stdout + result.stderr
    assert resumed["info"]["resumed_after_step"] == stopped_at
    for name in COMPUTED_METRICS:
        uninterrupted = metric(db, original["_id"], name)
        # Each part logs its own steps, with the uninterrupted run's step numbers and values.
        assert metric(db, interrupted["_id"], name) == {s: v for s, v in uninterrupted.items() if s <= stopped_at}
        assert metric(db, resumed["_id"], name) == {s: v for s, v in uninterrupted.items() if s > stopped_at} != {}
    assert resumed["result"] == original["result"]


def store_checkpoint(folder, write):
    """Put a checkpoint.pt artifact into a file-store run, as its observer would."""
    write(folder / "checkpoint.pt")
    run_json = folder / "run.json"
    run = json.loads(run_json.read_text())
    run["artifacts"].append("checkpoint.pt")
    run_json.write_text(json.dumps(run))


class OpensAFile:
    """Unpickling this creates `path`: it stands for any code that a pickle could run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_ctrl_c_after_the_output_pipe_closed_interrupts_with_a_checkpoint(workdir, mongo_url, mongo_db, db_name):
    """`python experiments/cifar.py ... 2>&1 | tee log` and Ctrl-C: tee ends first, then the experiment writes."""
    process = subprocess.Popen(
        [sys.executable, str(EXPERIMENT), *REFERENCE_ARGS, "trainer.steps=200"], cwd=workdir,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.startswith("Iteration"):
                break
        process.stdout.close()  # the reader has gone
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
    run = newest_run(mongo_db)
    assert run["status"] == "INTERRUPTED", run.get("fail_trace")
    assert "checkpoint.pt" in [artifact["name"] for artifact in run["artifacts"]]


def test_resume_refuses_runs_without_a_safe_checkpoint(
    failed_file_store_run, reference_run, project_repo, workdir, mongo_url, tmp_path
):
    def resume(run):
        result = run_tracker(["resume", run], workdir, mongo_url, reference_run["db_name"], project=project_repo)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
        return result.stderr

    assert "completed, so there is nothing to resume" in resume(str(reference_run["run"]["_id"]))
    assert "has no checkpoint.pt" in resume(str(failed_file_store_run))

    marker = tmp_path / "code-ran"
    # A copy: the fixture is shared.
    planted = shutil.copytree(failed_file_store_run, tmp_path / "runs" / failed_file_store_run.name)
    store_checkpoint(planted, lambda path: torch.save({"model": OpensAFile(marker)}, path))
    assert "checkpoint.pt is corrupted or holds more than tensors and numbers" in resume(str(planted))
    assert not marker.exists()


def test_suggested_commands_quote_paths_for_the_shell(failed_file_store_run, workdir, mongo_url, db_name, tmp_path):
    """A run folder whose path has a space and a quote: each suggested command, pasted, names that folder."""
    folder = tmp_path / "my project's runs" / failed_file_store_run.name
    shutil.copytree(failed_file_store_run, folder)

    rerun = run_tracker(["rerun", str(folder), "lr=0.1"], workdir, mongo_url, db_name)
    resume = run_tracker(["resume", str(folder)], workdir, mongo_url, db_name)

    for result, command in ((rerun, ["tracker", "rerun", str(folder), "with", "KEY=VALUE"]),
                            (resume, ["tracker", "rerun", str(folder)])):
        assert result.returncode == 1, result.stderr
        suggested = re.search(r"e\.g\. (tracker .*)|`(tracker [^`]*)`", result.stderr)
        assert shlex.split(suggested[1] or suggested[2]) == command, result.stderr


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda path: path.write_bytes(b"half a checkpoint"), "is corrupted or holds more than tensors and numbers"),
        (lambda path: torch.save({"weights": torch.zeros(3)}, path), "was not written by this trainer"),
        (lambda path: torch.save([1, 2], path), "was not written by this trainer"),
    ],
)
def test_load_checkpoint_names_corrupted_and_foreign_files(write, message, tmp_path):
    path = tmp_path / "checkpoint.pt"
    write(path)
    with pytest.raises(UserError, match=message):
        load_checkpoint(path, label="run 3's checkpoint.pt")


def test_sigterm_and_sigint_only_request_a_stop_while_training():
    previous = signal.getsignal(signal.SIGTERM)
    with StopRequests() as stop:
        for number in (signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), number)  # without the handlers, this would end the test process
            deadline = time.monotonic() + 5
            while stop.signal_name != signal.Signals(number).name and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stop.signal_name == signal.Signals(number).name
    assert signal.getsignal(signal.SIGTERM) is previous
