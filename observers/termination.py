"""How a tracked run's process ends on SIGTERM: the run's end is recorded whole first, its error is printed, and its
temporary folders go.

torchrun sends SIGTERM to every rank as soon as one rank has failed, and SLURM sends one before its SIGKILL. Acted on
at once, it ends rank 0 while rank 0 records the failure (MongoDB keeps the run RUNNING) or before it prints the error
that the other rank stopped on, and it leaves the process's temporary folder behind. So:
- while the main function works (`main_started` to `recording`), a SIGTERM removes the temporary folder and then ends
  the process, as it would have;
- otherwise, from the command line's start (`hold`) or the run's (`begin`), a SIGTERM waits: until `release`, once
  the command line has printed its outcome, or, for a run started without the command line, until `finish`, once
  Sacred has recorded the run and its observers are done.
`finish` also removes the temporary folders of the other ranks on this host whose process is gone (a SIGKILLed rank
cannot remove its own). A handler can only be set in the main thread: elsewhere SIGTERM keeps its handler.
"""
from __future__ import annotations

import os
import platform
import shutil
import signal
import threading
from typing import TYPE_CHECKING, Any

import psutil

from runstore.liveness import remove_temporary_files

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path
    from types import FrameType


class RunEnd:
    """The end of the one tracked run of this process (observers.track holds, begins, finishes and releases it)."""

    def __init__(self) -> None:
        # SIGTERM's handler before ours, while ours is set
        self.previous: Callable[[int, FrameType | None], Any] | int | None = None
        self.held = False  # the command line holds a SIGTERM until `release`
        self.terminated = False  # a SIGTERM came and waits
        self.sigterm_came = threading.Event()  # the same, for a thread that waits for it
        self.main_ran = False  # the main function started, in this command line
        self._new_run()

    def _new_run(self) -> None:
        self.folder: Path | None = None  # the run's temporary folder, while it runs
        self.main_works = False  # a SIGTERM ends the process at once
        self.other_ranks: list[tuple[str, int]] = []  # (host, pid) of the other processes of a DDP run

    def hold(self) -> None:
        """The command line starts: a SIGTERM waits for `release`, except while the main function works."""
        self.held = self._set_handler()

    def begin(self, folder: Path) -> None:
        """The run starts, with its temporary files in `folder`."""
        self.folder = folder
        self._set_handler()

    def main_started(self) -> None:
        """The main function starts: a SIGTERM ends the process at once."""
        self.main_works = self.main_ran = True
        if self.terminated:
            self._end_now()

    def recording(self) -> None:
        """The run records its end: a SIGTERM now waits."""
        self.main_works = False

    def add_other_ranks(self, processes: Iterable[tuple[str, int]]) -> None:
        """(host, pid) of the other processes training this run (ingredients.distributed), whose temporary folders
        `finish` removes once they are gone."""
        self.other_ranks = list(processes)

    def finish(self) -> None:
        """The run is recorded: remove the temporary folders; without a hold, give SIGTERM its handler back and act
        on one that waited."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        for host, pid in self.other_ranks:
            if _gone(pid):
                remove_temporary_files({"host": {"hostname": host}}, {"pid": pid})
        self._new_run()
        if not self.held:
            self.release()

    def release(self) -> None:
        """The command line has printed the outcome: give SIGTERM its handler back and act on one that waited."""
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        terminated = self.terminated
        # ready for the next run of this process; no class derives from RunEnd, so this is RunEnd's own __init__
        self.__init__()  # type: ignore[misc]
        if terminated:
            os.kill(os.getpid(), signal.SIGTERM)

    def _set_handler(self) -> bool:
        """Whether SIGTERM has our handler (set here unless it is already, and only in the main thread)."""
        if self.previous is None and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._sigterm)
        return self.previous is not None

    def wait_for_sigterm(self, timeout_s: float) -> None:
        """Wait until a SIGTERM has come (it waits for `release`), at most `timeout_s` seconds."""
        self.sigterm_came.wait(timeout_s)

    def _sigterm(self, number: int, frame: FrameType | None) -> None:
        self.terminated = True
        self.sigterm_came.set()
        if self.main_works:
            self._end_now()

    def _end_now(self) -> None:
        self.held = False
        self.finish()


def _gone(pid: int) -> bool:
    """Whether process `pid` of this host has ended (a zombie too: its parent has not yet collected its status)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def this_process() -> tuple[str, int]:
    """(host, pid) of this process, as `add_other_ranks` takes them."""
    return platform.node(), os.getpid()


RUN_END = RunEnd()
