"""The software and hardware a run ran on: every installed distribution and its version, Python, torch, CUDA, cuDNN
and the GPUs.

Sacred's `experiment.dependencies` lists only the packages imported by the main file's globals (numpy, sacred, ...),
not torch. A run keeps the whole environment as the artifact environment.json, and in `info.environment` a summary
that `tracker compare` and `tracker rerun` read (runstore.environment): Python, torch, CUDA, cuDNN, the GPUs and the
versions of the distributions the run had imported when it started. Reading the metadata of every installed
distribution takes about 0.5 s, so it happens in a thread while the run trains (info.environment is set from there,
as the heartbeat sends info); the artifact is added when the run's main function ends, from the run's own thread, as
every other artifact.
"""
from __future__ import annotations

import json
import platform
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compat.sacred import at_main_end

if TYPE_CHECKING:
    from sacred.run import Run

ARTIFACT = "environment.json"


def record_environment(run: Run, folder: Path) -> None:
    """Add ARTIFACT (written in `folder`) and info.environment to `run` (a sacred Run, in a pre-run hook)."""
    collected: dict[str, Any] = {}

    def collect_in_background() -> None:
        collected.update(collect())
        run.info["environment"] = summary(collected)

    def add_artifact() -> None:
        collector.join()
        if collected:  # else collecting failed, and the thread printed why
            path = Path(folder) / ARTIFACT
            path.write_text(json.dumps(collected, indent=1, sort_keys=True))
            run.add_artifact(str(path), name=ARTIFACT, content_type="application/json")

    collector = threading.Thread(target=collect_in_background, name="environment", daemon=True)
    collector.start()
    at_main_end(run, add_artifact)


def collect() -> dict[str, Any]:
    """Everything: {python, platform, torch, cuda, cudnn, gpus, packages: {name: version}, imported: [names]}."""
    imported = {name.partition(".")[0] for name in list(sys.modules)}
    packages, used = {}, []
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name in packages:  # an earlier entry of sys.path is the one Python imports
            continue
        packages[name] = dist.version
        top_level = (dist.read_text("top_level.txt") or "").split() or [name.replace("-", "_").lower()]
        if imported.intersection(top_level):
            used.append(name)
    torch = sys.modules.get("torch")  # imported by the run already, or not needed by it
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": str(torch.__version__) if torch else packages.get("torch"),  # a str subclass: info keeps only str
        "cuda": torch.version.cuda if torch else None,
        "cudnn": next((version for name, version in packages.items() if name.startswith("nvidia-cudnn")), None),
        "gpus": gpu_names(),
        "packages": packages,
        "imported": sorted(used),
    }


def summary(environment: dict[str, Any]) -> dict[str, Any]:
    """What info.environment keeps: all but the packages the run had not imported, and the platform."""
    return {**{key: environment[key] for key in ("python", "torch", "cuda", "cudnn", "gpus")},
            "packages": {name: environment["packages"][name] for name in environment["imported"]}}


def gpu_names() -> list[str]:
    """The names NVIDIA's management library reports (no CUDA initialisation, which takes seconds); [] without."""
    from observers.system_metrics import gpu_handles, pynvml

    names = []
    for handle in gpu_handles():
        try:
            name = pynvml.nvmlDeviceGetName(handle)
        except pynvml.NVMLError:
            continue
        names.append(name.decode() if isinstance(name, bytes) else name)
    return names
