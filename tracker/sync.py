"""`tracker sync [PATH ...]`: uploads runs kept in the local file store (runs/) to MongoDB, each exactly once, and
marks RUNNING runs whose process has died as INTERRUPTED (runstore.liveness).

Exactly once, however many syncs, boards and runs upload at the same time: each folder is uploaded under its upload
lock (runstore.local_run.upload_lock), and the database's unique key on local_copy.key (observers.upload) stores
one document per run where the lock does not reach (another machine).
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError

from runstore.database import require_database
from runstore.errors import UserError
from runstore.liveness import death, describe_alive, remove_temporary_files
from runstore.local_run import LocalRun, UnreadableRun, is_run_dir, run_folders, upload_lock
from runstore.plain_json import plain_values
from runstore.settings import load_settings
from runstore.shell import shell_command
from runstore.storable import check_storable
from runstore.stored_fields import field_problem
from observers.upload import RunUploader, UploadError, UploadState, find_uploaded

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

    from pymongo.database import Database

# What can become of a run folder: "incomplete" is uploaded with what it lacks named, and counts as a failure.
OUTCOMES = ("uploaded", "skipped", "failed", "incomplete")


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="upload runs kept in the local file store (runs/) to MongoDB",
        description=(
            "Upload runs that were recorded in the local file store, because MongoDB was unreachable when they "
            "started or ended, into MONGO_URL/SACRED_DB with all their content. Runs already uploaded are skipped, "
            "so syncing again is safe. The local copies are left in place. RUNNING runs whose process has died "
            "(killed, crashed) are marked INTERRUPTED, with info.died saying when and how that was found. A run "
            "whose folder lacks metrics, output, artifacts or sources that it recorded, or holds a file whose size or "
            "sha256 differs from the run's record, is uploaded without them, with local_copy.missing naming them (and, "
            "if it had completed, as FAILED). Exits 1 when a folder is unreadable, incomplete or failed to upload; the "
            "other folders are uploaded all the same."
        ),
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="run folders (runs/3) or file stores holding them (runs/); default: RUNS_DIR, else runs/",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    run_dirs = find_run_dirs([Path(p) for p in args.paths] or [settings.runs_dir])
    db = require_database(settings, "start it or set MONGO_URL (environment or .env), then run tracker sync again")
    if not run_dirs:
        print(f"nothing to upload: no runs in {', '.join(args.paths) or settings.runs_dir}")
    counts = sync_runs(db, run_dirs)
    db.client.close()
    print(", ".join(f"{count} {outcome}" for outcome, count in counts.items()) + f" (database {settings.db_name})")
    return 1 if counts["failed"] or counts["incomplete"] else 0


def sync_runs(db: Database[Any], run_dirs: Iterable[Path]) -> dict[str, int]:
    """Upload each of `run_dirs`, then mark runs that died as INTERRUPTED, a line each; {outcome: number of runs}."""
    uploader = RunUploader(db)
    counts = dict.fromkeys(OUTCOMES, 0)
    for run_dir in run_dirs:
        try:
            outcome, message = sync_run(db, uploader, run_dir)
        except Exception as error:  # noqa: BLE001 - a folder broken in a way no check foresaw: named, and the others still go
            outcome, message = "failed", f"{type(error).__name__}: {error}; repair or remove the folder"
        counts[outcome] += 1
        print(f"{outcome} {run_dir}: {message}", flush=True)
    try:
        for run_id, died, info, problem in mark_dead_runs(db):
            if problem is not None:
                counts["failed"] += 1
                print(f"failed run {run_id}: {problem}; repair it in MongoDB or delete it with "
                      f"`{shell_command('tracker', 'delete', run_id)}`")
                continue
            print(f"interrupted run {run_id}: it died ({died['how']}); {what_next(run_id, info)}")
    except PyMongoError as error:
        counts["failed"] += 1
        print(f"failed to look for dead runs in MongoDB: {error}")
    return counts


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run folders named by `paths`: each is a run folder or a file store whose subfolders are runs."""
    run_dirs = []
    for path in paths:
        if is_run_dir(path):
            run_dirs.append(path)
        elif path.is_dir():
            run_dirs.extend(run_folders(path))
        else:
            raise UserError(f"{path} does not exist; give run folders (runs/3) or a file store (runs/)")
    return run_dirs


