"""DurableMongoObserver: records a run in the local file store first and mirrors it to MongoDB from a background
thread, so a database outage neither blocks training nor loses anything.

Sacred's MongoObserver falls short here: one failed write during an outage marks it failed for the rest of the run,
its final save raises TypeError without a failure_dir, QueuedMongoObserver hangs, and DocumentTooLarge is reported
as an "unserializable entry". This observer writes everything to RUNS_DIR (Sacred's FileStorageObserver format),
uploads it with observers.upload (idempotent, resumable), deletes the local copy once MongoDB holds the finished
run, and otherwise leaves it there for `tracker sync`.
"""
import atexit
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pymongo
from pymongo.errors import ConnectionFailure
from sacred.observers import FileStorageObserver
from sacred.observers.mongo import DEFAULT_MONGO_PRIORITY
from sacred.serializer import flatten
from sacred.utils import IntervalTimer

import observers.capture_lock  # noqa: F401  (Sacred loses output when two threads read it at once)
from observers.local_run import ARTIFACT_TYPES_FILE, LocalRun
from observers.settings import redact
from observers.shell import shell_command
from observers.upload import RunUploader, UploadError, UploadState

# Short timeouts: an attempt against a dead server fails fast, and the next one follows RETRY_S later.
CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 2000, "connectTimeoutMS": 2000, "socketTimeoutMS": 20000}
RETRY_S = 2.0
GIVE_UP_S = 10.0  # at the end of a run, stop waiting once MongoDB has failed for this long
# ...unless it never answered during the whole run: then the final attempt alone decides, so a laptop
# without MongoDB does not wait at the end of every run.
GIVE_UP_NEVER_REACHED_S = 0.0
LAST_HEARTBEAT_WAIT_S = 30.0


