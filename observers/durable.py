"""DurableMongoObserver: records a run in the local file store first and mirrors it to MongoDB from a background
thread, so a database outage neither blocks training nor loses anything.

Sacred's MongoObserver falls short here: one failed write during an outage marks it failed for the rest of the run,
its final save raises TypeError without a failure_dir, QueuedMongoObserver hangs, and DocumentTooLarge is reported
as an "unserializable entry". This observer writes everything to RUNS_DIR (Sacred's FileStorageObserver format;
compat.sacred.FileStorage passes each file it writes through write_file), uploads it with observers.upload
(idempotent, resumable), deletes the local copy once MongoDB holds the finished run, and otherwise leaves it there
for `tracker sync`.

Sacred also stops calling an observer after its first exception (it logs "An error ocurred in the ... observer" and
goes on to print "Completed"), so a full disk would silently end the recording. Every event here is therefore guarded
(_never_raises). A failure of the local store (no space, permission lost, I/O error) is reported in one line naming
the path and the free space; from then on nothing more is written locally and MongoDB alone holds the run, from the
state kept in memory. When MongoDB cannot take it either, the run fails in one line and the process exits 1. The
design is in docs/durability.md.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import orjson
import pymongo
from compat.pymongo import skip_exit_wait
# compat.sacred before sacred: it imports Sacred without its warning
from compat.sacred import MONGO_PRIORITY, FileStorage, wait_for_last_heartbeat
from pymongo.errors import ConnectionFailure
from sacred.serializer import flatten

from runstore.atomic_file import replacing, write_atomically
from runstore.errors import UserError
from runstore.layout import summarize
from runstore.run_ref import RunRef
from runstore.local_run import (ARTIFACT_TYPES_FILE, RECORDED_KEY, SOURCES_DIR, LocalRun, file_record,
                                upload_lock)
from runstore.settings import shown_url
from runstore.shell import shell_command
from observers.upload import RunUploader, UploadError, UploadState

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable
    from typing import Concatenate, ParamSpec

    from numpy.typing import ArrayLike
    from pymongo.database import Database

    P = ParamSpec("P")

# Short timeouts: an attempt against a dead server fails fast, and the next one follows RETRY_S later.
CLIENT_OPTIONS: dict[str, Any] = {"serverSelectionTimeoutMS": 2000, "connectTimeoutMS": 2000, "socketTimeoutMS": 20000}
RETRY_S = 2.0
GIVE_UP_S = 10.0  # at the end of a run, stop waiting once MongoDB has failed for this long
# ...unless it never answered during the whole run: then the final attempt alone decides, so a laptop
# without MongoDB does not wait at the end of every run.
GIVE_UP_NEVER_REACHED_S = 0.0
LAST_HEARTBEAT_WAIT_S = 30.0
STORE_FIX = ("free space there or set RUNS_DIR (environment or .env) to a folder with room, and check that MongoDB "
             "answers (MONGO_URL)")


def _never_raises(event: Callable[Concatenate[DurableMongoObserver, P], None]
                  ) -> Callable[Concatenate[DurableMongoObserver, P], None]:
    """A Sacred event that reports any error in one line instead of raising it: Sacred would stop calling the
    observer for the rest of the run. (Failures of the local store are handled where they happen, _write_locally.)"""
    @functools.wraps(event)
    def guarded(self: DurableMongoObserver, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            return event(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any error would stop Sacred calling the observer
            if event.__name__ not in self.reported_errors:  # once per event: heartbeats come every few seconds
                self.reported_errors.add(event.__name__)
                print(f"WARNING: recording the run's {event.__name__} failed ({error!r}); the run goes on and is "
                      f"recorded further", file=sys.stderr)
    return guarded


class DurableMongoObserver(FileStorage):
    sources_folder = SOURCES_DIR  # removed with the run's folder; Sacred's shared one would stay behind
    def __init__(self, runs_dir: str | os.PathLike[str], mongo_url: str, db_name: str, reachable: bool = True) -> None:
        """`reachable`: whether MongoDB answered just before the run (observers.choose has warned if not)."""
        super().__init__(runs_dir, priority=MONGO_PRIORITY)
        self.reachable = reachable
        self.safe_url = shown_url(mongo_url)
        self.client = pymongo.MongoClient(mongo_url, **CLIENT_OPTIONS)
        self.db_name = db_name
        self.lock = threading.Lock()  # Sacred calls events from the training and the heartbeat thread
        self.metrics_file_lock = threading.Lock()  # metrics.json is written outside self.lock, one snapshot at a time
        self.metrics: dict[str, MetricSeries] = {}  # name -> MetricSeries
        self.metrics_changed = False  # points arrived since metrics.json was last written
        self.artifact_types: dict[str, dict[str, Any]] = {}
        # name -> points in metrics.json, recorded in run.json (runstore.local_run)
        self.written_points: dict[str, int] = {}
        # name -> summarize() of those points, recorded in run.json for listings
        self.written_summaries: dict[str, dict[str, Any]] = {}
        # path in the run folder -> file_record of what was written there, also in run.json
        self.file_records: dict[str, dict[str, Any]] = {}
        self.mirror: MongoMirror | None = None
        # why the local store stopped taking the run; from then on MongoDB alone has it
        self.local_failure: str | None = None
        # name -> the added file, for artifacts the local store did not take
        self.artifact_sources: dict[str, str | os.PathLike[str]] = {}
        self.local_artifacts: set[str] = set()  # names whose latest file is in the run folder
        self.lost: list[str] = []  # what neither store took, one line each
        self.reported_errors: set[str] = set()  # events whose error has been reported (_never_raises)
        self.folder_lock = contextlib.ExitStack()  # the run folder's upload lock, held for the whole run

    def __repr__(self) -> str:
        return f"DurableMongoObserver({self.safe_url}, {self.db_name!r}, local copy in {self.basedir})"

    @property
    def started_mirror(self) -> MongoMirror:
        """The mirror, for the events that Sacred sends only after started_event made it."""
        assert self.mirror is not None, "an event before started_event"
        return self.mirror

    def run_ref(self) -> RunRef | None:
        """The run this observer records, as it stands (None before it starts): its database id once MongoDB has
        it, its folder until the upload is complete and the folder removed."""
        database_id = self.mirror.state.run_id if self.mirror is not None else None
        folder = Path(self.dir).resolve() if self.dir and os.path.isdir(self.dir) else None
        return RunRef(database_id, folder) if database_id is not None or folder is not None else None

    # ---- Sacred events: write locally, then wake the mirror -------------------------------------
    def started_event(self, ex_info: dict[str, Any], command: str, host_info: dict[str, Any],
                      start_time: datetime.datetime, config: dict[str, Any], meta_info: dict[str, Any],
                      _id: object) -> int | str | None:
        """Raises UserError (the run does not start) when neither the local store nor MongoDB takes the run."""
        try:
            local_id = super().started_event(ex_info, command, host_info, start_time, config, meta_info, None)
        except OSError as error:  # no run folder at all
            raise UserError(self._store_problem(error, self.basedir) + "; " + STORE_FIX) from None
        self.folder_lock.enter_context(upload_lock(self.dir))
        # The process writing the run (runstore.liveness), in its info from the first upload on.
        self.info = {"pid": os.getpid()}
        self.save_json(self.info, "info.json")
        self.mirror = MongoMirror(self, self.client[self.db_name], warned=not self.reachable)
        # A reachable server gives the run its MongoDB id right away; an unreachable one is left to the mirror.
        uploaded = self.reachable and self.mirror.attempt()
        if self.local_failure is not None and not uploaded:
            self.folder_lock.close()
            shutil.rmtree(self.dir, ignore_errors=True)  # a part of a run that nothing could record
            self.mirror = None  # nothing to wait for in join
            raise UserError(f"{self.local_failure}, and MongoDB at {self.safe_url} did not take the run either; "
                            f"{STORE_FIX}")
        if self.local_failure is not None:
            self._warn_local_failure()
        self.mirror.start()
        return self.mirror.state.run_id if uploaded else local_id

    @_never_raises
    def heartbeat_event(self, info: dict[str, Any], captured_out: str, beat_time: datetime.datetime,
                        result: Any) -> None:
        with self.lock:
            super().heartbeat_event(flatten({**info, "pid": os.getpid()}), captured_out, beat_time, result)
        self.started_mirror.wake()

    @_never_raises
    def log_metrics(self, metrics_by_name: dict[str, dict[str, Any]], info: dict[str, Any]) -> None:
        """Sacred's heartbeat: the `_run.log_scalar` points since the last one; also writes log_batch's points."""
        # Sacred's final heartbeat may overlap a slow one of its heartbeat thread: a newer snapshot is never
        # overwritten by an older one.
        with self.metrics_file_lock:
            with self.lock:
                for name, new in metrics_by_name.items():
                    values = [v.item() if hasattr(v, "item") else v for v in new["values"]]
                    self.metrics.setdefault(name, MetricSeries()).append(new["steps"], values, new["timestamps"])
                    self.metrics_changed = True
                changed, self.metrics_changed = self.metrics_changed, False
                arrays = {name: series.arrays() for name, series in self.metrics.items()} if changed else None
            # the upload runs while metrics.json is written (the arrays never change)
            self.started_mirror.wake()
            if arrays is not None and self._write_locally("metrics.json", self._write_metrics, arrays):
                self.written_points = {name: len(steps) for name, (steps, _, _) in arrays.items()}
                self.written_summaries = {name: summarize(steps, values)
                                          for name, (steps, values, _) in arrays.items()}

    @_never_raises
    def log_batch(self, name: str, steps: np.ndarray, values: np.ndarray, timestamp: np.datetime64) -> None:
        """Points of one metric logged at `timestamp` (observers.log_batch); stored at the next heartbeat, as
        Sacred stores `_run.log_scalar` points."""
        with self.lock:
            self.metrics.setdefault(name, MetricSeries()).append(steps, values, np.full(len(steps), timestamp))
            self.metrics_changed = True

    @_never_raises
    def artifact_event(self, name: str, filename: str | os.PathLike[str], metadata: Any = None,
                       content_type: str | None = None) -> None:
        with self.lock:
            self.artifact_types[name] = {"content_type": content_type, "metadata": metadata}
            self.run_entry["artifacts"].append(name)
            if self._write_locally(name, self._copy_artifact, name, filename):
                self.local_artifacts.add(name)
                self._write_locally(ARTIFACT_TYPES_FILE, self._write_json_atomically, self.artifact_types,
                                    ARTIFACT_TYPES_FILE)
                self.save_json(self.run_entry, "run.json")
            else:
                self.local_artifacts.discard(name)
                self.artifact_sources[name] = filename
        if self.local_failure is None:
            self.started_mirror.wake()
            return
        # the file may be gone once add_artifact returns: uploaded while it is there
        if not self.started_mirror.attempt():
            self.lost.append(f"artifact {name} ({filename})")
        with self.lock:
            self.artifact_sources.pop(name, None)  # in MongoDB now, or lost

    @_never_raises
    def resource_event(self, filename: str) -> None:
        with self.lock:
            super().resource_event(filename)
        self.started_mirror.wake()

    @_never_raises
    def completed_event(self, stop_time: datetime.datetime, result: Any) -> None:
        with self.lock:
            super().completed_event(stop_time, result)

    @_never_raises
    def interrupted_event(self, interrupt_time: datetime.datetime, status: str) -> None:
        with self.lock:
            super().interrupted_event(interrupt_time, status)

    @_never_raises
    def failed_event(self, fail_time: datetime.datetime, fail_trace: list[str]) -> None:
        if self.mirror is None:  # the run failed in started_event itself: there is nothing to record it in
            return
        with self.lock:
            # The error ends the output it stopped: Omniboard's Captured Out shows it too, not only its Fail Trace.
            self.cout = self.cout + ("" if self.cout.endswith("\n") or not self.cout else "\n") + "".join(fail_trace)
            self.save_cout()
            super().failed_event(fail_time, fail_trace)

    def join(self) -> None:
        """After the final event: wait for MongoDB to hold the finished run, then drop the local copy.

        The wait is bounded: each MongoDB operation times out (CLIENT_OPTIONS), and failures end it after GIVE_UP_S.

        Raises SystemExit(1) after one line when part of the run is in neither store: Sacred calls join after
        its last word about the run, and lets only a BaseException through.
        """
        if self.mirror is None:
            return
        wait_for_last_heartbeat(LAST_HEARTBEAT_WAIT_S)
        stored = self.mirror.finish(GIVE_UP_S if self.mirror.reached else GIVE_UP_NEVER_REACHED_S)
        if stored:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.client.close()
            skip_exit_wait()
        self.folder_lock.close()
        if self.lost or (self.local_failure is not None and not stored):
            lost = f"MongoDB at {self.safe_url} did not take " + (
                "; ".join(self.lost) if self.lost else f"the run after that; what {self.dir} holds is incomplete")
            print(f"ERROR: the run is recorded incompletely: {self.local_failure}, and {lost}; {STORE_FIX}",
                  file=sys.stderr)
            raise SystemExit(1)
        if stored:
            return
        fix = ("see the warning above" if self.mirror.refused
               else f"upload it with `{shell_command('tracker', 'sync', self.dir)}` once MongoDB is back")
        print(f"WARNING: MongoDB at {self.safe_url} did not take the finished run; it is complete in {self.dir}; {fix}",
              file=sys.stderr)

    # ---- the local store ------------------------------------------------------------------------
    def write_file(self, name: str, write: Callable[..., Any], *args: Any) -> Any:
        """Each of Sacred's writes into the run folder; run.json also records what cout.txt and metrics.json hold by
        then, so `tracker sync` can tell when they lack some of it (runstore.local_run). A source or resource that
        the failed local store cannot take is recorded where it is."""
        if name == "run.json":
            self.run_entry[RECORDED_KEY] = {"output_chars": len(self.cout), "metric_points": self.written_points,
                                            "files": self.file_records, "metric_summaries": self.written_summaries}
        return self._write_locally(name, write, *args)

    def save_source(self, filename: str, store_dir: Path) -> Path:
        stored = super().save_source(filename, store_dir)
        if stored.parent == Path(self.dir) / SOURCES_DIR:
            self.file_records[f"{SOURCES_DIR}/{stored.name}"] = file_record(stored)
        return stored

    def _write_locally(self, name: str, write: Callable[..., Any], *args: Any) -> Any:
        """write(*args), a write of the file `name` into the run folder: its result (True for none), or None once the
        local store has failed (then or earlier; reported once, and the run goes on in MongoDB)."""
        if self.local_failure is not None:
            return None
        try:
            result = write(*args)
            return True if result is None else result
        except OSError as error:
            self.local_failure = self._store_problem(error, os.path.join(self.dir, name))
            if self.mirror is not None:  # during started_event, which decides whether the run can go on
                self._warn_local_failure()
            return None

    def _warn_local_failure(self) -> None:
        print(f"WARNING: {self.local_failure}; nothing more is written there, the run goes on in MongoDB at "
              f"{self.safe_url} alone", file=sys.stderr)

    def _store_problem(self, error: OSError, path: str | os.PathLike[str]) -> str:
        """One line: the local store failed to write `path`, why, and the free space there."""
        try:
            free = f"{shutil.disk_usage(self.basedir).free / 2**20:.1f} MB free"
        except OSError:
            free = "free space unknown"
        return f"the local store failed to write {path} ({error.strerror or error}; {free} in {self.basedir})"

    def _copy_artifact(self, name: str, filename: str | os.PathLike[str]) -> None:
        # Replaced atomically: the mirror may be reading the previous version of the same name.
        with replacing(os.path.join(self.dir, name)) as partial:
            shutil.copyfile(filename, partial)
            self.file_records[name] = file_record(partial)  # what `tracker sync` checks the folder's copy against

    # ---- for the mirror -------------------------------------------------------------------------
    def snapshot(self) -> LocalRun:
        """The run as it would be read back from the local copy now; what the local store did not take comes from
        memory (the output, metrics and run entry are all held there) and from the added artifact files."""
        with self.lock:
            entry = flatten(self.run_entry)
            replaced: dict[str, bytes | str | os.PathLike[str]] = {}
            if self.local_failure is not None:  # the uploader reads only the files that are there
                entry["artifacts"] = [n for n in entry["artifacts"]
                                      if n in self.artifact_sources or n in self.local_artifacts]
                replaced = dict(self.artifact_sources)
                if entry["status"] not in ("RUNNING", "QUEUED"):  # the uploader reads the whole output at the end
                    replaced["cout.txt"] = self.cout.encode()
            return LocalRun(
                dir=Path(self.dir),
                entry=entry,
                config=flatten(self.config),
                info=self.info,
                captured_out=self.cout,
                metrics={name: series.as_dict() for name, series in self.metrics.items()},
                artifact_types=dict(self.artifact_types),
                missing=list(self.lost),
                replaced_files=replaced,
                in_memory=True,
            )

    def _write_metrics(self, arrays: dict[str, tuple[np.ndarray, ...]]) -> None:
        """metrics.json in Sacred's format from {name: (steps, values, timestamps)}, written piecewise: json.dump of
        a million points as Python lists took seconds and hundreds of MB."""
        with replacing(os.path.join(self.dir, "metrics.json")) as partial, open(partial, "w") as file:
            file.write("{")
            for index, (name, (steps, values, stamps)) in enumerate(arrays.items()):
                file.write(f'{", " if index else ""}{json.dumps(name)}: {{"steps": ')
                _write_json_list(file, steps)
                file.write(', "values": ')
                _write_json_list(file, values)
                file.write(', "timestamps": ')
                _write_json_list(file, stamps, _timestamps_json)
                file.write("}")
            file.write("}")

    def _write_json_atomically(self, value: Any, name: str) -> None:
        write_atomically(os.path.join(self.dir, name), json.dumps(value))


class MetricSeries:
    """One metric's points as numpy arrays (int64 steps, float64 values, datetime64[us] timestamps), appended in
    chunks and joined when read: a million points as lists of Python objects took over 400 MB."""

    def __init__(self) -> None:
        # (steps, values, timestamps) per append; a series is created by its first append
        self.chunks: list[tuple[np.ndarray, ...]] = []

    def append(self, steps: ArrayLike, values: ArrayLike, timestamps: ArrayLike) -> None:
        self.chunks.append((np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64),
                            np.asarray(timestamps, dtype="datetime64[us]")))

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(steps, values, timestamps); the arrays are never changed afterwards, so readers may keep them."""
        if len(self.chunks) > 1:
            self.chunks = [tuple(np.concatenate(parts) for parts in zip(*self.chunks))]
        return self.chunks[0]

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(zip(("steps", "values", "timestamps"), self.arrays()))


