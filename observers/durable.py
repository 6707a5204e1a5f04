"""DurableMongoObserver: records a run in the local file store first and mirrors it to MongoDB from a background
thread, so a database outage neither blocks training nor loses anything.

Sacred's MongoObserver falls short here: one failed write during an outage marks it failed for the rest of the run,
its final save raises TypeError without a failure_dir, QueuedMongoObserver hangs, and DocumentTooLarge is reported
as an "unserializable entry". This observer writes everything to RUNS_DIR (Sacred's FileStorageObserver format),
uploads it with observers.upload (idempotent, resumable), deletes the local copy once MongoDB holds the finished
run, and otherwise leaves it there for `tracker sync`.
"""
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pymongo
from pymongo.errors import ConnectionFailure
from sacred.observers import FileStorageObserver
from sacred.observers.mongo import DEFAULT_MONGO_PRIORITY
from sacred.serializer import flatten
from sacred.utils import IntervalTimer

import observers.capture_lock  # noqa: F401  (Sacred loses output when two threads read it at once)
from observers.local_run import ARTIFACT_TYPES_FILE, LocalRun
from observers.settings import redact
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
        self.metrics = {}
        self.artifact_types = {}
        self.mirror = None

    def __repr__(self):
        return f"DurableMongoObserver({self.safe_url}, {self.db_name!r}, local copy in {self.basedir})"

    # ---- Sacred events: write locally, then wake the mirror -------------------------------------
    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        local_id = super().started_event(ex_info, command, host_info, start_time, config, meta_info, None)
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
            super().heartbeat_event(flatten(info), captured_out, beat_time, result)
        self.mirror.wake()

    def log_metrics(self, metrics_by_name, info):
        with self.lock:
            for name, new in metrics_by_name.items():
                series = self.metrics.setdefault(name, {"steps": [], "values": [], "timestamps": []})
                series["steps"].extend(new["steps"])
                series["values"].extend(v.item() if hasattr(v, "item") else v for v in new["values"])
                series["timestamps"].extend(t.isoformat() for t in new["timestamps"])
            # Written whole without indentation: Sacred's re-read-and-indent takes seconds for a million points.
            self._write_json_atomically(self.metrics, "metrics.json")
        self.mirror.wake()

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
            return
        fix = ("see the warning above" if self.mirror.refused
               else f"upload it with `tracker sync {self.dir}` once MongoDB is back")
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
                metrics={name: {k: list(v) for k, v in series.items()} for name, series in self.metrics.items()},
                artifact_types=dict(self.artifact_types),
            )

    def _write_json_atomically(self, value, name):
        path = os.path.join(self.dir, name)
        with open(path + ".partial", "w") as file:
            json.dump(value, file)
        os.replace(path + ".partial", path)


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


def _wait_for_last_heartbeat():
    """Sacred waits only 2 s for its last heartbeat, which carries the final metrics and output; wait for it."""
    for thread in threading.enumerate():
        if isinstance(thread, IntervalTimer) and thread is not threading.current_thread():
            thread.join(LAST_HEARTBEAT_WAIT_S)
