"""Tells a RUNNING run whose process has died (SIGKILL, a crash, a lost node) from one that is still training.

A killed process cannot record its own end, so its run stays RUNNING. A tracked run records its process id
(info.pid, observers.durable) and Sacred records its host and a heartbeat every 10 s. On the run's own host the process
is asked directly (a silent run whose pid a later process holds died, and its pid was given out again); from another
host only the heartbeat tells, after STALE_HEARTBEAT_S.

A tracked run keeps its temporary files in a folder of its own, make_process_temp_dir(pid) (observers.track), which
it removes when it ends; after a kill, whoever finds the run dead removes it.
"""
from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from runstore.stored_fields import times_as_dates

# Long enough to ride out a MongoDB outage during which the run's heartbeats reach only its local copy.
STALE_HEARTBEAT_S = 600
PID_MAX = 2 ** 22  # Linux's largest pid_max: a larger stored pid is not a process id
# A run's process starts before Sacred records its start time; /proc's boot time is in whole seconds.
PID_REUSE_SLACK_S = 5
TEMP_ROOT = Path(tempfile.gettempdir())  # read at import, before a tracked run points tempfile at its own folder
TEMP_PREFIX = "tracker-process-"


def death(doc: dict[str, Any], info: dict[str, Any],
          now: datetime.datetime | None = None) -> dict[str, str] | None:
    """None while the run `doc` (a MongoDB run document or a file store's run.json) may be alive, or is not RUNNING;
    else {"at": ISO time, "how": how its death was found}, as info.died records it. `info`: the run's info."""
    if doc.get("status") != "RUNNING":
        return None
    doc = times_as_dates(doc)
    now = now or datetime.datetime.utcnow()
    host, pid = _hostname(doc), info.get("pid")
    if host == platform.node() and pid is not None:
        # A silent run whose pid a later process holds died, and the pid was given out again (after a reboot, say).
        # With a start time (_started_after needs one), _silent_s is a number.
        reused = _started_after(pid, doc.get("start_time")) and (_silent_s(doc, now) or 0.0) >= STALE_HEARTBEAT_S
        if _process_exists(pid) and not reused:
            return None
        how = f"process {pid} on host {host} is gone"
    else:
        silent_s = _silent_s(doc, now)
        if silent_s is None or silent_s < STALE_HEARTBEAT_S:  # None: not a run Sacred wrote, nothing tells
            return None
        how = f"no heartbeat from host {host} for {silent_s:.0f} s (limit {STALE_HEARTBEAT_S} s)"
    return {"at": now.isoformat(), "how": how}


def seems_dead(doc: dict[str, Any], info: dict[str, Any]) -> bool:
    """Whether a listing should show the RUNNING run `doc` as dead (death): a stored pid that is not a process id,
    or a time that is not one, cannot tell, and leaves it listed as it is."""
    pid = _process_id(info)
    known = {"pid": pid} if pid is not None else {}  # else only the heartbeat tells
    try:
        return death(doc, known) is not None
    except (TypeError, ValueError, AttributeError):  # a stored host or time of another type
        return False


def describe_alive(doc: dict[str, Any], info: dict[str, Any]) -> str:
    """Why a RUNNING run counts as alive, for messages: its process, or its recent heartbeat."""
    host, pid = _hostname(doc), info.get("pid")
    if host == platform.node() and pid is not None:
        return f"its process {pid} on this host ({host}) is alive"
    return f"host {host} sent a heartbeat within the last {STALE_HEARTBEAT_S} s"


def make_process_temp_dir(pid: int) -> Path:
    """A new folder for the temporary files of the tracked run in process `pid`: tempfile's, so only its user may
    enter it and no other user can create it beforehand (its name ends in random characters)."""
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{pid}-", dir=TEMP_ROOT))


def process_temp_dirs(pid: object) -> list[Path]:
    """The temporary folders of tracked runs in process `pid` on this host that belong to this user."""
    if type(pid) is not int:  # a stored pid is data: never a pattern
        return []
    return [folder for folder in TEMP_ROOT.glob(f"{TEMP_PREFIX}{pid}-*")
            if folder.is_dir() and not folder.is_symlink() and folder.lstat().st_uid == os.getuid()]


def remove_temporary_files(doc: dict[str, Any], info: dict[str, Any]) -> None:
    """Remove a dead run's temporary files, when it ran on this host (a killed process cannot do it itself)."""
    pid = _process_id(info)  # a stored pid of text could name any folder: ../../home/someone
    if _hostname(doc) == platform.node() and pid is not None:
        for folder in process_temp_dirs(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _process_id(info: dict[str, Any]) -> int | None:
    """The run's stored info.pid when it is a process id, else None."""
    pid = info.get("pid")
    return pid if type(pid) is int and 0 < pid <= PID_MAX else None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _silent_s(doc: dict[str, Any], now: datetime.datetime) -> float | None:
    """Seconds since the run's last heartbeat (or its start), or None when it recorded neither."""
    last_sign = doc.get("heartbeat") or doc.get("start_time")
    return None if last_sign is None else (now - last_sign).total_seconds()


def _started_after(pid: int, start_time: datetime.datetime | None) -> bool:
    """Whether process `pid` started after the run's `start_time` (plus PID_REUSE_SLACK_S), so that its pid was given
    to another process since the run's died (after a reboot, say). False where /proc cannot tell (not Linux)."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        started = datetime.datetime.utcfromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"))
        return start_time is not None and started > start_time + datetime.timedelta(seconds=PID_REUSE_SLACK_S)
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def _hostname(doc: dict[str, Any]) -> str | None:
    return (doc.get("host") or {}).get("hostname")

