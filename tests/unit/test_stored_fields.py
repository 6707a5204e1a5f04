"""A stored run's process id, host and times are checked for type before any command computes with them."""
import datetime

import pytest

from runstore.stored_fields import field_problem

RUN = {"status": "RUNNING", "host": {"hostname": "node1"}, "start_time": "2026-01-01T00:00:00",
       "heartbeat": datetime.datetime(2026, 1, 1, 0, 0, 10)}


def test_the_types_sacred_and_the_observer_write_pass():
    assert field_problem(RUN, {"pid": 1234}) is None
    assert field_problem({"status": "QUEUED"}, {}) is None


@pytest.mark.parametrize("doc, info, problem", [
    (RUN, {"pid": "x"}, "info.pid 'x' is not a process id (a positive whole number)"),
    (RUN, {"pid": True}, "info.pid True is not a process id (a positive whole number)"),
    (RUN, {"pid": -1}, "info.pid -1 is not a process id (a positive whole number)"),
    ({**RUN, "host": "node1"}, {}, "host 'node1' is not a host record with a hostname"),
    ({**RUN, "heartbeat": 17}, {}, "heartbeat 17 is not a time"),
    ({**RUN, "start_time": "yesterday"}, {}, "start_time 'yesterday' is not a time"),
])
def test_a_wrong_type_is_named_with_its_field(doc, info, problem):
    assert field_problem(doc, info) == problem
