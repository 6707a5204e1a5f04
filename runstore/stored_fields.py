"""The fields of a stored run that commands compute with (its process id, host and times), checked for type when read
back from MongoDB or a run folder: an edited or damaged record gets one line naming the run and the field, never a
TypeError from deep inside a command."""
from __future__ import annotations

import datetime
from typing import Any

TIME_FIELDS = ("start_time", "heartbeat", "stop_time")


def field_problem(doc: dict[str, Any], info: Any) -> str | None:
    """None when the run document `doc` (or run.json) and its `info` hold the types Sacred and the observer write;
    else what is wrong, naming the field, e.g. "info.pid 'x' is not a process id"."""
    if not isinstance(info, dict):
        return f"info {str(info)[:80]!r} is not a record of fields"
    pid = info.get("pid")
    if pid is not None and (type(pid) is not int or pid <= 0):
        return f"info.pid {pid!r} is not a process id (a positive whole number)"
    host = doc.get("host")
    if host is not None and not (isinstance(host, dict) and isinstance(host.get("hostname", ""), str)):
        return f"host {host!r} is not a host record with a hostname"
    for name in TIME_FIELDS:
        value = doc.get(name)
        if value is not None and not isinstance(value, datetime.datetime) and _iso_time(value) is None:
            return f"{name} {value!r} is not a time"
    return None


def times_as_dates(entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` (a run folder's run.json, whose times Sacred writes as ISO text) with its TIME_FIELDS as naive UTC
    datetimes, as MongoDB gives them; a value that is not a time is kept, for field_problem to name."""
    times = {name: _iso_time(entry[name]) for name in TIME_FIELDS if isinstance(entry.get(name), str)}
    return {**entry, **{name: time for name, time in times.items() if time is not None}}


def _iso_time(value: object) -> datetime.datetime | None:
    """The naive UTC time that the ISO text `value` gives, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        time = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return time if time.tzinfo is None else time.astimezone(datetime.timezone.utc).replace(tzinfo=None)
