"""Removes runs from MongoDB with everything they stored, and finds what earlier deletes left behind.

A run stores its document in `runs`, one document per metric in `metrics`, its points in `metric_points`
(this project's), and its artifacts and sources in GridFS (`fs.files`, `fs.chunks`); sources are shared by
every run of the same code. Omniboard's delete removes the document, metrics and artifacts but knows nothing
of `metric_points`; `find_orphans` finds such leftovers wherever they came from.
"""
from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bson
import gridfs

if TYPE_CHECKING:
    from pymongo.database import Database

# What a user reads for the documents of each collection: (one, several).
NOUNS = {"runs": ("run", "runs"), "metrics": ("metric", "metrics"),
         "metric_points": ("chunk of metric points", "chunks of metric points"),
         "GridFS files": ("GridFS file", "GridFS files")}


@dataclass
class Freed:
    """What a delete or a collection of orphans removes: documents per collection and their bytes."""

    documents: dict[str, int] = field(default_factory=dict)  # collection name -> number of documents
    bytes: int = 0
    file_ids: list[Any] = field(default_factory=list)  # GridFS files

    def add(self, collection: str, docs: int, size: int) -> None:
        self.documents[collection] = self.documents.get(collection, 0) + docs
        self.bytes += size

    @property
    def total(self) -> int:
        return sum(self.documents.values())

    def summary(self) -> str:
        counts = ", ".join(f"{count} {NOUNS[name][count != 1]}" for name, count in self.documents.items() if count)
        counts = counts or "nothing"
        return f"{counts} ({_megabytes(self.bytes)})"


def delete_run(db: Database[Any], run: dict[str, Any]) -> Freed:
    """Remove `run` (its document) and what it stored; sources only when no other run uses them. Returns Freed."""
    run_id = run["_id"]
    shared = _referenced_file_ids(db, exclude_run=run_id)
    own_files = [entry["file_id"] for entry in run.get("artifacts", [])]
    own_files += [source[1] for source in run.get("experiment", {}).get("sources", []) if source[1] not in shared]
    freed = Freed()
    for collection in ("metrics", "metric_points"):
        _remove(db, collection, {"run_id": run_id}, freed)
    _remove_files(db, own_files, freed)
    _remove(db, "runs", {"_id": run_id}, freed)
    return freed


def find_orphans(db: Database[Any], min_age: datetime.timedelta = datetime.timedelta(hours=1)) -> Freed:
    """Freed (not yet removed) of metrics and metric_points of no run, and GridFS files no run references.

    GridFS files younger than `min_age` are kept: a starting run stores its sources before its document names them.
    """
    run_ids = {doc["_id"] for doc in db.runs.find({}, {"_id": 1})}
    freed = Freed()
    for collection in ("metrics", "metric_points"):
        orphans = [doc for doc in db[collection].find({}, {"run_id": 1}) if doc.get("run_id") not in run_ids]
        if orphans:
            ids = [doc["_id"] for doc in orphans]
            freed.add(collection, len(ids), sum(_size(doc) for doc in db[collection].find({"_id": {"$in": ids}})))
    referenced = _referenced_file_ids(db)
    newest = datetime.datetime.now(datetime.timezone.utc) - min_age
    for file in db.fs.files.find({}, {"length": 1, "uploadDate": 1}):
        uploaded = file.get("uploadDate")
        if isinstance(uploaded, datetime.datetime) and uploaded.tzinfo is None:
            uploaded = uploaded.replace(tzinfo=datetime.timezone.utc)
        if file["_id"] not in referenced and (uploaded is None or uploaded <= newest):
            freed.file_ids.append(file["_id"])
            freed.add("GridFS files", 1, file.get("length", 0))
    return freed


def remove_orphans(db: Database[Any], orphans: Freed) -> None:
    """Remove what `find_orphans` found (metrics and metric_points whose run is still missing)."""
    run_ids = {doc["_id"] for doc in db.runs.find({}, {"_id": 1})}
    for collection in ("metrics", "metric_points"):
        if orphans.documents.get(collection):
            db[collection].delete_many({"run_id": {"$nin": list(run_ids)}})
    fs = gridfs.GridFS(db)
    for file_id in orphans.file_ids:
        fs.delete(file_id)


def _referenced_file_ids(db: Database[Any], exclude_run: object = None) -> set[Any]:
    """GridFS ids named by any run (but `exclude_run`) as an artifact or a source."""
    query = {"_id": {"$ne": exclude_run}} if exclude_run is not None else {}
    ids: set[Any] = set()
    for run in db.runs.find(query, {"artifacts": 1, "experiment.sources": 1}):
        ids.update(entry["file_id"] for entry in run.get("artifacts") or [])
        ids.update(source[1] for source in (run.get("experiment") or {}).get("sources") or [])
    return ids


def _remove(db: Database[Any], collection: str, query: dict[str, Any], freed: Freed) -> None:
    docs = list(db[collection].find(query))
    if docs:
        db[collection].delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})
        freed.add(collection, len(docs), sum(_size(doc) for doc in docs))


def _remove_files(db: Database[Any], file_ids: Iterable[Any], freed: Freed) -> None:
    fs = gridfs.GridFS(db)
    for file_id in dict.fromkeys(file_ids):  # once each, in order
        file = db.fs.files.find_one({"_id": file_id}, {"length": 1})
        if file is not None:
            fs.delete(file_id)
            freed.add("GridFS files", 1, file.get("length", 0))


def _size(doc: dict[str, Any]) -> int:
    return len(bson.encode(doc))


def _megabytes(size: float) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
