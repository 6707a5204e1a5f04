"""pymongo's private parts that this project uses, written for pymongo 4 (checked with 4.20). Why each is needed:

- skip_exit_wait: pymongo's exit handler joins the threads of closed clients, which look only every 0.5 s whether to
  stop: up to 0.5 s at the end of every run, for daemon threads that hold nothing to write.
"""
import atexit

import pymongo

from compat import Package

PYMONGO = Package("pymongo", ("4",), "compat/pymongo.py")


def skip_exit_wait():
    """Let this process exit without joining the threads of its closed MongoDB clients. Call once every client of
    the process is closed."""
    monitor = getattr(getattr(pymongo, "synchronous", None), "monitor", pymongo)  # pymongo 4.9 and later
    shutdown = PYMONGO.target(monitor, "_shutdown_resources", optional=True)
    if shutdown is not None:
        atexit.unregister(shutdown)
