"""What MongoDB can store: a run's config is checked before the run starts, and a run folder's config and info before
`tracker sync` uploads it, so a value MongoDB refuses fails in one line instead of leaving a run half-stored.

MongoDB's own refusal comes too late (after the run, in the middle of an upload) and, for deep nesting, as a
RecursionError; this walk needs no recursion.
"""
from __future__ import annotations

import json
from typing import Any

from runstore.errors import UserError

DOCUMENT_LIMIT_BYTES = 16 * 2**20  # MongoDB's limit on one document
# A run document holds its config and info beside its output's tail (up to layout.TAIL_CHARS), so each gets half.
VALUE_LIMIT_BYTES = DOCUMENT_LIMIT_BYTES // 2
# MongoDB refuses documents nested deeper than 100 levels; a config or info sits one level down in its run document.
MAX_NESTING = 99


def check_storable(value: Any, what: str) -> None:
    """UserError naming the first part of `value` (a run's `what`: "config" or "info") that MongoDB cannot store: a key
    holding a NUL character or starting with '$', nesting past MAX_NESTING, or a size over
    VALUE_LIMIT_BYTES."""
    pending: list[tuple[Any, str, int]] = [(value, what, 1)]
    while pending:
        item, where, depth = pending.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                _check_key(key, where)
                pending.append((inner, f"{where}.{key}", depth + 1))
        elif isinstance(item, (list, tuple)):
            pending.extend((inner, f"{where}[{index}]", depth + 1) for index, inner in enumerate(item))
        else:
            continue
        if depth > MAX_NESTING:
            raise UserError(f"{what} is nested more than {MAX_NESTING} levels deep (at {where[:80]}...), deeper than "
                            f"MongoDB stores; keep deep structures in a file added with _run.add_artifact")
    size = len(json.dumps(value, default=str).encode())  # about its size in BSON, for any value a config holds
    if size > VALUE_LIMIT_BYTES:
        raise UserError(f"{what} is {size / 2**20:.1f} MB, over the {VALUE_LIMIT_BYTES // 2**20} MB a run's {what} may "
                        f"take of MongoDB's {DOCUMENT_LIMIT_BYTES // 2**20} MB document; keep large data in a file "
                        f"added with _run.add_artifact")


def _check_key(key: object, where: str) -> None:
    if not isinstance(key, str):
        problem = "is not text"
    elif "\0" in key:
        problem = "holds a NUL character"
    elif key.startswith("$"):  # MongoDB reads such a key as an operator in queries and updates
        problem = "starts with '$'"
    else:
        return
    valid = str(key).replace("\0", "").lstrip("$") or "name"
    raise UserError(f"key {key!r} in {where} {problem}, which MongoDB does not allow in keys; rename it, e.g. to "
                    f"{valid!r}")
