"""Commands in messages: those they suggest, written so that they work when pasted into a shell, and what a failed
one said; and text for a terminal, with the control characters of stored text escaped."""
from __future__ import annotations

import re
import shlex
from typing import Any, TextIO


def shell_command(*words: object) -> str:
    """`words` as one shell command line, each quoted where needed (a path with a space, a quote or a `$`)."""
    return " ".join(shlex.quote(str(word)) for word in words)


def last_line(output: str, empty: str = "no output") -> str:
    """The last line a failed command wrote (its error, as a rule), for a one-line message; `empty` when there is
    none."""
    return (output.strip().splitlines() or [empty])[-1]


# Control characters (C0 but newline and tab, DEL, C1) and the bidirectional overrides, which would let stored text
# move the cursor, clear the screen, retitle the window or hide text. A carriage return is kept before a newline
# (CSV's line ends).
_CONTROLS = re.compile("\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with its control characters escaped as Python writes them (`\\x1b`), for a terminal."""
    return _CONTROLS.sub(lambda match: repr(match.group())[1:-1], text)


class PrintableStream:
    """A text stream that escapes the control characters of all that is written to it (printable), so no stored
    text that a command prints (a run's name, a config value, an error) can drive the terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(printable(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
