"""Stored configs and info are data, never code: they are read back as plain JSON values only.

Sacred's own reader (jsonpickle) runs whatever a `py/reduce` or `py/object` tag names, so a config planted in a
shared database or run folder could run code on the machine of whoever reruns the run. A config Sacred stores holds
only JSON values (it turns tuples into lists and numpy numbers into Python numbers), so no tag is ever needed there.
"""
from runstore.errors import UserError

JSONPICKLE_TAG = "py/"


def plain_values(value, label, what):
    """`value` unchanged when it holds only plain JSON values; UserError naming `label` and the tagged key otherwise.

    `what` names the value in the message, e.g. "config" or "info".
    """
    tagged = _first_tag(value, what)
    if tagged is not None:
        raise UserError(
            f"{label}'s {what} holds the jsonpickle tag at {tagged}, which would run code when read; "
            f"it was not used: stored configs and info must be plain JSON values (numbers, text, lists, objects)"
        )
    return value


def _first_tag(value, path):
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).startswith(JSONPICKLE_TAG):
                return f"{path}.{key}"
            found = _first_tag(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_tag(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def dotted_keys(config):
    """Every leaf key of a nested config, as Sacred's command line writes it: trainer.steps, lr, ..."""
    return dotted_values(config).keys()


def dotted_values(config, prefix=""):
    """{dotted key: value} of every leaf of a nested config."""
    values = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            values.update(dotted_values(value, f"{prefix}{key}."))
        else:
            values[prefix + key] = value
    return values
