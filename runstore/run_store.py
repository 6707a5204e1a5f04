"""Where recorded runs are kept, and reading them back: one interface (RunStore) with two stores, MongoDB (MongoStore)
and a file store's run folders (FolderStore: Sacred's FileStorageObserver layout, runstore.local_run).

Readers open a run (`open_run`) or list a store's runs, and ask the run's store for its artifacts, sources, metrics
and listing; they never ask which kind of store they have.
"""
from __future__ import annotations

import datetime
import functools
import json
import os
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bson

from runstore.atomic_file import write_atomically
from runstore.cleanup import delete_run
from runstore.collector import collector_paused
from runstore.database import connect, require_database
from runstore.errors import UserError
from runstore.layout import read_file, read_metric, read_plotted, summarize
from runstore.local_run import (LISTED_FILES, LocalRun, UnreadableRun, is_run_dir, read_listed, read_metrics,
                                run_folders, run_key, source_file, subfolders)
from runstore.plain_json import plain_values
from runstore.run_ref import RunRef
from runstore.settings import load_settings
from runstore.shell import shell_command
from runstore.stored_fields import times_as_dates

if TYPE_CHECKING:
    import pymongo

    from runstore.cleanup import Freed
    from runstore.settings import Settings

# What a listing reads of each run document (no captured output, sources or artifacts). An aggregation's $project, as
# nx-27017 computes it in SQLite; its find() projection copies each whole document first, three times slower.
LISTED_FIELDS = {
    "experiment.name": 1, "experiment.repositories": 1, "status": 1, "start_time": 1, "stop_time": 1, "heartbeat": 1,
    "result": 1, "host.hostname": 1, "config": 1, "omniboard.tags": 1, "metric_summaries": 1, "local_copy.key": 1,
    "info.higher_is_better": 1, "info.result_metric": 1, "info.pruned_at_step": 1, "info.data": 1,
    "info.pid": 1, "info.continued_by": 1, "info.per_class": 1,
}
LISTED_INFO = [path.removeprefix("info.") for path in LISTED_FIELDS if path.startswith("info.")]
LISTING_BATCH = 100_000  # runs per reply when listing: as many as the 16 MB that the server allows a reply
# A metric's points: (steps, values, timestamps), or (steps, values) as Omniboard plots them; numpy arrays from
# MongoDB, lists from a run folder.
Points = tuple[Any, ...]


@dataclass(frozen=True)
class StoredRun:
    """One recorded run, as its observer stored it."""

    label: str  # names the run in messages: "run 3" or "run runs/3"
    origin: int | str  # names it in a later run's info: the database id, or the folder's absolute path
    # Sacred's run document (run.json in a file store): experiment, status, meta, artifacts, ...; its times
    # (runstore.stored_fields.TIME_FIELDS) as naive UTC datetimes from either store.
    doc: dict[str, Any]
    config: dict[str, Any]  # the config, seed included: plain JSON values only (runstore.plain_json)
    info: dict[str, Any]  # the run's info: plain JSON values only
    store: RunStore  # where it is kept: it reads the run's artifacts, sources and metrics
    key: int | Path  # where its store finds it: the database id, or the run folder
    artifact_names: tuple[str, ...] = ()  # the names of its artifacts, in the order they were first added

    def artifact(self, name: str) -> bytes | None:
        """The content of the latest artifact called `name`, or None."""
        return self.store.artifact(self, name)

    def sources(self) -> dict[str, bytes]:
        """Its source files: {path relative to the experiment's base_dir: content}."""
        return self.store.sources(self)

    def metric(self, name: str) -> Points:
        """Every point of metric `name`: (steps, values, timestamps), empty when the run has no such metric."""
        return self.store.metric(self, name)

    def plotted_metric(self, name: str) -> Points:
        """The points of metric `name` that Omniboard plots: (steps, values), empty when the run has no such metric."""
        return self.store.plotted_metric(self, name)

    def metric_names(self) -> list[str]:
        return self.store.metric_names(self)

    def listing(self) -> Listing:
        return self.store.listing(self)


