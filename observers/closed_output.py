"""Standard output and error that keep working once their reader has gone.

`python experiments/cifar.py ... | tee log` and Ctrl-C: the terminal's SIGINT ends `tee` too, so every later write
to the pipe (the trainer's "Stopped by SIGINT" line, Sacred's messages, the flush at exit) raises BrokenPipeError,
and the run would end FAILED instead of INTERRUPTED with its checkpoint. A lost reader is not a failure of the run:
once a write finds the pipe closed, the file descriptor is pointed at /dev/null (as Python's documentation on
SIGPIPE advises), and output goes on there.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TextIO


def tolerate_closed_output() -> None:
    """Make sys.stdout and sys.stderr of this process survive a closed reader; for an entry point to call."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ClosedReaderTolerant):
            setattr(sys, name, ClosedReaderTolerant(stream))


class ClosedReaderTolerant:
    """A text stream whose write and flush send the output to /dev/null once the reader of its pipe has gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard_output()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard_output()

    def _discard_output(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)
        try:
            self._stream.flush()  # what was buffered for the closed pipe
        except BrokenPipeError:
            pass

    def __getattr__(self, name: str) -> Any:  # everything else (fileno, isatty, encoding, ...) as the stream has it
        return getattr(self._stream, name)
