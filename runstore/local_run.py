"""A run as Sacred's FileStorageObserver keeps it in RUNS_DIR (run.json, config.json, info.json, cout.txt, ...)."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import IO, Any

import orjson

from runstore.atomic_file import write_atomically

# Content types and metadata of artifacts, which Sacred's file store does not keep (MongoDB does).
ARTIFACT_TYPES_FILE = "artifact_types.json"
SOURCES_DIR = "_sources"  # in a run folder (observers.durable) or a store (Sacred): copies of sources and resources
# Held by whoever writes or uploads the run (the run itself, `tracker sync`, `tracker board`), so only one does.
LOCK_FILE = ".upload.lock"
RUN_FILES = ("run.json", "config.json", "info.json", "cout.txt", "metrics.json", ARTIFACT_TYPES_FILE)  # what load reads
LISTED_FILES = ("run.json", "config.json", "info.json")  # what read_listed reads
# Written by observers.durable into run.json after the files it counts: what cout.txt and metrics.json must hold, the
# size and sha256 of each artifact and source file it wrote ("files": {path in the run folder: file_record}), and the
# summaries of the points metrics.json holds ("metric_summaries": {name: runstore.layout.summarize}), for listings.
RECORDED_KEY = "recorded"
READ_CHUNK = 1 << 16  # bytes per read of a JSON file: run.json whole, below the size malloc maps apart


class UnreadableRun(ValueError):
    """A run folder whose run.json or config.json cannot be read; the message names the file and the problem."""


@dataclass
class LocalRun:
    dir: Path
    entry: dict[str, Any]  # run.json: experiment, command, host, start_time, meta, status, artifacts, result, ...
    config: dict[str, Any]
    info: dict[str, Any]
    captured_out: str
    metrics: dict[str, Any]  # name -> {"steps": [...], "values": [...], "timestamps": [ISO strings]}
    artifact_types: dict[str, Any] = field(default_factory=dict)  # name -> {"content_type": ..., "metadata": ...}
    # What the folder lacks of the run (a missing or truncated file), one line each; uploaded as local_copy.missing.
    missing: list[str] = field(default_factory=list)
    # Files to upload instead of the folder's copy, which the local store failed to write: name -> bytes or a path.
    replaced_files: dict[str, bytes | str | os.PathLike[str]] = field(default_factory=dict)
    # The running run's own snapshot (observers.durable), not a folder read back: the paths it names are those its
    # observer chose (a source in the checkout when the local store could not copy it), so they are read as they are.
    in_memory: bool = False
    # Files of the folder (paths in it) that are not what the run wrote: never uploaded, and named in `missing`.
    damaged: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> LocalRun:
        """The run in `run_dir`. UnreadableRun when run.json or config.json cannot be read; other broken files are
        read as far as they can be and named in `missing`."""
        folder = Path(run_dir)
        _refuse_links_out(folder, RUN_FILES)
        missing: list[str] = []
        run = cls(
            dir=folder,
            entry=_read_required(folder / "run.json"),
            config=_read_required(folder / "config.json"),
            info=_read_optional(folder / "info.json", missing),
            captured_out=_read_output(folder / "cout.txt", missing),
            metrics=_read_optional(folder / "metrics.json", missing),
            artifact_types=_read_optional(folder / ARTIFACT_TYPES_FILE, missing),
            missing=missing,
        )
        run._check_named_files()
        _check_recorded(folder / "run.json", run.entry.get(RECORDED_KEY, {}))
        run.missing += run._short_of_recorded()
        return run

    def _check_named_files(self) -> None:
        """UnreadableRun when run.json names a file outside the run folder: an artifact by anything but its base
        name, a source or resource not in a `_sources/` folder, or a file that links out of the run folder.

        run.json may have been edited or copied from elsewhere: what it names must never lead an upload to read, and
        store, another file of this machine."""
        named = [("an artifact", name, self.artifact_file(name)) for name in self.entry.get("artifacts", [])]
        sources, resources = self.entry.get("experiment", {}).get("sources", []), self.entry.get("resources", [])
        named += [(kind, pair[1], source_file(self.dir, pair[1]))
                  for kind, pairs in (("a source", sources), ("a resource", resources)) for pair in pairs]
        inside = (self.dir.resolve(), self.dir.parent.resolve() / SOURCES_DIR)
        for kind, stored, path in named:
            if path is None or path.exists() and not any(path.resolve().is_relative_to(root) for root in inside):
                raise UnreadableRun(f"{self.dir / 'run.json'} names {stored!r} as {kind}, outside the run folder; "
                                    f"it was not read")

    def artifact_file(self, name: str) -> Path | None:
        """The run folder's copy of the artifact `name`; None when `name` is not a file's base name."""
        return self.dir / name if self.in_memory or _is_base_name(name) else None

    def source_file(self, stored_path: str) -> Path | None:
        """The file of a source that run.json names as `stored_path` (runstore.local_run.source_file)."""
        return Path(self.dir).parent / stored_path if self.in_memory else source_file(self.dir, stored_path)

    def resource_file(self, stored_path: str) -> Path | None:
        """The file of a resource that run.json names as `stored_path` (runstore.local_run.source_file)."""
        return Path(stored_path) if self.in_memory else source_file(self.dir, stored_path)

    def _short_of_recorded(self) -> list[str]:
        """What the folder holds less of than the run recorded in run.json (the run's own count of its output and
        metric points), and the listed artifacts and sources whose file is gone."""
        recorded = self.entry.get(RECORDED_KEY, {})
        short = []
        if len(self.captured_out) < recorded.get("output_chars", 0):
            short.append(f"cout.txt: {len(self.captured_out)} of {recorded['output_chars']} characters of output")
        for name, points in recorded.get("metric_points", {}).items():
            held = len(self.metrics.get(name, {}).get("steps", []))
            if held < points:
                short.append(f"metrics.json: {held} of {points} points of metric {name}")
        stored = self.stored_artifacts()
        short += [f"{name}: the artifact's file is missing" for name in dict.fromkeys(self.entry["artifacts"])
                  if name not in stored]
        present = {name for name, _ in self.stored_sources()}
        short += [f"{name}: the source's file {stored_path} is missing"
                  for name, stored_path in self.sources if name not in present]
        return short

    def check_files(self) -> None:
        """Add to `damaged` and `missing` the artifact and source files of the folder whose size or sha256 differs from
        what the run recorded writing. Reads every file: `tracker sync` calls it before uploading, listings do not."""
        for path, record in self.entry.get(RECORDED_KEY, {}).get("files", {}).items():
            problem = _unlike_record(self.dir, path, record)
            if problem is not None:
                self.damaged.add(path)
                self.missing.append(f"{path}: {problem}")

    @property
    def sources(self) -> list[list[str]]:
        """[name, stored path] of each source run.json lists (none in a folder written by hand)."""
        return self.entry.get("experiment", {}).get("sources", [])

    def stored_artifacts(self) -> list[str]:
        """The names of the artifacts whose latest file is there to upload (a name added twice keeps its latest)."""
        return [name for name in dict.fromkeys(self.entry["artifacts"]) if name not in self.damaged
                and (name in self.replaced_files or (path := self.artifact_file(name)) is not None and path.is_file())]

    def stored_sources(self) -> list[tuple[str, Path]]:
        """(name, file) of each source whose stored copy is there to upload, as the run wrote it."""
        return [(name, path) for name, stored_path in self.sources
                if _source_record_path(stored_path) not in self.damaged
                and (path := self.source_file(stored_path)) is not None and path.is_file()]

    @property
    def key(self) -> str:
        """Identifies the run across uploads: the same for the live run and for its copy on disk."""
        return run_key(self.entry)

    @property
    def finished(self) -> bool:
        return self.entry["status"] not in ("RUNNING", "QUEUED")

    @property
    def status(self) -> str:
        """The status to store: a run that completed but whose record lacks something is FAILED (`missing` says
        what)."""
        return "FAILED" if self.missing and self.entry["status"] == "COMPLETED" else self.entry["status"]

    def open_file(self, name: str) -> IO[bytes]:
        """A file of the run for reading in binary: its replacement if it has one, else the folder's copy."""
        replacement = self.replaced_files.get(name)
        if isinstance(replacement, bytes):
            return io.BytesIO(replacement)
        path = replacement or self.artifact_file(name)
        if path is None:
            raise FileNotFoundError(f"{name!r} is no file of the run folder {self.dir}")
        return open(path, "rb")

    def mark_dead(self, died: dict[str, str]) -> None:
        """Record that the run's process died (runstore.liveness.death): INTERRUPTED at its last heartbeat, and
        info.died. Written to its folder, so later reads and syncs see it as ended."""
        self.entry["status"] = "INTERRUPTED"
        self.entry["stop_time"] = self.entry.get("heartbeat") or self.entry["start_time"]
        self.info["died"] = died
        _write_json(self.dir / "info.json", self.info)
        _write_json(self.dir / "run.json", self.entry)

    def mark_continued(self, by: object) -> None:
        """Record that the run `by` (its origin: runstore.run_store.StoredRun) continues this one: info.continued_by."""
        self.info["continued_by"] = by
        _write_json(self.dir / "info.json", self.info)


