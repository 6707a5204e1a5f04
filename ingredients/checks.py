"""One-line checks of config values, shared by the config hooks of every ingredient and experiment."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from runstore.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import TypeGuard


SACRED_COMMANDS = ("print_config", "print_dependencies", "print_named_configs", "save_config")


def builds_data(command_name: str) -> bool:
    """Whether a command builds the data (a run, `rebuild`), so a config hook checks that the data is there first:
    a run that would fail for want of data is then never started. Sacred's own commands only show the config."""
    return command_name not in SACRED_COMMANDS


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (not a bool): `with lr=1e400` gives inf, which no config key accepts."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_choice(key: str, value: Any, choices: Collection[str]) -> None:
    if value not in choices:
        raise UserError(f"{key}={value!r} is unknown; choose one of {', '.join(choices)}")


def check_positive_int(key: str, value: Any, example: object = None) -> None:
    if not is_int(value) or value < 1:
        raise UserError(f"{key}={value!r} must be a positive integer"
                        + (f", e.g. with {key}={example}" if example else ""))


def check_number(key: str, value: Any, low: float | None = None, high: float | None = None, low_inclusive: bool = True,
                 example: object = None) -> None:
    """A finite number within [low, high] (low excluded unless `low_inclusive`, high always excluded)."""
    fits = is_number(value) and (
        low is None or (value >= low if low_inclusive else value > low)) and (high is None or value < high)
    if not fits:
        if low is not None and high is not None:
            bounds = f"in [{low}, {high})" if low_inclusive else f"between {low} and {high}"
        elif low is not None:
            bounds = f">= {low}" if low_inclusive else f"> {low}"
        else:
            bounds = ""
        raise UserError(f"{key}={value!r} must be a finite number {bounds}".rstrip()
                        + (f", e.g. with {key}={example}" if example else ""))


def check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise UserError(f"{key}={value!r} must be True or False")
