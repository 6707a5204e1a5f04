"""Tells a RUNNING run whose process has died (SIGKILL, a crash, a lost node) from one that is still training.

A killed process cannot record its own end, so its run stays RUNNING. A tracked run records its process id
(info.pid, observers.durable) and Sacred records its host and a heartbeat every 10 s. On the run's own host the process
is asked directly; from another host only the heartbeat tells, after STALE_HEARTBEAT_S.

A tracked run keeps its temporary files in process_temp_dir(pid) (observers.track), which it removes when it ends;
after a kill, whoever finds the run dead removes it.
"""
import datetime
import os
import platform
import shutil
import tempfile
from pathlib import Path

# Long enough to ride out a MongoDB outage during which the run's heartbeats reach only its local copy.
STALE_HEARTBEAT_S = 600
PID_MAX = 2 ** 22  # Linux's largest pid_max: a larger stored pid is not a process id
TEMP_ROOT = Path(tempfile.gettempdir())  # read at import, before a tracked run points tempfile at its own folder


def death(doc, info, now=None):
    """None while the run `doc` (a MongoDB run document or a file store's run.json) may be alive, or is not RUNNING;
    else {"at": ISO time, "how": how its death was found}, as info.died records it. `info`: the run's info."""
    if doc.get("status") != "RUNNING":
        return None
    now = now or datetime.datetime.utcnow()
    host, pid = _hostname(doc), info.get("pid")
    if host == platform.node() and pid is not None:
        if _process_exists(pid):
            return None
        how = f"process {pid} on host {host} is gone"
    else:
        last_sign = doc.get("heartbeat") or doc.get("start_time")
        if last_sign is None:  # not a run Sacred wrote: nothing tells
            return None
        silent_s = (now - _utc(last_sign)).total_seconds()
        if silent_s < STALE_HEARTBEAT_S:
            return None
        how = f"no heartbeat from host {host} for {silent_s:.0f} s (limit {STALE_HEARTBEAT_S} s)"
    return {"at": now.isoformat(), "how": how}


def seems_dead(doc, info):
    """Whether a listing should show the RUNNING run `doc` as dead (death): a stored pid that is not a process id,
    or a time that is not one, cannot tell, and leaves it listed as it is."""
    pid = _process_id(info)
    known = {"pid": pid} if pid is not None else {}  # else only the heartbeat tells
    try:
        return death(doc, known) is not None
    except (TypeError, ValueError, AttributeError):  # a stored host or time of another type
        return False


def describe_alive(doc, info):
    """Why a RUNNING run counts as alive, for messages: its process, or its recent heartbeat."""
    host, pid = _hostname(doc), info.get("pid")
    if host == platform.node() and pid is not None:
        return f"its process {pid} on this host ({host}) is alive"
    return f"host {host} sent a heartbeat within the last {STALE_HEARTBEAT_S} s"


def process_temp_dir(pid):
    """The folder holding the temporary files of the tracked run in process `pid` on this host."""
    return TEMP_ROOT / f"tracker-process-{pid}"


def remove_temporary_files(doc, info):
    """Remove a dead run's temporary files, when it ran on this host (a killed process cannot do it itself)."""
    pid = _process_id(info)  # a stored pid of text could name any folder: ../../home/someone
    if _hostname(doc) == platform.node() and pid is not None:
        shutil.rmtree(process_temp_dir(pid), ignore_errors=True)


def _process_id(info):
    """The run's stored info.pid when it is a process id, else None."""
    pid = info.get("pid")
    return pid if type(pid) is int and 0 < pid <= PID_MAX else None


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _hostname(doc):
    return (doc.get("host") or {}).get("hostname")


def _utc(value):
    """A stored time as naive UTC, as Sacred writes it: a datetime, or an ISO string (file store, nx-27017)."""
    value = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value