class DurableMongoObserver(FileStorageObserver):
    def __init__(self, runs_dir, mongo_url, db_name, reachable=True):
        """`reachable`: whether MongoDB answered just before the run (observers.choose has warned if not)."""
        super().__init__(runs_dir, priority=DEFAULT_MONGO_PRIORITY)
        self.reachable = reachable
        self.safe_url = redact(mongo_url)
        self.client = pymongo.MongoClient(mongo_url, **CLIENT_OPTIONS)
        self.db_name = db_name
        self.lock = threading.Lock()  # Sacred calls events from the training and the heartbeat thread
        self.metrics_file_lock = threading.Lock()  # metrics.json is written outside self.lock, one snapshot at a time
        self.metrics = {}  # name -> MetricSeries
        self.metrics_changed = False  # points arrived since metrics.json was last written
        self.artifact_types = {}
        self.mirror = None

    def __repr__(self):
        return f"DurableMongoObserver({self.safe_url}, {self.db_name!r}, local copy in {self.basedir})"

    # ---- Sacred events: write locally, then wake the mirror -------------------------------------
    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        local_id = super().started_event(ex_info, command, host_info, start_time, config, meta_info, None)
        # The process writing the run (observers.liveness), in its info from the first upload on.
        self.info = {"pid": os.getpid()}
        self.save_json(self.info, "info.json")
        self.mirror = MongoMirror(self, self.client[self.db_name], warned=not self.reachable)
        # A reachable server gives the run its MongoDB id right away; an unreachable one is left to the mirror.
        uploaded = self.reachable and self.mirror.attempt()
        self.mirror.start()
        return self.mirror.state.run_id if uploaded else local_id

    def save_sources(self, ex_info):
        # Each run keeps its sources (and resources) in its own folder, removed with it; Sacred's shared
        # RUNS_DIR/_sources/ would stay behind after every run has been uploaded.
        self.source_dir = self.resource_dir = Path(self.dir) / "_sources"
        return super().save_sources(ex_info)

    def heartbeat_event(self, info, captured_out, beat_time, result):
        with self.lock:
            super().heartbeat_event(flatten({**info, "pid": os.getpid()}), captured_out, beat_time, result)
        self.mirror.wake()

    def log_metrics(self, metrics_by_name, info):
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
            self.mirror.wake()  # the upload runs while metrics.json is written (the arrays never change)
            if arrays is not None:
                self._write_metrics(arrays)

    def log_batch(self, name, steps, values, timestamp):
        """Points of one metric logged at `timestamp` (observers.log_batch); stored at the next heartbeat, as
        Sacred stores `_run.log_scalar` points."""
        with self.lock:
            self.metrics.setdefault(name, MetricSeries()).append(steps, values, np.full(len(steps), timestamp))
            self.metrics_changed = True

    def artifact_event(self, name, filename, metadata=None, content_type=None):
        with self.lock:
            # Replaced atomically: the mirror may be reading the previous version of the same name.
            temporary = os.path.join(self.dir, f".{name}.partial")
            shutil.copyfile(filename, temporary)
            os.replace(temporary, os.path.join(self.dir, name))
            self.artifact_types[name] = {"content_type": content_type, "metadata": metadata}
            self._write_json_atomically(self.artifact_types, ARTIFACT_TYPES_FILE)
            self.run_entry["artifacts"].append(name)
            self.save_json(self.run_entry, "run.json")
        self.mirror.wake()

    def resource_event(self, filename):
        with self.lock:
            super().resource_event(filename)
        self.mirror.wake()

    def completed_event(self, stop_time, result):
        with self.lock:
            super().completed_event(stop_time, result)

    def interrupted_event(self, interrupt_time, status):
        with self.lock:
            super().interrupted_event(interrupt_time, status)

    def failed_event(self, fail_time, fail_trace):
        if self.mirror is None:  # the run failed in started_event itself: there is nothing to record it in
            return
        with self.lock:
            super().failed_event(fail_time, fail_trace)

    def join(self):
        """After the final event: wait for MongoDB to hold the finished run, then drop the local copy.

        The wait is bounded: each MongoDB operation times out (CLIENT_OPTIONS), and failures end it after GIVE_UP_S.
        """
        if self.mirror is None:
            return
        _wait_for_last_heartbeat()
        if self.mirror.finish(GIVE_UP_S if self.mirror.reached else GIVE_UP_NEVER_REACHED_S):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.client.close()
            _skip_pymongo_exit_wait()
            return
        fix = ("see the warning above" if self.mirror.refused
               else f"upload it with `{shell_command('tracker', 'sync', self.dir)}` once MongoDB is back")
        print(f"WARNING: MongoDB at {self.safe_url} did not take the finished run; it is complete in {self.dir}; {fix}",
              file=sys.stderr)

    # ---- for the mirror -------------------------------------------------------------------------
    def snapshot(self):
        """The run as it would be read back from the local copy now."""
        with self.lock:
            return LocalRun(
                dir=Path(self.dir),
                entry=flatten(self.run_entry),
                config=flatten(self.config),
                info=self.info,
                captured_out=self.cout,
                metrics={name: series.as_dict() for name, series in self.metrics.items()},
                artifact_types=dict(self.artifact_types),
            )

    def _write_metrics(self, arrays):
        """metrics.json in Sacred's format from {name: (steps, values, timestamps)}, written piecewise: json.dump of
        a million points as Python lists took seconds and hundreds of MB."""
        path = os.path.join(self.dir, "metrics.json")
        with open(path + ".partial", "w") as file:
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
        os.replace(path + ".partial", path)

    def _write_json_atomically(self, value, name):
        path = os.path.join(self.dir, name)
        with open(path + ".partial", "w") as file:
            json.dump(value, file)
        os.replace(path + ".partial", path)


class MetricSeries:
    """One metric's points as numpy arrays (int64 steps, float64 values, datetime64[us] timestamps), appended in
    chunks and joined when read: a million points as lists of Python objects took over 400 MB."""

    def __init__(self):
        self.chunks = []  # (steps, values, timestamps) per append; a series is created by its first append

    def append(self, steps, values, timestamps):
        self.chunks.append((np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64),
                            np.asarray(timestamps, dtype="datetime64[us]")))

    def arrays(self):
        """(steps, values, timestamps); the arrays are never changed afterwards, so readers may keep them."""
        if len(self.chunks) > 1:
            self.chunks = [tuple(np.concatenate(parts) for parts in zip(*self.chunks))]
        return self.chunks[0]

    def as_dict(self):
        return dict(zip(("steps", "values", "timestamps"), self.arrays()))


