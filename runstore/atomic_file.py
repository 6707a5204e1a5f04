"""Files replaced whole: written aside, synced to disk and renamed over the old one, so a reader sees the old file or
all of the new one, never half of it (a run folder read while its run writes, a report opened while it is written),
and a power cut leaves the old file or the new one, never an empty or half-written one."""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A path beside `path` (hidden, named for no other writer) to write the new file at; synced and renamed to `path`
    when the block ends, removed when it raises."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        yield partial
        _sync(partial, os.O_RDONLY)  # the data on disk before the rename makes it the file's content
        os.replace(partial, path)
        _sync(path.parent, os.O_RDONLY | os.O_DIRECTORY)  # the rename itself on disk
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_atomically(path: str | os.PathLike[str], content: str | bytes) -> None:
    """Replace `path` with `content` (bytes, or text written as UTF-8) whole."""
    data = content.encode() if isinstance(content, str) else content
    with replacing(path) as partial:
        partial.write_bytes(data)


def _sync(path: str | os.PathLike[str], flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
