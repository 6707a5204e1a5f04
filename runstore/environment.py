"""What a run's recorded environment (info.environment, observers.environment) says to a reader: how runs' environments
differ (`tracker compare`), and which recorded package versions this machine no longer has (`tracker rerun`)."""
from __future__ import annotations

from importlib import metadata
from typing import Any


def differences(summaries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """{key: [value of each]} of the info.environment `summaries` ({} for a run without one) where they differ:
    python, torch, cuda, cudnn, gpus and packages.NAME."""
    flat = [{**{key: value for key, value in summary.items() if key != "packages"},
             **{f"packages.{name}": version for name, version in summary.get("packages", {}).items()}}
            for summary in summaries]
    keys = sorted({key for values in flat for key in values})
    table = {key: [values.get(key) for values in flat] for key in keys}
    return {key: values for key, values in table.items() if any(value != values[0] for value in values)}


def changed_packages(recorded: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """{name: (recorded version, installed version or None)} of `recorded` ({name: version}) that differ now."""
    changed = {}
    for name, version in recorded.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            changed[name] = (version, installed)
    return changed