def _numbers_json(part):
    """Numbers as JSON list items. orjson writes a numpy array ~10x faster than json.dumps its list, but writes NaN
    and infinities as null, so arrays holding them keep Python's NaN, Infinity, as Sacred's metrics.json has."""
    if part.dtype.kind == "f" and not np.isfinite(part).all():
        return json.dumps(part.tolist())[1:-1]
    return orjson.dumps(part, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1]


def _timestamps_json(part):
    """datetime64 values as quoted ISO strings, formatted once per run of equal ones (a log_batch call's points)."""
    starts = np.flatnonzero(np.r_[True, part[1:] != part[:-1]])
    counts = np.diff(np.r_[starts, len(part)]).tolist()
    texts = np.datetime_as_string(part[starts], unit="us").tolist()
    return "".join(f'"{text}", ' * count for text, count in zip(texts, counts))[:-2]


def _write_json_list(file, array, to_json=_numbers_json, points=100_000):
    """`array` as a JSON list, converted `points` at a time, so the text never exists whole in memory."""
    file.write("[")
    for start in range(0, len(array), points):
        file.write((", " if start else "") + to_json(array[start:start + points]))
    file.write("]")


class MongoMirror(threading.Thread):
    """Uploads the observer's run whenever it changes, retrying every RETRY_S while MongoDB is unreachable."""

    def __init__(self, observer, db, warned=False):
        """`warned`: the user already knows MongoDB is unreachable, so the first failure is not reported again."""
        super().__init__(name="mongo-mirror", daemon=True)  # a daemon never holds up the end of the process
        self.observer = observer
        self.uploader = RunUploader(db)
        self.state = UploadState()
        self.changed = threading.Event()
        self.finishing = threading.Event()
        self.finished = threading.Event()  # MongoDB holds the finished run
        self.failing_since = time.monotonic() if warned else None
        self.refused = False  # MongoDB cannot take the run as it is (UploadError): waiting is pointless
        self.reached = False  # MongoDB took at least one upload of this run

    def wake(self):
        self.changed.set()

    def attempt(self):
        """Upload the latest state once; True when MongoDB took all of it."""
        try:
            self.uploader.upload(self.observer.snapshot(), self.state)
        except Exception as error:
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

    def run(self):
        while not self.finished.is_set():
            self.changed.wait(RETRY_S if self.failing_since is not None else None)
            self.changed.clear()
            final = self.finishing.is_set()  # read before the snapshot, so a success covers the final state
            if self.attempt() and final:
                self.finished.set()

    def finish(self, give_up_s):
        """Upload the final state; wait while uploads succeed, however slow, and at most `give_up_s` of failures."""
        started = time.monotonic()
        self.finishing.set()
        self.wake()
        while not self.finished.wait(0.2):
            failing = self.failing_since is not None
            if self.refused or failing and time.monotonic() - max(self.failing_since, started) > give_up_s:
                return False
        return True


def _skip_pymongo_exit_wait():
    """pymongo's exit handler joins the threads of closed clients, which look only every 0.5 s whether to stop: up to
    0.5 s at the end of every run, for daemon threads that hold nothing to write. (Guarded: a private name.)"""
    monitor = getattr(getattr(pymongo, "synchronous", None), "monitor", None)
    if monitor is not None and hasattr(monitor, "_shutdown_resources"):
        atexit.unregister(monitor._shutdown_resources)


def _wait_for_last_heartbeat():
    """Sacred waits only 2 s for its last heartbeat, which carries the final metrics and output; wait for it."""
    for thread in threading.enumerate():
        if isinstance(thread, IntervalTimer) and thread is not threading.current_thread():
            thread.join(LAST_HEARTBEAT_WAIT_S)