def _numbers_json(part: np.ndarray) -> str:
    """Numbers as JSON list items. orjson writes a numpy array ~10x faster than json.dumps its list, but writes NaN
    and infinities as null, so arrays holding them keep Python's NaN, Infinity, as Sacred's metrics.json has."""
    if part.dtype.kind == "f" and not np.isfinite(part).all():
        return json.dumps(part.tolist())[1:-1]
    return orjson.dumps(part, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1]


def _timestamps_json(part: np.ndarray) -> str:
    """datetime64 values as quoted ISO strings, formatted once per run of equal ones (a log_batch call's points)."""
    starts = np.flatnonzero(np.r_[True, part[1:] != part[:-1]])
    counts = np.diff(np.r_[starts, len(part)]).tolist()
    texts = np.datetime_as_string(part[starts], unit="us").tolist()
    return "".join(f'"{text}", ' * count for text, count in zip(texts, counts))[:-2]


def _write_json_list(file: IO[str], array: np.ndarray, to_json: Callable[[np.ndarray], str] = _numbers_json,
                     points: int = 100_000) -> None:
    """`array` as a JSON list, converted `points` at a time, so the text never exists whole in memory."""
    file.write("[")
    for start in range(0, len(array), points):
        file.write((", " if start else "") + to_json(array[start:start + points]))
    file.write("]")


