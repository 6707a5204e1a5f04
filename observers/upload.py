"""Writes a file-store run into MongoDB as an ordinary Sacred run (laid out as runstore.layout describes); every step is
idempotent, so uploads resume safely."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import mimetypes
import os
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import bson
import bson.errors
import gridfs
import pymongo
from bson import ObjectId
from pymongo.errors import DocumentTooLarge, DuplicateKeyError, OperationFailure

from runstore.downsample import extreme_indices
from runstore.layout import (CHUNK_INDEX, CHUNK_POINTS, KEY_INDEX, LISTING_ORDERS, MONGO_OBSERVER_FORMAT,
                             OUTPUT_ARTIFACT, PLOT_POINTS, TAIL_CHARS, pack_points, series_arrays, summarize)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymongo.collection import Collection
    from pymongo.database import Database

    from runstore.local_run import LocalRun

BLOCK_BYTES = 2**20
DOCUMENT_LIMIT_BYTES = 16 * 2**20


class UploadError(Exception):
    """A run that MongoDB cannot take as it is; retrying does not help."""


@dataclass
class UploadState:
    """What is already in MongoDB for one run, so repeated uploads only send what changed."""

    run_id: int | None = None
    sources: list[list[Any]] | None = None  # [name, GridFS id] of each source
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"name", "file_id", "md5"}
    metric_ids: dict[str, ObjectId] = field(default_factory=dict)  # name -> _id of its `metrics` document
    metric_points: dict[str, int] = field(default_factory=dict)  # name -> points stored in `metric_points`
    metric_summaries: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> summarize(series)


def highest_id(collection: Collection[Any]) -> int:
    """The highest positive number `_id` in `collection` (`$gt` compares numbers only), 0 if none."""
    found = collection.find_one({"_id": {"$gt": 0}}, {"_id": 1}, sort=[("_id", pymongo.DESCENDING)])
    return found["_id"] if found is not None else 0


def ensure_unique_keys(db: Database[Any]) -> None:
    """The unique index KEY_INDEX on `runs`, created if missing: it stores each local run once, however many processes
    or machines upload it at the same time. Partial, so runs without a local copy (Sacred's own observer) are free."""
    try:
        db.runs.create_index("local_copy.key", name=KEY_INDEX, unique=True,
                             partialFilterExpression={"local_copy.key": {"$exists": True}})
        # Two uploaders of one run upsert the same chunks: MongoDB's upserts double a document without such an index.
        db.metric_points.create_index([("run_id", 1), ("name", 1), ("chunk", 1)], name=CHUNK_INDEX, unique=True)
    except OperationFailure as error:
        if error.code != 11000:  # MongoDB's DuplicateKey
            raise
        raise UploadError(
            f"database {db.name!r} holds doubles of a run (two run documents from one local run, or a metric's "
            f"points stored twice), so it cannot enforce that each run is stored once ({error}); delete the doubled "
            f"runs with `tracker delete`, keeping one of each"
        ) from None


def ensure_listing_indexes(db: Database[Any]) -> None:
    """Indexes on what listings sort by most (newest first, best result first: runstore.query.top_rows), created if
    missing, so that the store reads the first of 100,000 runs in that order instead of sorting them all."""
    for path in LISTING_ORDERS:
        db.runs.create_index(path, name=f"tracker_order_{path}")


def find_uploaded(db: Database[Any], key: str) -> dict[str, Any] | None:
    """The run document uploaded from the file-store run `key`, or None."""
    return db.runs.find_one({"local_copy.key": key}, {"status": 1, "local_copy": 1, "artifacts": 1})


class RunUploader:
    def __init__(self, db: Database[Any]) -> None:
        self.db = db
        self.fs = gridfs.GridFS(db)
        # path -> ((inode, mtime, size), md5): unchanged files are not hashed again
        self.digests: dict[str, tuple[tuple[int, int, int], str]] = {}

    def _md5(self, file: IO[bytes]) -> str:
        """md5 of an open file, which is left at its start; hashed again only when the file changed."""
        if isinstance(file, io.BytesIO):  # a run's file that only its observer's memory holds (LocalRun.replaced_files)
            return hashlib.md5(file.getbuffer()).hexdigest()
        stat = os.fstat(file.fileno())
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self.digests.get(file.name, (None,))[0] != signature:
            digest = hashlib.md5()
            for block in iter(lambda: file.read(BLOCK_BYTES), b""):
                digest.update(block)
            file.seek(0)
            self.digests[file.name] = (signature, digest.hexdigest())
        return self.digests[file.name][1]

    def upload(self, run: LocalRun, state: UploadState) -> int | None:
        """Bring MongoDB up to date with `run` (a LocalRun); return the run's MongoDB id."""
        if state.sources is None:
            base_dir = run.entry["experiment"]["base_dir"]
            state.sources = [[name, self._store_once(path, os.path.join(base_dir, name))]
                             for name, path in run.stored_sources()]
        # LocalRun.load refuses a run.json naming a resource that resource_file finds no file for (None)
        resources = [[path, self._store_once(run.resource_file(stored), path,  # type: ignore[arg-type]
                                             return_md5=True)]
                     for path, stored in run.entry["resources"]]
        if state.run_id is None:
            ensure_unique_keys(self.db)
            ensure_listing_indexes(self.db)
            self._find_or_insert_run(run, state, resources)
        for name in run.stored_artifacts():
            types = run.artifact_types.get(name, {})
            self._store_artifact(state, name, run, name, types.get("content_type"), types.get("metadata"))
        if run.finished and len(run.captured_out) > TAIL_CHARS:
            self._store_artifact(state, OUTPUT_ARTIFACT, run, "cout.txt", "text/plain", None)
        for name, series in run.metrics.items():
            self._store_metric(state, name, series)
        self._set_run_document(run, state, resources)
        return state.run_id

    # ---- the run document ---------------------------------------------------------------------
    def _find_or_insert_run(self, run: LocalRun, state: UploadState, resources: list[list[Any]]) -> None:
        """The run's document: found, or inserted whole but for its files and metrics (local_copy.complete false
        until they are stored), so no reader ever sees a run without its status and config."""
        existing = find_uploaded(self.db, run.key)
        if existing is not None:
            state.run_id = existing["_id"]
            state.artifacts = {a["name"]: a for a in existing.get("artifacts", []) if "md5" in a}
            return
        document = self._run_document(run, state, resources)
        document["local_copy"]["complete"] = False
        while True:  # the next free integer id, as Sacred's MongoObserver assigns them
            run_id = highest_id(self.db.runs) + 1
            try:
                with _refusals_as_upload_error(run_id, document):
                    self.db.runs.insert_one({"_id": run_id, **document})
                break
            except DuplicateKeyError:
                # Either another run took the id, or another upload of this run (a sync, the board, the run
                # itself) inserted its document first: then that document is this run's (KEY_INDEX).
                existing = find_uploaded(self.db, run.key)
                if existing is not None:
                    state.run_id = existing["_id"]
                    return
        state.run_id = run_id

    def _set_run_document(self, run: LocalRun, state: UploadState, resources: list[list[Any]]) -> None:
        document = self._run_document(run, state, resources)
        # Replaced whole, as the uploader owns the document; only Omniboard's own field (tags, notes) is carried over.
        document.update(self.db.runs.find_one({"_id": state.run_id}, {"_id": 0, "omniboard": 1}) or {})
        # The run's info['tags'] (e.g. its sweep's, from `tracker sweep`) are Omniboard tags too.
        tags = document.get("omniboard", {}).get("tags", [])
        added = [tag for tag in run.info.get("tags", []) if tag not in tags]
        if added:
            document["omniboard"] = {**document.get("omniboard", {}), "tags": tags + added}
        with _refusals_as_upload_error(state.run_id, document):
            self.db.runs.replace_one({"_id": state.run_id}, document)

    def _run_document(self, run: LocalRun, state: UploadState, resources: list[list[Any]]) -> dict[str, Any]:
        """The run document of `run` with what `state` holds of its files and metrics in MongoDB."""
        entry = run.entry
        captured = run.captured_out
        if len(captured) > TAIL_CHARS:
            captured = (f"[{len(captured) - TAIL_CHARS} earlier characters: the whole output is the artifact "
                        f"{OUTPUT_ARTIFACT} once the run has ended]\n" + captured[-TAIL_CHARS:])
        document = {
            "experiment": {**entry["experiment"], "sources": state.sources},
            "format": MONGO_OBSERVER_FORMAT,
            "command": entry["command"],
            "host": entry["host"],
            "start_time": _datetime(entry["start_time"]),
            "config": run.config,
            "meta": entry["meta"],
            "status": run.status,
            "resources": resources,
            "artifacts": list(state.artifacts.values()),
            "captured_out": captured,
            "info": {**run.info, "metrics": [{"name": n, "id": str(i)} for n, i in state.metric_ids.items()]},
            "metric_summaries": list(state.metric_summaries.values()),
            "heartbeat": _datetime(entry.get("heartbeat")),
            "result": entry.get("result"),
            "local_copy": {"key": run.key, "complete": run.finished, "missing": run.missing},
        }
        if run.status != entry["status"]:  # the run completed, but its record lacks what `missing` names
            document["fail_trace"] = [f"The run {entry['status']}, but its local copy in {run.dir} lacks: "
                                      + "; ".join(run.missing)]
        for key in ("stop_time", "fail_trace"):
            if key in entry:
                document[key] = _datetime(entry[key]) if key == "stop_time" else entry[key]
        return document

    # ---- files --------------------------------------------------------------------------------
    def _store_once(self, path: str | os.PathLike[str], filename: str, return_md5: bool = False) -> Any:
        """Store a source or resource file unless GridFS has it already; its GridFS id (or md5)."""
        with open(path, "rb") as file:
            md5 = self._md5(file)
            # Sacred looks files up by GridFS's md5 field, which PyMongo >= 4 no longer fills in; we fill it in.
            existing = self.db.fs.files.find_one({"filename": filename, "md5": md5}, {"_id": 1})
            file_id = existing["_id"] if existing is not None else self.fs.put(file, filename=filename, md5=md5)
        return md5 if return_md5 else file_id

    def _store_artifact(self, state: UploadState, name: str, run: LocalRun, filename: str, content_type: str | None,
                        metadata: Any) -> None:
        # One open file for hash and upload: the observer may replace the file with a newer version meanwhile.
        with run.open_file(filename) as file:
            md5 = self._md5(file)
            previous = state.artifacts.get(name)
            if previous is not None and previous["md5"] == md5:
                return
            file_id = self.fs.put(
                file, filename=f"artifact://runs/{state.run_id}/{name}", md5=md5, metadata=metadata,
                content_type=content_type or mimetypes.guess_type(name)[0],
            )
        state.artifacts[name] = {"name": name, "file_id": file_id, "md5": md5}
        if previous is not None:
            self.fs.delete(previous["file_id"])

    # ---- metrics ------------------------------------------------------------------------------
    def _store_metric(self, state: UploadState, name: str, series: dict[str, Any]) -> None:
        steps, values, stamps = series_arrays(series)
        total = len(steps)
        stored = state.metric_points.get(name, 0)
        if total == stored:
            return
        run_id = state.run_id
        for chunk in range(stored // CHUNK_POINTS, (total - 1) // CHUNK_POINTS + 1):
            points = slice(chunk * CHUNK_POINTS, min(total, (chunk + 1) * CHUNK_POINTS))
            packed = pack_points(steps[points], values[points], stamps[points])
            _upsert(self.db.metric_points, {"run_id": run_id, "name": name, "chunk": chunk},
                    {"$set": {"points": points.stop - points.start, **packed}})
        if name not in state.metric_ids:
            state.metric_ids[name] = self._metric_document_id(run_id, name)
        # Each column's lowest and highest point, as tracker ui draws them: Omniboard's plot keeps every spike.
        shown = extreme_indices(steps, values, (PLOT_POINTS - 2) // 2) if total > PLOT_POINTS else slice(None)
        self.db.metrics.update_one({"_id": state.metric_ids[name]}, {"$set": {
            "steps": steps[shown].tolist(),
            "values": values[shown].tolist(),
            "timestamps": stamps[shown].astype(datetime.datetime).tolist(),
            "points": total,
        }})
        state.metric_points[name] = total
        state.metric_summaries[name] = {"name": name, **summarize(series["steps"], series["values"])}

    def _metric_document_id(self, run_id: int | None, name: str) -> ObjectId:
        existing = self.db.metrics.find_one({"run_id": run_id, "name": name}, {"_id": 1})
        if existing is not None:
            return existing["_id"]
        # The same id in every uploader of the run, so two of them at once make one document, not two.
        metric_id = ObjectId(hashlib.md5(f"{run_id}/{name}".encode()).digest()[:12])
        try:
            self.db.metrics.insert_one(
                {"_id": metric_id, "run_id": run_id, "name": name, "steps": [], "values": [], "timestamps": []}
            )
        except DuplicateKeyError:
            pass
        return metric_id


def _upsert(collection: Collection[Any], query: dict[str, Any], update: dict[str, Any]) -> None:
    """update_one with upsert; an upsert that lost the race to insert (CHUNK_INDEX refused it) updates instead."""
    try:
        collection.update_one(query, update, upsert=True)
    except DuplicateKeyError:
        collection.update_one(query, update)


@contextlib.contextmanager
def _refusals_as_upload_error(run_id: int | None, document: dict[str, Any]) -> Iterator[None]:
    """MongoDB's refusal of the run document `document` (too large, a key it does not allow) as an UploadError."""
    try:
        yield
    except DocumentTooLarge:
        raise UploadError(_too_large_message(run_id, document)) from None
    except bson.errors.InvalidDocument as error:
        raise UploadError(f"run {run_id}'s document cannot be stored ({error}); repair what its record holds") from None


def _datetime(value: str | datetime.datetime | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def _too_large_message(run_id: int | None, document: dict[str, Any]) -> str:
    sizes = {key: len(bson.encode({key: value})) for key, value in document.items()}
    biggest = max(sizes, key=sizes.__getitem__)
    return (
        f"run {run_id}'s document is {sum(sizes.values()) / 2**20:.1f} MB, over MongoDB's "
        f"{DOCUMENT_LIMIT_BYTES // 2**20} MB limit ('{biggest}' alone is {sizes[biggest] / 2**20:.1f} MB); "
        f"keep _run.info, the config and the result small and store large data with _run.add_artifact"
    )