def run_key(entry: dict[str, Any]) -> str:
    """LocalRun.key of the run whose run.json holds `entry`; KeyError when it lacks a part."""
    return "|".join([entry["host"]["hostname"], entry["start_time"], entry["experiment"]["name"]])


def read_listed(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any],
                                                         dict[str, Any] | None]:
    """(run.json, config.json, info.json, the metric summaries run.json records or None): what a listing shows of a
    run folder, read without its output, its points or the checks of its files that an upload needs, so that 10,000
    folders list in a second or two. UnreadableRun as LocalRun.load gives it."""
    _refuse_links_out(run_dir, LISTED_FILES)
    entry = _read_required(os.path.join(run_dir, "run.json"))
    config = _read_required(os.path.join(run_dir, "config.json"))
    info = _read_optional(os.path.join(run_dir, "info.json"), [])
    recorded = entry.get(RECORDED_KEY)
    summaries = recorded.get("metric_summaries") if isinstance(recorded, dict) else None
    return entry, config, info, summaries if isinstance(summaries, dict) else None


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """metrics.json of a run folder ({} when it is missing or unreadable): for a listing of a run whose run.json
    records no summaries (one written by Sacred's own FileStorageObserver)."""
    _refuse_links_out(Path(run_dir), ["metrics.json"])
    return _read_optional(Path(run_dir) / "metrics.json", [])


