"""How a tracked run's process ends on SIGTERM: the run's end is recorded whole first, and its temporary folders go.

torchrun sends SIGTERM to every rank as soon as one rank has failed, and SLURM sends one before its SIGKILL. Acted on
at once, it ends rank 0 while rank 0 records the failure (MongoDB keeps the run RUNNING), and it leaves the
process's temporary folder behind. So, from the run's start (`begin`) to its end (`finish`, once Sacred has recorded
it and its observers are done):
- while the main function works, a SIGTERM removes the temporary folder and then ends the process, as it would have;
- once the main function has returned or raised (`recording`), a SIGTERM waits until `finish`.
`finish` also removes the temporary folders of the other ranks on this host whose process is gone (a SIGKILLed rank
cannot remove its own). A handler can only be set in the main thread: elsewhere SIGTERM keeps its handler.
"""
import os
import platform
import shutil
import signal
import threading

import psutil

from runstore.liveness import remove_temporary_files


class RunEnd:
    """The end of the one tracked run of this process (observers.track begins and finishes it)."""

    def __init__(self):
        self.folder = None  # the run's temporary folder, while it runs
        self.previous = None  # SIGTERM's handler before the run, when this one replaced it
        self.is_recording = False
        self.terminated = False  # a SIGTERM came: `finish` ends the process
        self.other_ranks = []  # (host, pid) of the other processes of a DDP run

    def begin(self, folder):
        """The run starts, with its temporary files in `folder`."""
        self.folder = folder
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._sigterm)

    def recording(self):
        """The run records its end: a SIGTERM now waits for `finish`."""
        self.is_recording = True

    def add_other_ranks(self, processes):
        """(host, pid) of the other processes training this run (ingredients.distributed), whose temporary folders
        `finish` removes once they are gone."""
        self.other_ranks = list(processes)

    def finish(self):
        """The run is recorded: remove the temporary folders, give SIGTERM its handler back and act on one that
        waited."""
        shutil.rmtree(self.folder, ignore_errors=True)
        for host, pid in self.other_ranks:
            if _gone(pid):
                remove_temporary_files({"host": {"hostname": host}}, {"pid": pid})
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        terminated = self.terminated
        self.__init__()  # ready for the next run of this process
        if terminated:
            os.kill(os.getpid(), signal.SIGTERM)

    def _sigterm(self, number, frame):
        self.terminated = True
        if not self.is_recording:
            self.finish()


def _gone(pid):
    """Whether process `pid` of this host has ended (a zombie too: its parent has not yet collected its status)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def this_process():
    """(host, pid) of this process, as `add_other_ranks` takes them."""
    return platform.node(), os.getpid()


RUN_END = RunEnd()
