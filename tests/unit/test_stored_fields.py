"""A stored run's process id, host, times and recorded counts are checked for type before any command computes with
them."""
import datetime
import json

import pytest

from runstore.local_run import LocalRun, UnreadableRun
from runstore.stored_fields import field_problem, times_as_dates

RUN = {"status": "RUNNING", "host": {"hostname": "node1"}, "start_time": "2026-01-01T00:00:00",
       "heartbeat": datetime.datetime(2026, 1, 1, 0, 0, 10)}


def test_the_types_sacred_and_the_observer_write_pass():
    assert field_problem(RUN, {"pid": 1234}) is None
    assert field_problem({"status": "QUEUED"}, {}) is None


@pytest.mark.parametrize("doc, info, problem", [
    (RUN, {"pid": "x"}, "info.pid 'x' is not a process id (a positive whole number)"),
    (RUN, {"pid": True}, "info.pid True is not a process id (a positive whole number)"),
    (RUN, {"pid": -1}, "info.pid -1 is not a process id (a positive whole number)"),
    (RUN, "x", "info 'x' is not a record of fields"),
    ({**RUN, "host": "node1"}, {}, "host 'node1' is not a host record with a hostname"),
    ({**RUN, "heartbeat": 17}, {}, "heartbeat 17 is not a time"),
    ({**RUN, "start_time": "yesterday"}, {}, "start_time 'yesterday' is not a time"),
])
def test_a_wrong_type_is_named_with_its_field(doc, info, problem):
    assert field_problem(doc, info) == problem


@pytest.mark.parametrize("recorded", [{"output_chars": "x"}, {"metric_points": {"loss": "3"}}, {"files": []}, [1]])
def test_a_run_folder_whose_recorded_counts_are_not_numbers_is_unreadable(tmp_path, recorded):
    (tmp_path / "run.json").write_text(json.dumps({"status": "COMPLETED", "artifacts": [], "recorded": recorded,
                                                   "experiment": {"sources": []}}))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UnreadableRun, match=rf"^{tmp_path / 'run.json'} is unreadable \(its 'recorded' holds other "
                                            rf"than the observer's counts"):
        LocalRun.load(tmp_path)


@pytest.mark.parametrize("stored, expected", [
    ("2026-11-01T12:00:00.250000", datetime.datetime(2026, 11, 1, 12, 0, 0, 250000)),
    ("2026-11-01T14:00:00+02:00", datetime.datetime(2026, 11, 1, 12)),
    (datetime.datetime(2026, 11, 1, 12), datetime.datetime(2026, 11, 1, 12)),
    ("yesterday", "yesterday"),  # for field_problem to name
    (None, None),
])
def test_a_run_folders_times_become_naive_utc_datetimes_as_mongodb_gives_them(stored, expected):
    entry = {"status": "COMPLETED", "start_time": stored, "heartbeat": stored, "stop_time": stored}
    assert times_as_dates(entry) == {"status": "COMPLETED", "start_time": expected, "heartbeat": expected,
                                     "stop_time": expected}