def sync_run(db: Database[Any], uploader: RunUploader, run_dir: Path) -> tuple[str, str]:
    """Upload one run folder unless MongoDB has it already; (outcome, what happened), the outcome one of OUTCOMES."""
    with upload_lock(run_dir) as locked:
        if not locked:
            return "skipped", "another process (the run itself, a sync or tracker board) is uploading it right now"
        if not is_run_dir(run_dir):  # that process has uploaded it and removed the local copy
            return "skipped", "uploaded meanwhile by the run itself"
        return _sync_locked_run(db, uploader, run_dir)


def _sync_locked_run(db: Database[Any], uploader: RunUploader, run_dir: Path) -> tuple[str, str]:
    try:
        run = LocalRun.load(run_dir)
        key = run.key
    except UnreadableRun as error:
        return "failed", f"{error}; repair or remove the folder"
    except KeyError as error:
        return "failed", f"{run_dir / 'run.json'} is not a Sacred run (it has no {error}); repair or remove the folder"
    try:
        check_storable(run.config, "config")  # first: it walks any nesting without recursion
        check_storable(run.info, "info")
        plain_values(run.config, f"run {run_dir}", "config")
        plain_values(run.info, f"run {run_dir}", "info")
    except UserError as error:
        return "failed", str(error)
    problem = field_problem(run.entry, run.info)
    if problem is not None:
        return "failed", f"{problem}; repair or remove the folder"
    died = death(run.entry, run.info)
    if not run.finished and died is None:
        return "skipped", f"still running ({describe_alive(run.entry, run.info)}); sync it when it has ended"
    if died is not None:
        run.mark_dead(died)
        remove_temporary_files(run.entry, run.info)
    existing = find_uploaded(db, key)
    if existing and existing["local_copy"]["complete"] and existing.get("status") == run.status:
        return "skipped", f"already in MongoDB as run {existing['_id']}"
    run.check_files()
    try:
        run_id = uploader.upload(run, UploadState())
    except (UploadError, PyMongoError) as error:
        return "failed", str(error)
    points = sum(len(series["steps"]) for series in run.metrics.values())
    dead = f"; it had died ({died['how']}), {what_next(run_id, run.info)}" if died else ""
    stored = (f"run {run_id} ({run.status}, {len(run.metrics)} metrics with {points} points, "
              f"{len(set(run.entry['artifacts']))} artifacts){dead}")
    if run.missing:
        return "incomplete", (f"{stored}, without what its folder lacks (local_copy.missing in MongoDB): "
                              + "; ".join(run.missing))
    return "uploaded", stored


def what_next(run_id: object, info: dict[str, Any]) -> str:
    """What to do with the run `run_id` that died (`info`: its info): resume it, unless another run continues it."""
    if info.get("continued_by") is not None:
        return f"run {info['continued_by']} continues it"
    return f"continue it with `{shell_command('tracker', 'resume', run_id)}`"


def mark_dead_runs(db: Database[Any]) -> Iterator[tuple[Any, Any, Any, str | None]]:
    """Mark RUNNING runs in MongoDB whose process has died as INTERRUPTED, once; yield (run id, info.died, its info,
    None), or (run id, None, its info, what is wrong) for a run whose record cannot tell (runstore.stored_fields)."""
    for doc in db.runs.find({"status": "RUNNING"}, {"status": 1, "host": 1, "heartbeat": 1, "start_time": 1,
                                                      "info": 1}):
        problem = field_problem(doc, doc.get("info") or {})
        if problem is not None:
            yield doc["_id"], None, doc.get("info"), problem
            continue
        died = death(doc, doc.get("info") or {})
        if died is None:
            continue
        stopped = {"status": "INTERRUPTED", "stop_time": doc.get("heartbeat") or doc.get("start_time"),
                   "info.died": died}
        # Only while still RUNNING: the run's own upload may have ended it meanwhile.
        if db.runs.update_one({"_id": doc["_id"], "status": "RUNNING"}, {"$set": stopped}).modified_count:
            remove_temporary_files(doc, doc.get("info") or {})
            yield doc["_id"], died, doc.get("info") or {}, None