def _refuse_links_out(folder: str | os.PathLike[str], names: Iterable[str]) -> None:
    """UnreadableRun when a file `names` names in `folder` links outside it: a copied folder may link one elsewhere,
    which would be read and uploaded as the run's."""
    for name in names:
        path = os.path.join(folder, name)
        if os.path.islink(path) and os.path.exists(path) and not Path(path).resolve().is_relative_to(
                Path(folder).resolve()):
            raise UnreadableRun(f"{path} links to a file outside the run folder; it was not read")


def source_file(run_dir: str | os.PathLike[str], stored_path: object) -> Path | None:
    """The copy of a source or resource file that run.json names as `stored_path`, by its base name in the run's own
    _sources/ (observers.durable), else in the store's _sources/ (Sacred's FileStorageObserver); None when
    `stored_path` is not a file of a `_sources/` folder.

    Only the base name is used, so a moved or copied run folder still finds its copies, and no path in run.json can
    lead out of those folders.
    """
    stored = PurePath(stored_path) if isinstance(stored_path, str) else None
    if stored is None or stored.parent.name != SOURCES_DIR or not _is_base_name(stored.name):
        return None
    own, shared = (Path(folder) / SOURCES_DIR / stored.name for folder in (run_dir, Path(run_dir).parent))
    return shared if not own.exists() and shared.exists() else own


def _is_base_name(name: object) -> bool:
    """Whether `name` is a file's name without a folder (and not `.` or `..`)."""
    return isinstance(name, str) and name not in ("", ".", "..") and PurePath(name).name == name


def file_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """{"size", "sha256"} of the file at `path`, as run.json records each artifact and source (RECORDED_KEY)."""
    with open(path, "rb") as file:
        return {"size": os.fstat(file.fileno()).st_size, "sha256": hashlib.file_digest(file, "sha256").hexdigest()}


def _check_recorded(path: Path, recorded: object) -> None:
    """UnreadableRun unless `recorded` (RECORDED_KEY of run.json at `path`) holds the types the observer writes."""
    def counts(value: object) -> bool:
        return isinstance(value, dict) and all(type(count) is int for count in value.values())

    if not (isinstance(recorded, dict) and type(recorded.get("output_chars", 0)) is int
            and counts(recorded.get("metric_points", {})) and isinstance(recorded.get("files", {}), dict)):
        raise UnreadableRun(f"{path} is unreadable (its {RECORDED_KEY!r} holds other than the observer's counts: "
                            f"{str(recorded)[:200]})")


