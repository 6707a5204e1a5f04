"""Reads a recorded run back (its document, decoded config and artifacts) from MongoDB or a file-store folder."""
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from observers.choose import require_database
from observers.local_run import LocalRun
from observers.plain_json import plain_values
from observers.settings import load_settings
from observers.upload import read_file
from observers.errors import UserError


@dataclass(frozen=True)
class StoredRun:
    """One recorded run, as its observer stored it."""

    label: str  # names the run in messages: "run 3" or "run runs/3"
    origin: int | str  # names it in a later run's info: the database id, or the folder's absolute path
    doc: dict  # Sacred's run document (run.json in a file store): experiment, status, meta, artifacts, ...
    config: dict  # the config, seed included: plain JSON values only (observers.plain_json)
    info: dict  # the run's info: plain JSON values only
    artifact: Callable[[str], bytes | None]  # the content of the latest artifact of a name, or None


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


def _open_mongo_run(run_id, settings):
    db = require_database(
        settings, f"start it to read run {run_id}, or give the folder of a file-store run (e.g. {settings.runs_dir}/{run_id})"
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

    return _stored_run(f"run {run_id}", run_id, doc, doc["config"], doc.get("info", {}), read_artifact)


def _open_folder(folder):
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

    return _stored_run(f"run {folder}", str(folder.resolve()), run.entry, run.config, run.info, read_artifact)


def _stored_run(label, origin, doc, config, info, read_artifact):
    """The StoredRun, once its config and info are known to be plain data (nothing in them can run code)."""
    return StoredRun(label, origin, doc, plain_values(config, label, "config"), plain_values(info, label, "info"),
                     read_artifact)
