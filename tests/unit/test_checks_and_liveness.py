"""Config checks' one-line errors, how a dead run is told from a live one, and how a killed trial is described."""
import datetime
import os
import platform
import signal
import subprocess
import sys
import types

import pytest

from ingredients.checks import check_bool, check_choice, check_number, check_positive_int
from runstore.errors import UserError
from runstore.liveness import STALE_HEARTBEAT_S, TEMP_ROOT, death, remove_temporary_files
from tracker.trial import TrialOutcome, exit_reason, outcome


@pytest.mark.parametrize("check, message", [
    (lambda: check_positive_int("data.batch_size", 0, example=128),
     "data.batch_size=0 must be a positive integer, e.g. with data.batch_size=128"),
    (lambda: check_positive_int("trainer.steps", True), "trainer.steps=True must be a positive integer"),
    (lambda: check_positive_int("trainer.steps", 2.0), "trainer.steps=2.0 must be a positive integer"),
    (lambda: check_number("lr", float("inf"), low=0, low_inclusive=False), "lr=inf must be a finite number > 0"),
    (lambda: check_number("lr", 0, low=0, low_inclusive=False, example=0.01),
     "lr=0 must be a finite number > 0, e.g. with lr=0.01"),
    (lambda: check_number("dropout", 1.0, low=0, high=1), "dropout=1.0 must be a finite number in [0, 1)"),
    (lambda: check_number("warmup", 0, low=0, high=1, low_inclusive=False),
     "warmup=0 must be a finite number between 0 and 1"),
    (lambda: check_number("momentum", -0.5, low=0), "momentum=-0.5 must be a finite number >= 0"),
    (lambda: check_number("lr", "0.1", low=0), "lr='0.1' must be a finite number >= 0"),
    (lambda: check_number("x", float("nan")), "x=nan must be a finite number"),
    (lambda: check_choice("model.arch", "vgg", ("resnet", "mlp")),
     "model.arch='vgg' is unknown; choose one of resnet, mlp"),
    (lambda: check_bool("trainer.deterministic", 1), "trainer.deterministic=1 must be True or False"),
])
def test_config_checks_are_one_line_errors_naming_value_and_fix(check, message):
    with pytest.raises(UserError) as error:
        check()
    assert str(error.value) == message


def test_config_checks_accept_values_in_range():
    check_positive_int("trainer.steps", 1)
    check_number("dropout", 0, low=0, high=1)
    check_number("lr", 1e-9, low=0, low_inclusive=False)
    check_choice("model.arch", "mlp", ("resnet", "mlp"))
    check_bool("trainer.deterministic", False)


NOW = datetime.datetime(2026, 11, 1, 12, 0, 0)


def running(host, **doc):
    return {"status": "RUNNING", "host": {"hostname": host}, **doc}


def test_a_run_elsewhere_is_dead_after_its_heartbeats_stop():
    fresh = NOW - datetime.timedelta(seconds=STALE_HEARTBEAT_S - 1)
    stale = NOW - datetime.timedelta(seconds=STALE_HEARTBEAT_S + 5)
    assert death(running("node-7", heartbeat=fresh), {"pid": 1}, NOW) is None
    assert death(running("node-7", heartbeat=stale.isoformat() + "+00:00"), {}, NOW) == {
        "at": NOW.isoformat(), "how": f"no heartbeat from host node-7 for {STALE_HEARTBEAT_S + 5} s "
                                      f"(limit {STALE_HEARTBEAT_S} s)"}
    assert death(running("node-7", start_time=stale), {}, NOW) is not None  # no heartbeat yet: since its start
    assert death(running("node-7"), {}, NOW) is None  # not a run Sacred wrote: nothing tells


def test_a_run_on_this_host_is_dead_when_its_process_is():
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True, timeout=30)
    gone = int(finished.stdout)
    assert death(running(platform.node()), {"pid": gone}, NOW) == {
        "at": NOW.isoformat(), "how": f"process {gone} on host {platform.node()} is gone"}
    yesterday = NOW - datetime.timedelta(days=1)
    assert death(running(platform.node(), heartbeat=yesterday), {"pid": os.getpid()}, NOW) is None


def test_a_silent_run_whose_pid_a_later_process_took_is_dead():
    now = datetime.datetime.utcnow()
    earlier = now - datetime.timedelta(days=400)  # long before this process started
    # A run started now may be this process's...
    assert death(running(platform.node(), start_time=now.isoformat()), {"pid": os.getpid()}, now) is None
    # ...and one started earlier that still sends heartbeats is alive (the clock may have been set forward)...
    assert death(running(platform.node(), start_time=earlier, heartbeat=now), {"pid": os.getpid()}, now) is None
    # ...but a silent one that started before this process cannot be running in it: its pid was given out again.
    assert death(running(platform.node(), start_time=earlier), {"pid": os.getpid()}, now) == {
        "at": now.isoformat(), "how": f"process {os.getpid()} on host {platform.node()} is gone"}


def test_a_dead_runs_temporary_files_are_removed_only_for_a_stored_process_id(tmp_path):
    # Any user may make /tmp/tracker-process-..: a stored pid of text would then lead out of the temporary folder.
    (TEMP_ROOT / "tracker-process-..").mkdir(exist_ok=True)
    kept = tmp_path / "project"
    kept.mkdir()
    try:
        for pid in (f"../..{kept}", "..", 1.5, True):
            remove_temporary_files(running(platform.node()), {"pid": pid})
    finally:
        (TEMP_ROOT / "tracker-process-..").rmdir()
    assert kept.is_dir()


def test_only_running_runs_can_die():
    assert death({"status": "COMPLETED", "host": {"hostname": "node-7"}, "start_time": datetime.datetime(2000, 1, 1)},
                 {}, NOW) is None


@pytest.mark.parametrize("returncode, reason", [
    (0, None), (1, None), (-signal.SIGKILL, "killed by signal 9 (SIGKILL)"),
    (-signal.SIGTERM, "killed by signal 15 (SIGTERM)"), (-200, "killed by signal 200"),
])
def test_a_trial_killed_by_a_signal_says_which(returncode, reason):
    assert exit_reason(returncode) == reason


def test_a_trial_that_recorded_no_run_failed_and_says_why():
    expected = TrialOutcome("FAILED", "no run was recorded (killed by signal 9 (SIGKILL))")
    assert outcome(None, -signal.SIGKILL) == expected


def test_a_trials_run_gives_its_status_result_direction_and_the_end_of_its_error():
    trace = ["Traceback (most recent call last):\n", *(f"line {number}\n" for number in range(8))]
    stored = types.SimpleNamespace(origin=7, doc={"status": "FAILED", "result": None, "fail_trace": trace},
                                   info={"higher_is_better": False})
    assert outcome(stored, 1) == TrialOutcome("FAILED", "\n".join(f"line {number}" for number in range(3, 8)), run=7,
                                              higher_is_better=False)