class MongoMirror(threading.Thread):
    """Uploads the observer's run whenever it changes, retrying every RETRY_S while MongoDB is unreachable."""

    def __init__(self, observer: DurableMongoObserver, db: Database[Any], warned: bool = False) -> None:
        """`warned`: the user already knows MongoDB is unreachable, so the first failure is not reported again."""
        super().__init__(name="mongo-mirror", daemon=True)  # a daemon never holds up the end of the process
        self.observer = observer
        self.uploader = RunUploader(db)
        self.state = UploadState()
        self.changed = threading.Event()
        self.finishing = threading.Event()
        self.finished = threading.Event()  # MongoDB holds the finished run
        self.failing_since: float | None = time.monotonic() if warned else None
        self.refused = False  # MongoDB cannot take the run as it is (UploadError): waiting is pointless
        self.reached = False  # MongoDB took at least one upload of this run
        self.uploading = threading.Lock()  # uploads come from this thread and from artifact_event

    def wake(self) -> None:
        self.changed.set()

    def attempt(self) -> bool:
        """Upload the latest state once; True when MongoDB took all of it."""
        try:
            with self.uploading:
                self.uploader.upload(self.observer.snapshot(), self.state)
        except Exception as error:  # noqa: BLE001 - any failure is retried; the local copy keeps the run
            self.refused = isinstance(error, UploadError)
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                if self.refused:
                    problem, then = f"cannot store the run: {error}", "kept"
                else:
                    reason = "is unreachable" if isinstance(error, ConnectionFailure) else f"failed ({error})"
                    problem, then = reason, "kept, and uploaded when MongoDB answers again"
                print(f"WARNING: MongoDB at {self.observer.safe_url} {problem}; training continues, the run is "
                      f"{then}, in {self.observer.dir}", file=sys.stderr)
            return False
        self.reached = True
        if self.failing_since is not None:
            print(f"MongoDB at {self.observer.safe_url} answers again; run {self.state.run_id} is up to date there",
                  file=sys.stderr)
            self.failing_since = None
        return True

    def run(self) -> None:
        while not self.finished.is_set():
            self.changed.wait(RETRY_S if self.failing_since is not None else None)
            self.changed.clear()
            final = self.finishing.is_set()  # read before the snapshot, so a success covers the final state
            if self.attempt() and final:
                self.finished.set()

    def finish(self, give_up_s: float) -> bool:
        """Upload the final state; wait while uploads succeed, however slow, and at most `give_up_s` of failures."""
        started = time.monotonic()
        self.finishing.set()
        self.wake()
        while not self.finished.wait(0.2):
            failing_since = self.failing_since
            if self.refused or failing_since is not None and time.monotonic() - max(failing_since, started) > give_up_s:
                return False
        return True
