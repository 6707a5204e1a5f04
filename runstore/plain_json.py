"""Stored configs, info and sweep records are data, never code: they are read back as plain JSON values only.

Sacred's own reader (jsonpickle) runs whatever a `py/reduce` or `py/object` tag (or a `json://` key) names, both in a
config file and in a `with KEY=VALUE` argument (which it reads as a Python literal, then with jsonpickle), so a value
planted in a shared database, a run folder or a sweep record could run code on the machine of whoever reruns it. A
config Sacred stores holds only JSON values (it turns tuples into lists and numpy numbers into Python numbers), so no
tag is ever needed.
Every value that becomes a `with` argument passes `plain_values` (configs, info, a sweep's parameters) or
`plain_arguments` (`with` arguments as text).
"""
from __future__ import annotations

import ast
from collections.abc import KeysView
from typing import Any

from runstore.errors import UserError

JSONPICKLE_TAG = "py/"
JSONPICKLE_KEY_TAG = "json://"  # Sacred decodes with keys=True: jsonpickle then decodes a key with this prefix too
JSON_SCALARS = (str, int, float, bool, type(None))
TAG_PROBLEM = "the jsonpickle tag"


def plain_values(value: Any, label: str, what: str, path: str | None = None) -> Any:
    """`value` unchanged when it holds only plain JSON values; UserError naming `label`, `what` and where otherwise.

    `what` names the value in the message, e.g. "config" or "info"; `path` is how the location starts (`what`).
    """
    found = _first_problem(value, what if path is None else path)
    if found is not None:
        where, problem = found
        why = "which would run code when read" if problem == TAG_PROBLEM else "not a plain JSON value"
        raise UserError(f"{label}'s {what} holds {problem} at {where}, {why}; it was not used: stored values must be "
                        f"plain JSON (numbers, text, lists, objects)")
    return value


def plain_arguments(arguments: Any, label: str, what: str, path: str | None = None) -> list[str]:
    """`arguments` (`with` arguments as text: KEY=VALUE or a named config) unchanged when each value, read as Sacred
    reads it (a Python literal, else text), is plain JSON; UserError naming the key otherwise (plain_values)."""
    if not isinstance(arguments, list) or not all(isinstance(argument, str) for argument in arguments):
        raise UserError(f"{label}'s {what} holds {str(arguments)[:40]!r} at {path or what}, not a list of `with` "
                        f"arguments; it was not used")
    for argument in arguments:
        key, separator, text = argument.partition("=")
        if separator:
            plain_values(sacred_value(text), label, what, path=_join(path or what, key.strip()))
    return arguments


def sacred_value(text: str) -> Any:
    """A `with` argument's value as Sacred's command line reads it before jsonpickle: a Python literal, else text.

    Not compat.sacred.convert_value, which goes on to decode jsonpickle tags: the very step that would run code.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _first_problem(value: Any, path: str) -> tuple[str, str] | None:
    """(where, what is wrong) of the first jsonpickle tag or non-JSON value in `value`, or None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return _join(path, repr(key)), "a key that is not text"
            if key.startswith((JSONPICKLE_TAG, JSONPICKLE_KEY_TAG)):
                return _join(path, key), TAG_PROBLEM
            found = _first_problem(item, _join(path, key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):  # a tuple: a Python literal of a `with` argument, stored as a list
        for index, item in enumerate(value):
            found = _first_problem(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif not isinstance(value, JSON_SCALARS):
        return path, f"a value of type {type(value).__name__}"
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def dotted_keys(config: dict[str, Any]) -> KeysView[str]:
    """Every leaf key of a nested config, as Sacred's command line writes it: trainer.steps, lr, ..."""
    return dotted_values(config).keys()


def dotted_values(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of every leaf of a nested config."""
    values: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            values.update(dotted_values(value, f"{prefix}{key}."))
        else:
            values[prefix + key] = value
    return values