@dataclass  # not frozen: a listing makes one per run, and a frozen one takes ten times as long to make
class Listing:
    """What a listing of runs (runstore.query) shows of one run; `problem` says why a run folder could not be read."""

    id: int | str  # the database id, or the run folder
    uploaded_from: str | None = None  # the key (LocalRun.key) of the file-store run it is, or was uploaded from
    # The run document's LISTED_FIELDS; a run folder's run.json, its info's tags as Omniboard's; times as in StoredRun.
    doc: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    info: dict[str, Any] | None = None
    summaries: dict[str, dict[str, Any]] | None = None  # metric name -> runstore.layout.summarize of its points
    local: bool = False  # waiting in a file store for `tracker sync`
    problem: str | None = None
    # Its row (runstore.query), kept while a FolderStore reuses the listing of a folder that did not change.
    row: dict[str, Any] | None = field(default=None, compare=False, repr=False)


class RunStore(ABC):
    """Where recorded runs are kept. Each store opens a run by its own key (`open`: a database id, a run folder);
    `open_run` chooses the store from what the user typed."""

    @abstractmethod
    def listings(self, skip_keys: Collection[str] = frozenset()) -> list[Listing]:
        """A Listing of every run in the store's order, but those whose key (LocalRun.key) is in `skip_keys`: another
        store has them."""

    @abstractmethod
    def listing(self, run: StoredRun) -> Listing:
        """The Listing of the StoredRun `run`."""

    @abstractmethod
    def artifact(self, run: StoredRun, name: str) -> bytes | None:
        """The content of `run`'s latest artifact called `name`, or None."""

    @abstractmethod
    def sources(self, run: StoredRun) -> dict[str, bytes]:
        """`run`'s source files: {path relative to the experiment's base_dir: content}."""

    @abstractmethod
    def metric(self, run: StoredRun, name: str) -> Points:
        """Every point of `run`'s metric `name`: (steps, values, timestamps), empty when it has none."""

    @abstractmethod
    def plotted_metric(self, run: StoredRun, name: str) -> Points:
        """The points of `run`'s metric `name` that Omniboard plots: (steps, values), empty when it has none."""

    @abstractmethod
    def metric_names(self, run: StoredRun) -> list[str]:
        """The names of `run`'s metrics."""

    @abstractmethod
    def captured_out(self, run: StoredRun) -> str:
        """`run`'s captured output as stored now (the latest of a running run)."""

    @abstractmethod
    def annotations(self, run: StoredRun) -> tuple[list[str], str]:
        """(tags, note): the tags and the note that users gave `run` (Omniboard's, in MongoDB)."""

    @abstractmethod
    def annotate(self, run: StoredRun, tags: list[str], note: str) -> None:
        """Store `tags` (a list of strings) and `note` (a string) as `run`'s annotations."""


