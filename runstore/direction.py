"""Which way a run's result is better: the `higher_is_better` of its row (runstore.query), which track() records.
Both runstore.query (sorting by the result) and runstore.groups (ranking groups) read it from here."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def higher_is_better(row: dict[str, Any]) -> bool:
    """Whether a larger result of `row`'s run is better; runs that do not say (Sacred's own observers) count as yes,
    as track()'s default."""
    return row.get("higher_is_better") is not False


def mixed_directions(rows: Iterable[dict[str, Any]]) -> str | None:
    """A line saying that `rows` mix results where higher is better with results where lower is, or None."""
    by_direction: dict[bool, set[str]] = {True: set(), False: set()}
    for row in rows:
        by_direction[higher_is_better(row)].add(str(row.get("experiment")))
    if not (by_direction[True] and by_direction[False]):
        return None
    return (f"these runs mix results where higher is better ({', '.join(sorted(by_direction[True]))}) and where lower "
            f"is better ({', '.join(sorted(by_direction[False]))})")
