"""A faster start for an entry point's process: explicit calls, never an effect of importing a module.

Importing torch, Sacred and pandas creates ~300,000 long-lived objects, and the collector's default thresholds walk
them in full collections again and again, and once more at exit: both tweaks together take 0.9 to 1.2 s off a tiny
signals run (4.7 to 5.3 s) and 0.3 to 0.5 s off `tracker report` on 8 runs (2.3 to 2.7 s), `python
benchmarks/startup_tricks.py` (docs/benchmarks.md). Sacred asks git about each source file (compat.sacred).
"""
from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

_undo: list[Callable[[], object]] = []  # what quick_start changed, undone by quick_start_done


def quick_start(git: bool = True) -> None:
    """Until quick_start_done(): collect rarely, and (`git`) make Sacred ask git once per repository. Call first in an
    entry point, before it imports torch or Sacred; track() ends it once the experiment is created."""
    if _undo:
        return
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)  # 0.35 to 0.9 s of a tiny signals run (benchmarks/startup_tricks.py)
    _undo.append(lambda: gc.set_threshold(*thresholds))
    if git:
        from compat import sacred

        sacred.look_up_git_once_per_repository()
        _undo.append(sacred.look_up_git_per_file)


def quick_start_done() -> None:
    """Undo quick_start: the collector's own thresholds, Sacred's own git lookup."""
    while _undo:
        _undo.pop()()


def imports_done() -> None:
    """End quick_start and freeze the imported objects out of the collector's way, for the rest of the process and
    for its shutdown (which otherwise spends ~1 s collecting them). For an entry point whose imports are done."""
    quick_start_done()
    gc.freeze()  # 0.7 s of a tiny signals run, mostly at its exit (benchmarks/startup_tricks.py)
