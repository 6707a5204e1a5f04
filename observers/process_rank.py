"""Which process of a distributed launch this is, read from the environment that torchrun sets (RANK, WORLD_SIZE),
which `tracker sweep --executor slurm` also sets for each SLURM task (tracker.trial).

Only rank 0 records a run (observers.track); the others train alongside it (ingredients.distributed).
"""
from __future__ import annotations

import os


def world_size() -> int:
    """How many processes train together: WORLD_SIZE, or 1 outside a distributed launch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    """This process's rank, 0 to world_size() - 1; 0 outside a distributed launch."""
    return int(os.environ.get("RANK", "0")) if world_size() > 1 else 0