class MongoStore(RunStore):
    """The configured MongoDB database (runstore.layout); closed when used as a context manager."""

    def __init__(self, client: pymongo.MongoClient[Any], settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.db = client[settings.db_name]

    @classmethod
    def connect(cls, settings: Settings) -> MongoStore | None:
        """The store, or None when MongoDB does not answer (runstore.database.connect)."""
        client = connect(settings)
        return None if client is None else cls(client, settings)

    @classmethod
    def require(cls, settings: Settings, fix: str) -> MongoStore:
        """The store, or UserError naming the unreachable server and `fix` (runstore.database.require_database)."""
        return cls(require_database(settings, fix).client, settings)

    def __enter__(self) -> MongoStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def document(self, run_id: int, fields: dict[str, int] | None = None) -> dict[str, Any]:
        """Run `run_id`'s document (only `fields`, a projection, when given); UserError when there is no such run."""
        doc = self.db.runs.find_one({"_id": run_id}, fields)
        if doc is None:
            raise UserError(
                f"there is no run {run_id} in database {self.settings.db_name!r} at {self.settings.safe_url}; "
                f"check the id in Omniboard, and SACRED_DB"
            )
        return doc

    def open(self, run_id: int) -> StoredRun:
        """The StoredRun of run `run_id`; UserError when there is none."""
        doc = self.document(run_id)
        names = [entry["name"] for entry in doc.get("artifacts", [])]
        return _stored_run(f"run {run_id}", run_id, doc, doc["config"], doc.get("info", {}), self, run_id, names)

    def with_info(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """The _id, start_time and local_copy.key of the runs whose info has all of `info`'s values
        ({dotted key: value})."""
        query = {f"info.{key}": value for key, value in info.items()}
        return list(self.db.runs.find(query, {"_id": 1, "start_time": 1, "local_copy.key": 1}))

    def plotted_metrics(self, run_ids: Collection[int], name: str) -> dict[int, Points]:
        """{run id: (steps, values)}: the points Omniboard plots of metric `name` of each of `run_ids` that has it,
        in two reads however many runs (a group's curves, a page's sparklines)."""
        metric_ids: dict[str, int] = {}
        for doc in self.db.runs.find({"_id": {"$in": list(run_ids)}}, {"info.metrics": 1}):
            metric_ids.update((metric["id"], doc["_id"]) for metric in doc.get("info", {}).get("metrics", [])
                              if metric.get("name") == name and bson.ObjectId.is_valid(metric.get("id")))
        found = self.db.metrics.find({"_id": {"$in": [bson.ObjectId(metric_id) for metric_id in metric_ids]}},
                                     {"steps": 1, "values": 1})
        return {metric_ids[str(doc["_id"])]: (doc.get("steps", []), doc.get("values", [])) for doc in found}

    def delete(self, doc: dict[str, Any]) -> Freed:
        """Remove the run of `doc` (its artifacts, experiment.sources and _id at least) and all it stored: Freed."""
        return delete_run(self.db, doc)

    def listings(self, skip_keys: Collection[str] = frozenset(), query: dict[str, Any] | None = None
                 ) -> list[Listing]:
        """As RunStore.listings; `query`: only the runs that meet this MongoDB filter."""
        with collector_paused():
            # Large batches: nx-27017 answers each batch of a cursor in ~20 ms, 100 runs per batch by default.
            documents = list(self.db.runs.find(query or {}, LISTED_FIELDS, batch_size=LISTING_BATCH))
            if skip_keys:
                documents = [doc for doc in documents if _copy_key(doc) not in skip_keys]
            self._add_missing_summaries(documents)
            return [_mongo_listing(doc) for doc in documents]

    def ranked_listings(self, query: dict[str, Any], path: str, descending: bool, skip: int,
                        count: int) -> list[Listing]:
        """Listings of the runs that meet the MongoDB filter `query` and hold `path`, ordered by its value (ties by
        id), from the `skip`-th on, at most `count`: the store filters, sorts and cuts, so reading the first runs
        does not read them all."""
        order = [(path, -1 if descending else 1), ("_id", 1)]  # pymongo.DESCENDING, ASCENDING
        found = self.db.runs.find({path: {"$exists": True}, **query}, LISTED_FIELDS).sort(order).skip(skip)
        documents = list(found.limit(count))
        self._add_missing_summaries(documents)
        return [_mongo_listing(doc) for doc in documents]

    def listings_of(self, run_ids: Collection[int]) -> list[Listing]:
        """The Listings of the runs `run_ids` that the store holds, in the store's order."""
        documents = list(self.db.runs.find({"_id": {"$in": list(run_ids)}}, LISTED_FIELDS))
        self._add_missing_summaries(documents)
        return [_mongo_listing(doc) for doc in documents]

    def count(self) -> int:
        """How many runs the store holds, from its own count (no run is read)."""
        return self.db.runs.estimated_document_count()

    def copies_held(self, keys: Collection[str]) -> set[str]:
        """Which of `keys` (LocalRun.key of runs in a file store) name runs that this store holds."""
        if not keys:
            return set()
        found = self.db.runs.find({"local_copy.key": {"$in": list(keys)}}, {"local_copy.key": 1})
        return {key for key in map(_copy_key, found) if key is not None}

    def listing(self, run: StoredRun) -> Listing:
        doc = dict(run.doc)
        self._add_missing_summaries([doc])
        return _mongo_listing(doc)

    def artifact(self, run: StoredRun, name: str) -> bytes | None:
        # Whichever observer wrote the run, the last entry of a name is its newest file.
        entries = [entry for entry in run.doc.get("artifacts", []) if entry["name"] == name]
        return read_file(self.db, entries[-1]["file_id"]) if entries else None

    def sources(self, run: StoredRun) -> dict[str, bytes]:
        sources = {path: read_file(self.db, file_id) for path, file_id in run.doc["experiment"].get("sources", [])}
        missing = sorted(path for path, content in sources.items() if content is None)
        if missing:
            raise UserError(f"{run.label}'s source {missing[0]} has no file in the database "
                            f"({len(missing)} missing): its code cannot be read back from the store")
        return {path: content for path, content in sources.items() if content is not None}

    def metric(self, run: StoredRun, name: str) -> Points:
        return read_metric(self.db, _run_id(run), name)

    def plotted_metric(self, run: StoredRun, name: str) -> Points:
        # Found by the id the run lists: metric_points' search by run and name matches every stored run's points on
        # nx-27017, which does not use its index for a field that might be an array.
        listed = {metric["name"]: metric["id"] for metric in run.doc.get("info", {}).get("metrics", [])}
        return read_plotted(self.db, listed.get(name))

    def metric_names(self, run: StoredRun) -> list[str]:
        return [metric["name"] for metric in run.doc.get("info", {}).get("metrics", [])]

    def captured_out(self, run: StoredRun) -> str:
        return self.document(_run_id(run), {"captured_out": 1}).get("captured_out") or ""

    def annotations(self, run: StoredRun) -> tuple[list[str], str]:
        omniboard = self.document(_run_id(run), {"omniboard": 1}).get("omniboard", {})
        return omniboard.get("tags", []), omniboard.get("notes", "")

    def annotate(self, run: StoredRun, tags: list[str], note: str) -> None:
        self.db.runs.update_one({"_id": _run_id(run)}, {"$set": {"omniboard.tags": tags, "omniboard.notes": note}})

    def _add_missing_summaries(self, documents: list[dict[str, Any]]) -> None:
        """Runs recorded by Sacred's own MongoObserver have no stored summaries: compute them from their plotted
        series."""
        missing = {doc["_id"]: doc for doc in documents if "metric_summaries" not in doc}
        if not missing:
            return
        for doc in missing.values():
            doc["metric_summaries"] = []
        fields = {"run_id": 1, "name": 1, "steps": 1, "values": 1}
        for metric in self.db.metrics.find({"run_id": {"$in": list(missing)}}, fields):
            summary = summarize(metric["steps"], metric["values"])
            missing[metric["run_id"]]["metric_summaries"].append({"name": metric["name"], **summary})


class FolderStore(RunStore):
    """A file store: a folder (such as RUNS_DIR) of run folders, each as runstore.local_run reads it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # Each folder's Listing while the files it is read from stay as they were: a board that lists the store on
        # every page reads again only the runs that changed.
        self._listed: dict[str, tuple[tuple[int, ...], Listing]] = {}
        self._listing = threading.Lock()  # one listing at a time: a second waits, then reuses what the first read

    def open(self, folder: Path, run_id: int | None = None) -> StoredRun:
        """The StoredRun in `folder`; `run_id`: its id in MongoDB, which then names it. UserError when unreadable."""
        try:
            run = LocalRun.load(folder)
        except (OSError, ValueError) as error:
            raise UserError(
                f"{folder} is not a readable Sacred run folder ({error.__class__.__name__}: {error}); "
                f"give a folder with run.json and config.json, such as runs/3"
            ) from None
        label, origin = (f"run {run_id}", run_id) if run_id is not None else (f"run {folder}", str(folder.resolve()))
        return _stored_run(label, origin, times_as_dates(run.entry), run.config, run.info, self, folder,
                           run.entry.get("artifacts", []))

    def runs(self) -> Iterator[tuple[Path, LocalRun]]:
        """(folder, LocalRun) of each run folder that can be read right now."""
        for folder in run_folders(self.root):
            try:
                yield folder, LocalRun.load(folder)
            except (OSError, ValueError, KeyError):  # a run being written right now, or not a run
                continue

    def listings(self, skip_keys: Collection[str] = frozenset()) -> list[Listing]:
        with self._listing, collector_paused():
            return self._read_listings(skip_keys)

    def _read_listings(self, skip_keys: Collection[str]) -> list[Listing]:
        listings, listed = [], {}
        for folder in subfolders(self.root):  # text paths: 10,000 folders join names 100,000 times
            stamp = _stamp(folder)
            if stamp is None:  # not a run folder
                continue
            cached = self._listed.get(folder)
            try:
                listing = cached[1] if cached is not None and cached[0] == stamp else _folder_listing(folder)
            except (UnreadableRun, KeyError) as error:
                problem = error if isinstance(error, UnreadableRun) else f"{folder}{os.sep}run.json has no {error}"
                listings.append(Listing(folder, local=True, problem=str(problem)))
                continue
            listed[folder] = stamp, listing
            if listing.uploaded_from not in skip_keys:
                listings.append(listing)
        self._listed = listed
        return listings

    def listing(self, run: StoredRun) -> Listing:
        return _folder_listing(_folder(run))

    def artifact(self, run: StoredRun, name: str) -> bytes | None:
        # A file store copies each artifact to <folder>/<name>, so the file there is the newest.
        file = _folder(run) / name
        return file.read_bytes() if name in run.doc.get("artifacts", []) and file.is_file() else None

    def sources(self, run: StoredRun) -> dict[str, bytes]:
        sources = run.doc["experiment"].get("sources", [])
        files = {path: source_file(_folder(run), stored) for path, stored in sources}
        return {path: file.read_bytes() for path, file in files.items() if file is not None}  # open() refused others

    def metric(self, run: StoredRun, name: str) -> Points:
        series = LocalRun.load(_folder(run)).metrics.get(name, {})
        return tuple(series.get(key, []) for key in ("steps", "values", "timestamps"))

    def plotted_metric(self, run: StoredRun, name: str) -> Points:
        return self.metric(run, name)[:2]  # a file store keeps every point, and Omniboard does not read it

    def metric_names(self, run: StoredRun) -> list[str]:
        return list(LocalRun.load(_folder(run)).metrics)

    def captured_out(self, run: StoredRun) -> str:
        return LocalRun.load(_folder(run)).captured_out

    def annotations(self, run: StoredRun) -> tuple[list[str], str]:
        info = LocalRun.load(_folder(run)).info
        return info.get("tags", []), info.get("notes", "")

    def annotate(self, run: StoredRun, tags: list[str], note: str) -> None:
        # In info.json, whose tags the upload makes Omniboard tags (observers.upload).
        folder = LocalRun.load(_folder(run))
        write_atomically(_folder(run) / "info.json", json.dumps({**folder.info, "tags": tags, "notes": note}, indent=2))


def open_run(reference: str, settings: Settings | None = None) -> StoredRun:
    """The run that `reference` names: a MongoDB run id (3), or a run folder of a file store given as a path (runs/3,
    ./3). A number is always a run id, whatever folders the current directory holds."""
    return open_ref(RunRef.parse(reference), settings)


def open_ref(ref: RunRef, settings: Settings | None = None) -> StoredRun:
    """The run that `ref` names; read from its folder when it has one (the latest state of a run that MongoDB may
    not hold in full yet), named by its database id when it has one. UserError when there is no such run."""
    if ref.folder is None:
        assert ref.database_id is not None  # a RunRef names one or the other
        return _open_mongo_run(ref.database_id, settings or load_settings())
    if not ref.folder.is_dir():
        raise UserError(
            f"{str(ref.folder)!r} is neither a run id nor a run folder; give the id shown in Omniboard (e.g. 3) "
            f"or a file-store folder (e.g. runs/3)"
        )
    return FolderStore(ref.folder.parent).open(ref.folder, ref.database_id)


def handed_back_run(ref: RunRef | None, settings: Settings | None = None) -> StoredRun | None:
    """The run that a run started by `tracker` named as its own (observers.origin.Handoff), as it stands now, or None
    when it named none or is gone.

    Its folder is read while it exists (named by the database id the run gave, or else the one MongoDB holds its
    copy under); a folder whose upload completed was removed, and the run is then read from MongoDB.
    """
    if ref is None:
        return None
    settings = settings or load_settings()
    if ref.folder is not None and is_run_dir(ref.folder):
        database_id = ref.database_id if ref.database_id is not None else _uploaded_copy_id(ref.folder, settings)
        ref = RunRef(database_id, ref.folder)
    elif ref.database_id is not None:
        ref = RunRef(ref.database_id)
    else:
        return None
    try:
        return open_ref(ref, settings)
    except UserError:  # MongoDB is unreachable, or the run was deleted meanwhile
        return None


def _uploaded_copy_id(folder: Path, settings: Settings) -> int | None:
    """The database id of the upload of the run in `folder`, when MongoDB is reachable and holds one."""
    try:
        key = run_key(read_listed(folder)[0])  # its run.json alone, not its points and output
    except (UnreadableRun, KeyError):
        return None
    mongo = MongoStore.connect(settings)
    if mongo is None:
        return None
    with mongo:
        doc = mongo.db.runs.find_one({"local_copy.key": key}, {"_id": 1})
    return None if doc is None else doc["_id"]


def newest_run_with_info(info: dict[str, Any], settings: Settings | None = None) -> StoredRun | None:
    """The newest run whose info has all of `info`'s values ({dotted key: value}), or None.

    Looks in RUNS_DIR, whose copies are the latest state of runs MongoDB did not take in full, and in MongoDB. A copy
    of a run that MongoDB holds too is read from its folder but named by its database id.
    """
    settings = settings or load_settings()
    found: list[tuple[datetime.datetime, Callable[[], StoredRun]]] = []
    database_ids = {}
    mongo = MongoStore.connect(settings)
    if mongo is not None:
        with mongo:
            docs = mongo.with_info(info)
        for doc in docs:
            found.append((doc["start_time"], functools.partial(_open_mongo_run, doc["_id"], settings)))
        database_ids = {_copy_key(doc): doc["_id"] for doc in docs if "local_copy" in doc}
    folders = FolderStore(settings.runs_dir)
    for folder in run_folders(folders.root):
        try:
            entry, _, folder_info, _ = read_listed(folder)  # a sweep's trial looks among every run folder
            if all(_dotted(folder_info, key) == value for key, value in info.items()):
                open_folder = functools.partial(folders.open, folder, database_ids.get(run_key(entry)))
                # First: at the same start time, its state wins.
                found.insert(0, (times_as_dates(entry)["start_time"], open_folder))
        except (UnreadableRun, KeyError):  # a run being written right now, or not a run
            continue
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]()


def mark_continued(run: StoredRun, by: object, settings: Settings | None = None) -> None:
    """Record in the info of `run` (a StoredRun) that the run `by` (its origin) continues it (`tracker resume`, `tracker
    sweep --continue`), in its folder and in MongoDB: groups then count the two as one run (runstore.groups), and
    `tracker sync` advises no resume of it."""
    if isinstance(run.key, Path) and is_run_dir(run.key):  # a folder removed meanwhile has nothing to mark
        LocalRun.load(run.key).mark_continued(by)
    if isinstance(run.origin, int):
        mongo = MongoStore.connect(settings or load_settings())
        if mongo is not None:  # else the folder's copy carries the mark there with `tracker sync`
            with mongo:
                mongo.db.runs.update_one({"_id": run.origin}, {"$set": {"info.continued_by": by}})


def _dotted(info: Any, key: str) -> Any:
    for part in key.split("."):
        info = info.get(part) if isinstance(info, dict) else None
    return info


def _open_mongo_run(run_id: int, settings: Settings) -> StoredRun:
    store = MongoStore.require(
        settings, f"start it to read run {run_id}, or give the folder of a file-store run "
                  f"(e.g. {shell_command(settings.runs_dir / str(run_id))})"
    )
    return store.open(run_id)


def _run_id(run: StoredRun) -> int:
    """The database id of a run that MongoStore opened."""
    assert isinstance(run.key, int), run.key
    return run.key


def _folder(run: StoredRun) -> Path:
    """The folder of a run that FolderStore opened."""
    assert isinstance(run.key, Path), run.key
    return run.key


def _copy_key(doc: dict[str, Any]) -> str | None:
    return doc.get("local_copy", {}).get("key")


def _mongo_listing(doc: dict[str, Any]) -> Listing:
    summaries = {s["name"]: s for s in doc.get("metric_summaries", [])}
    return Listing(doc["_id"], _copy_key(doc), doc, doc.get("config", {}), doc.get("info", {}), summaries)


def _folder_listing(folder: str | Path) -> Listing:
    """The Listing of a run folder, from the files runstore.local_run.read_listed reads; its metrics' summaries from
    metrics.json when run.json records none. UnreadableRun when it cannot be read."""
    entry, config, info, summaries = read_listed(folder)
    if summaries is None:
        summaries = {name: summarize(series["steps"], series["values"])
                     for name, series in read_metrics(folder).items()}
    # Only what a listing of the database reads (LISTED_FIELDS): 10,000 listings kept whole cost seconds to collect.
    listed = times_as_dates(_projected(entry, _projection(tuple(LISTED_FIELDS))))
    repositories = listed.get("experiment", {}).get("repositories")
    if isinstance(repositories, list):  # the first names the commit its row shows; Sacred lists one per source file
        listed["experiment"]["repositories"] = repositories[:1]
    listed["omniboard"] = {"tags": info.get("tags", [])}  # its info's tags: what the upload makes Omniboard tags
    try:
        key = run_key(entry)
    except (KeyError, TypeError):  # a run.json written by hand, without a host: no database can hold a copy of it
        key = None
    return Listing(str(folder), key, listed, config, _projected(info, _projection(tuple(LISTED_INFO))), summaries,
                   local=True)


def _stamp(folder: str) -> tuple[int, ...] | None:
    """What changes when a file a listing reads is written (each is replaced whole, or appended to): the inode, size
    and modification time of each (zeros for a missing one); None when the folder holds no run.json file."""
    stamp: list[int] = []
    for name in (*LISTED_FILES, "metrics.json"):
        try:
            status = os.stat(os.path.join(folder, name))
        except OSError:
            status = None
        if name == "run.json" and (status is None or not stat.S_ISREG(status.st_mode)):
            return None
        stamp += (status.st_ino, status.st_size, status.st_mtime_ns) if status is not None else (0, 0, 0)
    return tuple(stamp)


@functools.cache
def _projection(paths: tuple[str, ...]) -> dict[str, Any]:
    """The dotted `paths` as a tree ({part: its tree, or None for a path's last part}) that _projected walks."""
    tree: dict[str, Any] = {}
    for path in paths:
        *parents, last = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = None
    return tree


def _projected(document: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    """`document` with only the paths of the _projection `tree` (as a MongoDB projection keeps them)."""
    kept: dict[str, Any] = {}
    for key, below in tree.items():
        if key not in document:
            continue
        value = document[key]
        if below is None:
            kept[key] = value
        elif isinstance(value, dict):
            kept[key] = _projected(value, below)
    return kept


def _stored_run(label: str, origin: int | str, doc: dict[str, Any], config: dict[str, Any], info: dict[str, Any],
                store: RunStore, key: int | Path, artifact_names: Iterable[str]) -> StoredRun:
    """The StoredRun, once its config and info are known to be plain data (nothing in them can run code)."""
    return StoredRun(label, origin, doc, plain_values(config, label, "config"), plain_values(info, label, "info"),
                     store, key, tuple(dict.fromkeys(artifact_names)))
