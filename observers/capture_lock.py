"""Serializes Sacred's reads of captured output, which it does from two threads without a lock.

Sacred 0.8.7 reads the captured-output buffer (seek, read, tell) and appends it to `Run.captured_out` from the
heartbeat thread and from the main thread at the end of a run; when they overlap, part of the output is skipped or
repeated. Long heartbeats (a run printing 100 MB) make the overlap likely.
"""
import threading

from sacred.run import Run
from sacred.stdout_capturing import CapturedStdout

_lock = threading.RLock()


def _locked(method):
    def locked(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return locked


Run._get_captured_output = _locked(Run._get_captured_output)
CapturedStdout.get = _locked(CapturedStdout.get)
CapturedStdout.finalize = _locked(CapturedStdout.finalize)