def _unlike_record(run_dir: str | os.PathLike[str], path: str, record: object) -> str | None:
    """None when the run folder's file `path` is the one `record` describes, or is gone; else what is wrong with it."""
    parts = PurePosixPath(path).parts
    if len(parts) not in (1, 2) or len(parts) == 2 and parts[0] != SOURCES_DIR or ".." in parts:
        return "its record names no file in the run folder"
    if not (isinstance(record, dict) and type(record.get("size")) is int and isinstance(record.get("sha256"), str)):
        return f"its record {record!r} is not a size and sha256"
    try:
        held = file_record(Path(run_dir, path))
    except FileNotFoundError:  # named as a missing artifact or source
        return None
    except OSError as error:
        return f"unreadable ({_problem(error)})"
    if held["size"] != record["size"]:
        return f"{held['size']} of the {record['size']} bytes the run wrote"
    if held["sha256"] != record["sha256"]:
        return "not the bytes the run wrote (its sha256 differs)"
    return None


def _source_record_path(stored_path: str) -> str:
    """Where the run folder keeps a source stored at `stored_path`: its own _sources/ (observers.durable)."""
    return f"{SOURCES_DIR}/{PurePosixPath(stored_path).name}"


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(os.path.join(path, "run.json"))


def run_folders(store_dir: str | os.PathLike[str]) -> list[Path]:
    """The run folders in the file store `store_dir` (none when it is not a folder): numbered ones first, by number."""
    return [Path(folder) for folder in subfolders(store_dir) if is_run_dir(folder)]


def subfolders(store_dir: str | os.PathLike[str]) -> list[str]:
    """The paths, as text, of the folders in `store_dir` (none when it is not a folder), numbered ones first, by
    number: run_folders without checking that each holds a run.json, for a caller that reads it anyway."""
    try:
        entries = list(os.scandir(store_dir))  # os.scandir and text paths: 10,000 folders in a few hundredths
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = sorted((entry.name for entry in entries if entry.is_dir()),
                   key=lambda name: (0, int(name), "") if name.isdigit() else (1, 0, name))
    return [os.path.join(store_dir, name) for name in names]


@contextlib.contextmanager
def upload_lock(run_dir: str | os.PathLike[str]) -> Iterator[bool]:
    """Yields True while this process alone holds the run folder's upload lock, False when another process holds it.

    A flock: the kernel releases it when its holder dies, so a killed run or sync never leaves the folder locked. On
    file systems without flock between machines, the database's unique key (observers.upload) still stores a run once.
    """
    try:
        file = open(Path(run_dir) / LOCK_FILE, "a")
    except OSError:  # a folder this process cannot write: it cannot be locked, nor written by this process
        yield True
        return
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _read_required(path: str | Path) -> Any:
    try:
        return _read_json(path)
    except (OSError, ValueError) as error:
        raise UnreadableRun(f"{path} is unreadable ({_problem(error)})") from None


def _read_optional(path: str | Path, missing: list[str]) -> Any:
    """A JSON file's value, {} if the file does not exist; {} and a line in `missing` when it is unreadable."""
    try:
        return _read_json(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        missing.append(f"{os.path.basename(path)}: unreadable ({_problem(error)})")
        return {}


def _read_json(path: str | Path) -> Any:
    """A JSON file's value, by orjson (2x faster than json on run.json, which listings read for every run folder);
    the NaN and Infinity that Sacred writes, which orjson refuses, by json."""
    data = _read_bytes(path)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _read_bytes(path: str | Path) -> bytes:
    """A whole file, by os.open and os.read: Python's file object adds an fstat, a seek and more per file, and a
    listing of 10,000 run folders reads 30,000 files (0.3 s of its 2 s)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(descriptor, READ_CHUNK)]
        while len(chunks[-1]) == READ_CHUNK:  # a regular file's short read is its end
            chunks.append(os.read(descriptor, READ_CHUNK))
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _read_output(path: Path, missing: list[str]) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    except OSError as error:
        missing.append(f"{os.path.basename(path)}: unreadable ({_problem(error)})")
        return ""


def _problem(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"truncated or not JSON: {error}"
    return error.strerror or str(error) if isinstance(error, OSError) else str(error)


def _write_json(path: Path, value: Any) -> None:
    write_atomically(path, json.dumps(value, indent=2))
