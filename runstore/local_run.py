"""A run as Sacred's FileStorageObserver keeps it in RUNS_DIR (run.json, config.json, info.json, cout.txt, ...)."""
import contextlib
import fcntl
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath

from runstore.atomic_file import write_atomically

# Content types and metadata of artifacts, which Sacred's file store does not keep (MongoDB does).
ARTIFACT_TYPES_FILE = "artifact_types.json"
SOURCES_DIR = "_sources"  # in a run folder (observers.durable) or a store (Sacred): copies of sources and resources
# Held by whoever writes or uploads the run (the run itself, `tracker sync`, `tracker board`), so only one does.
LOCK_FILE = ".upload.lock"
RUN_FILES = ("run.json", "config.json", "info.json", "cout.txt", "metrics.json", ARTIFACT_TYPES_FILE)  # what load reads
# Written by observers.durable into run.json after the files it counts: what cout.txt and metrics.json must hold, and
# the size and sha256 of each artifact and source file it wrote ("files": {path in the run folder: file_record}).
RECORDED_KEY = "recorded"


class UnreadableRun(ValueError):
    """A run folder whose run.json or config.json cannot be read; the message names the file and the problem."""


@dataclass
class LocalRun:
    dir: Path
    entry: dict  # run.json: experiment, command, host, start_time, meta, status, artifacts, result, ...
    config: dict
    info: dict
    captured_out: str
    metrics: dict  # name -> {"steps": [...], "values": [...], "timestamps": [ISO strings]}
    artifact_types: dict = field(default_factory=dict)  # name -> {"content_type": ..., "metadata": ...}
    # What the folder lacks of the run (a missing or truncated file), one line each; uploaded as local_copy.missing.
    missing: list = field(default_factory=list)
    # Files to upload instead of the folder's copy, which the local store failed to write: name -> bytes or a path.
    replaced_files: dict = field(default_factory=dict)
    # The running run's own snapshot (observers.durable), not a folder read back: the paths it names are those its
    # observer chose (a source in the checkout when the local store could not copy it), so they are read as they are.
    in_memory: bool = False
    # Files of the folder (paths in it) that are not what the run wrote: never uploaded, and named in `missing`.
    damaged: set = field(default_factory=set)

    @classmethod
    def load(cls, run_dir):
        """The run in `run_dir`. UnreadableRun when run.json or config.json cannot be read; other broken files are
        read as far as they can be and named in `missing`."""
        run_dir = Path(run_dir)
        for name in RUN_FILES:  # a copied folder may link one elsewhere: it would be read and uploaded as the run's
            path = run_dir / name
            if path.exists() and not path.resolve().is_relative_to(run_dir.resolve()):
                raise UnreadableRun(f"{path} links to a file outside the run folder; it was not read")
        missing = []
        run = cls(
            dir=run_dir,
            entry=_read_required(run_dir / "run.json"),
            config=_read_required(run_dir / "config.json"),
            info=_read_optional(run_dir / "info.json", missing),
            captured_out=_read_output(run_dir / "cout.txt", missing),
            metrics=_read_optional(run_dir / "metrics.json", missing),
            artifact_types=_read_optional(run_dir / ARTIFACT_TYPES_FILE, missing),
            missing=missing,
        )
        run._check_named_files()
        _check_recorded(run_dir / "run.json", run.entry.get(RECORDED_KEY, {}))
        run.missing += run._short_of_recorded()
        return run

    def _check_named_files(self):
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

    def artifact_file(self, name):
        """The run folder's copy of the artifact `name`; None when `name` is not a file's base name."""
        return self.dir / name if self.in_memory or _is_base_name(name) else None

    def source_file(self, stored_path):
        """The file of a source that run.json names as `stored_path` (runstore.local_run.source_file)."""
        return Path(self.dir).parent / stored_path if self.in_memory else source_file(self.dir, stored_path)

    def resource_file(self, stored_path):
        """The file of a resource that run.json names as `stored_path` (runstore.local_run.source_file)."""
        return Path(stored_path) if self.in_memory else source_file(self.dir, stored_path)

    def _short_of_recorded(self):
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

    def check_files(self):
        """Add to `damaged` and `missing` the artifact and source files of the folder whose size or sha256 differs from
        what the run recorded writing. Reads every file: `tracker sync` calls it before uploading, listings do not."""
        for path, record in self.entry.get(RECORDED_KEY, {}).get("files", {}).items():
            problem = _unlike_record(self.dir, path, record)
            if problem is not None:
                self.damaged.add(path)
                self.missing.append(f"{path}: {problem}")

    @property
    def sources(self):
        """[name, stored path] of each source run.json lists (none in a folder written by hand)."""
        return self.entry.get("experiment", {}).get("sources", [])

    def stored_artifacts(self):
        """The names of the artifacts whose latest file is there to upload (a name added twice keeps its latest)."""
        return [name for name in dict.fromkeys(self.entry["artifacts"]) if name not in self.damaged
                and (name in self.replaced_files or self.artifact_file(name).is_file())]

    def stored_sources(self):
        """(name, file) of each source whose stored copy is there to upload, as the run wrote it."""
        return [(name, path) for name, stored_path in self.sources
                if _source_record_path(stored_path) not in self.damaged
                and (path := self.source_file(stored_path)) is not None and path.is_file()]

    @property
    def key(self):
        """Identifies the run across uploads: the same for the live run and for its copy on disk."""
        return "|".join(
            [self.entry["host"]["hostname"], self.entry["start_time"], self.entry["experiment"]["name"]]
        )

    @property
    def finished(self):
        return self.entry["status"] not in ("RUNNING", "QUEUED")

    @property
    def status(self):
        """The status to store: a run that completed but whose record lacks something is FAILED (`missing` says
        what)."""
        return "FAILED" if self.missing and self.entry["status"] == "COMPLETED" else self.entry["status"]

    def open_file(self, name):
        """A file of the run for reading in binary: its replacement if it has one, else the folder's copy."""
        replacement = self.replaced_files.get(name)
        if isinstance(replacement, bytes):
            return io.BytesIO(replacement)
        return open(replacement or self.artifact_file(name), "rb")

    def mark_dead(self, died):
        """Record that the run's process died (runstore.liveness.death): INTERRUPTED at its last heartbeat, and
        info.died. Written to its folder, so later reads and syncs see it as ended."""
        self.entry["status"] = "INTERRUPTED"
        self.entry["stop_time"] = self.entry.get("heartbeat") or self.entry["start_time"]
        self.info["died"] = died
        _write_json(self.dir / "info.json", self.info)
        _write_json(self.dir / "run.json", self.entry)

    def mark_continued(self, by):
        """Record that the run `by` (its origin: runstore.run_store.StoredRun) continues this one: info.continued_by."""
        self.info["continued_by"] = by
        _write_json(self.dir / "info.json", self.info)


