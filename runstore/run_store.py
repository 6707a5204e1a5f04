"""Reads a recorded run back (its document, decoded config and artifacts) from MongoDB or a file-store folder."""
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runstore.database import connect, require_database
from runstore.local_run import LocalRun, is_run_dir
from runstore.plain_json import plain_values
from runstore.settings import load_settings
from runstore.shell import shell_command
from runstore.layout import read_file
from runstore.errors import UserError


@dataclass(frozen=True)
class StoredRun:
    """One recorded run, as its observer stored it."""

    label: str  # names the run in messages: "run 3" or "run runs/3"
    origin: int | str  # names it in a later run's info: the database id, or the folder's absolute path
    doc: dict  # Sacred's run document (run.json in a file store): experiment, status, meta, artifacts, ...
    config: dict  # the config, seed included: plain JSON values only (runstore.plain_json)
    info: dict  # the run's info: plain JSON values only
    artifact: Callable[[str], bytes | None]  # the content of the latest artifact of a name, or None
    artifact_names: tuple[str, ...] = ()  # the names of its artifacts, in the order they were first added
    sources: Callable[[], dict[str, bytes]] = dict  # its source files: {path relative to the experiment's base_dir: content}


def open_run(reference, settings=None):
    """The run that `reference` names: a run folder of a file store (e.g. runs/3), else a MongoDB run id."""
    if Path(reference).is_dir():
        return _open_folder(Path(reference))
    if not reference.isdigit():
        raise UserError(
            f"{reference!r} is neither a run id nor a run folder; give the id shown in Omniboard (e.g. 3) "
            f"or a file-store folder (e.g. runs/3)"
        )
    return _open_mongo_run(int(reference), settings or load_settings())


def newest_run_with_info(info, settings=None):
    """The newest run whose info has all of `info`'s values ({dotted key: value}), or None.

    Looks in RUNS_DIR, whose copies are the latest state of runs MongoDB did not take in full, and in MongoDB. A copy
    of a run that MongoDB holds too is read from its folder but named by its database id.
    """
    settings = settings or load_settings()
    found, database_ids = [], {}
    client = connect(settings)
    if client is not None:
        query = {f"info.{key}": value for key, value in info.items()}
        with client:
            docs = list(client[settings.db_name].runs.find(query, {"_id": 1, "start_time": 1, "local_copy.key": 1}))
        for doc in docs:
            found.append((str(doc["start_time"]), lambda run_id=doc["_id"]: _open_mongo_run(run_id, settings)))
        database_ids = {doc["local_copy"]["key"]: doc["_id"] for doc in docs if "local_copy" in doc}
    folders = settings.runs_dir.iterdir() if settings.runs_dir.is_dir() else ()
    for folder in filter(is_run_dir, folders):
        try:
            run = LocalRun.load(folder)
        except (OSError, ValueError):  # a run being written right now, or not a run
            continue
        if all(_dotted(run.info, key) == value for key, value in info.items()):
            def open_folder(folder=folder, run_id=database_ids.get(run.key)):
                return _open_folder(folder, run_id)

            found.insert(0, (run.entry["start_time"], open_folder))  # first: at the same start time, its state wins
    if not found:
        return None
    # ISO start times sort as text (nx-27017 returns them as strings, MongoDB as datetimes: both become ISO text).
    return max(found, key=lambda item: item[0].replace(" ", "T"))[1]()


def _dotted(info, key):
    for part in key.split("."):
        info = info.get(part) if isinstance(info, dict) else None
    return info


def _open_mongo_run(run_id, settings):
    db = require_database(
        settings, f"start it to read run {run_id}, or give the folder of a file-store run "
                  f"(e.g. {shell_command(settings.runs_dir / str(run_id))})"
    )
    doc = db.runs.find_one({"_id": run_id})
    if doc is None:
        raise UserError(
            f"there is no run {run_id} in database {settings.db_name!r} at {settings.safe_url}; "
            f"check the id in Omniboard, and SACRED_DB"
        )

    def read_artifact(name):
        # Whichever observer wrote the run, the last entry of a name is its newest file.
        entries = [entry for entry in doc.get("artifacts", []) if entry["name"] == name]
        return read_file(db, entries[-1]["file_id"]) if entries else None

    def read_sources():
        return {path: read_file(db, file_id) for path, file_id in doc["experiment"].get("sources", [])}

    names = [entry["name"] for entry in doc.get("artifacts", [])]
    return _stored_run(f"run {run_id}", run_id, doc, doc["config"], doc.get("info", {}), read_artifact, names,
                       read_sources)


def _open_folder(folder, run_id=None):
    """The run in `folder`; `run_id`: its id in MongoDB, which then names it."""
    try:
        run = LocalRun.load(folder)
    except (OSError, ValueError) as error:
        raise UserError(
            f"{folder} is not a readable Sacred run folder ({error.__class__.__name__}: {error}); "
            f"give a folder with run.json and config.json, such as runs/3"
        ) from None

    def read_artifact(name):
        # A file store copies each artifact to <folder>/<name>, so the file there is the newest.
        return (folder / name).read_bytes() if name in run.entry.get("artifacts", []) else None

    def read_sources():
        return {path: run.source_file(stored).read_bytes() for path, stored in run.entry["experiment"].get("sources", [])}

    label, origin = (f"run {run_id}", run_id) if run_id is not None else (f"run {folder}", str(folder.resolve()))
    return _stored_run(label, origin, run.entry, run.config, run.info, read_artifact, run.entry.get("artifacts", []),
                       read_sources)


def _stored_run(label, origin, doc, config, info, read_artifact, artifact_names, read_sources):
    """The StoredRun, once its config and info are known to be plain data (nothing in them can run code)."""
    return StoredRun(label, origin, doc, plain_values(config, label, "config"), plain_values(info, label, "info"),
                     read_artifact, tuple(dict.fromkeys(artifact_names)), read_sources)
