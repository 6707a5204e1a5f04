"""A run as Sacred's FileStorageObserver keeps it in RUNS_DIR (run.json, config.json, info.json, cout.txt, ...)."""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# Content types and metadata of artifacts, which Sacred's file store does not keep (MongoDB does).
ARTIFACT_TYPES_FILE = "artifact_types.json"


@dataclass
class LocalRun:
    dir: Path
    entry: dict  # run.json: experiment, command, host, start_time, meta, status, artifacts, result, ...
    config: dict
    info: dict
    captured_out: str
    metrics: dict  # name -> {"steps": [...], "values": [...], "timestamps": [ISO strings]}
    artifact_types: dict = field(default_factory=dict)  # name -> {"content_type": ..., "metadata": ...}

    @classmethod
    def load(cls, run_dir):
        run_dir = Path(run_dir)
        return cls(
            dir=run_dir,
            entry=_read_json(run_dir / "run.json"),
            config=_read_json(run_dir / "config.json", {}),
            info=_read_json(run_dir / "info.json", {}),
            captured_out=(run_dir / "cout.txt").read_text(errors="replace") if (run_dir / "cout.txt").exists() else "",
            metrics=_read_json(run_dir / "metrics.json", {}),
            artifact_types=_read_json(run_dir / ARTIFACT_TYPES_FILE, {}),
        )

    @property
    def key(self):
        """Identifies the run across uploads: the same for the live run and for its copy on disk."""
        return "|".join(
            [self.entry["host"]["hostname"], self.entry["start_time"], self.entry["experiment"]["name"]]
        )

    @property
    def finished(self):
        return self.entry["status"] not in ("RUNNING", "QUEUED")

    def mark_dead(self, died):
        """Record that the run's process died (observers.liveness.death): INTERRUPTED at its last heartbeat, and
        info.died. Written to its folder, so later reads and syncs see it as ended."""
        self.entry["status"] = "INTERRUPTED"
        self.entry["stop_time"] = self.entry.get("heartbeat") or self.entry["start_time"]
        self.info["died"] = died
        _write_json(self.dir / "info.json", self.info)
        _write_json(self.dir / "run.json", self.entry)

    def source_file(self, stored_path):
        """Sources are stored relative to the store (the run's parent): in the run's own _sources/ (observers.durable),
        or in the store's _sources/ (Sacred's FileStorageObserver)."""
        return self.dir.parent / stored_path


def is_run_dir(path):
    return (Path(path) / "run.json").is_file()


def _read_json(path, default=None):
    if default is not None and not path.exists():
        return default
    with open(path) as file:
        return json.load(file)


def _write_json(path, value):
    """Replaced whole, so a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2))
    os.replace(partial, path)