def source_file(run_dir, stored_path):
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


def _is_base_name(name):
    """Whether `name` is a file's name without a folder (and not `.` or `..`)."""
    return isinstance(name, str) and name not in ("", ".", "..") and PurePath(name).name == name


def file_record(path):
    """{"size", "sha256"} of the file at `path`, as run.json records each artifact and source (RECORDED_KEY)."""
    with open(path, "rb") as file:
        return {"size": os.fstat(file.fileno()).st_size, "sha256": hashlib.file_digest(file, "sha256").hexdigest()}


def _check_recorded(path, recorded):
    """UnreadableRun unless `recorded` (RECORDED_KEY of run.json at `path`) holds the types the observer writes."""
    def counts(value):
        return isinstance(value, dict) and all(type(count) is int for count in value.values())

    if not (isinstance(recorded, dict) and type(recorded.get("output_chars", 0)) is int
            and counts(recorded.get("metric_points", {})) and isinstance(recorded.get("files", {}), dict)):
        raise UnreadableRun(f"{path} is unreadable (its {RECORDED_KEY!r} holds other than the observer's counts: "
                            f"{str(recorded)[:200]})")


def _unlike_record(run_dir, path, record):
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


def _source_record_path(stored_path):
    """Where the run folder keeps a source stored at `stored_path`: its own _sources/ (observers.durable)."""
    return f"{SOURCES_DIR}/{PurePosixPath(stored_path).name}"


def is_run_dir(path):
    return (Path(path) / "run.json").is_file()


def run_folders(store_dir):
    """The run folders in the file store `store_dir` (none when it is not a folder): numbered ones first, by number."""
    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        return []
    return sorted(filter(is_run_dir, store_dir.iterdir()),
                  key=lambda path: (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name))


@contextlib.contextmanager
def upload_lock(run_dir):
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


def _read_required(path):
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise UnreadableRun(f"{path} is unreadable ({_problem(error)})") from None


def _read_optional(path, missing):
    """A JSON file's value, {} if the file does not exist; {} and a line in `missing` when it is unreadable."""
    try:
        with open(path) as file:
            return json.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        missing.append(f"{path.name}: unreadable ({_problem(error)})")
        return {}


def _read_output(path, missing):
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    except OSError as error:
        missing.append(f"{path.name}: unreadable ({_problem(error)})")
        return ""


def _problem(error):
    if isinstance(error, json.JSONDecodeError):
        return f"truncated or not JSON: {error}"
    return error.strerror or str(error) if isinstance(error, OSError) else str(error)


def _write_json(path, value):
    write_atomically(path, json.dumps(value, indent=2))
