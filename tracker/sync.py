"""`tracker sync [PATH ...]`: uploads runs kept in the local file store (runs/) to MongoDB, each exactly once."""
import datetime
from pathlib import Path

from pymongo.errors import PyMongoError

from observers.choose import require_database
from observers.local_run import LocalRun, is_run_dir
from observers.settings import load_settings
from observers.upload import RunUploader, UploadError, UploadState, find_uploaded
from observers.errors import UserError

# A RUNNING copy whose heartbeat is this recent may still be written by its process (Sacred beats every 10 s).
ALIVE_HEARTBEAT_S = 60


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "sync",
        help="upload runs kept in the local file store (runs/) to MongoDB",
        description=(
            "Upload runs that were recorded in the local file store, because MongoDB was unreachable when they "
            "started or ended, into MONGO_URL/SACRED_DB with all their content. Runs already uploaded are skipped, "
            "so syncing again is safe. The local copies are left in place."
        ),
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="run folders (runs/3) or file stores holding them (runs/); default: RUNS_DIR, else runs/",
    )
    parser.set_defaults(func=run)


def run(args):
    settings = load_settings()
    run_dirs = find_run_dirs([Path(p) for p in args.paths] or [settings.runs_dir])
    if not run_dirs:
        print(f"nothing to sync: no runs in {', '.join(args.paths) or settings.runs_dir}")
        return 0
    db = require_database(settings, "start it or set MONGO_URL (environment or .env), then run tracker sync again")
    counts = sync_runs(db, run_dirs)
    db.client.close()
    print(", ".join(f"{count} {outcome}" for outcome, count in counts.items()) + f" (database {settings.db_name})")
    return 1 if counts["failed"] else 0


def sync_runs(db, run_dirs):
    """Upload each of `run_dirs`, printing one line per run; {outcome: number of runs}."""
    uploader = RunUploader(db)
    counts = {"uploaded": 0, "skipped": 0, "failed": 0}
    for run_dir in run_dirs:
        outcome, message = sync_run(db, uploader, run_dir)
        counts[outcome] += 1
        print(f"{outcome} {run_dir}: {message}", flush=True)
    return counts


def find_run_dirs(paths):
    """Run folders named by `paths`: each is a run folder or a file store whose subfolders are runs."""
    run_dirs = []
    for path in paths:
        if is_run_dir(path):
            run_dirs.append(path)
        elif path.is_dir():
            run_dirs.extend(sorted((p for p in path.iterdir() if is_run_dir(p)), key=_run_number))
        else:
            raise UserError(f"{path} does not exist; give run folders (runs/3) or a file store (runs/)")
    return run_dirs


def sync_run(db, uploader, run_dir):
    """Upload one run folder unless MongoDB has it already; ('uploaded' | 'skipped' | 'failed', what happened)."""
    try:
        run = LocalRun.load(run_dir)
        key = run.key
    except (OSError, ValueError, KeyError) as error:
        return "skipped", f"not a readable Sacred run ({error})"
    if not run.finished and _seconds_since(run.entry.get("heartbeat") or run.entry["start_time"]) < ALIVE_HEARTBEAT_S:
        return "skipped", "still running (its heartbeat is recent); sync it when it has ended"
    existing = find_uploaded(db, key)
    if existing and existing["local_copy"]["complete"] and existing["status"] == run.entry["status"]:
        return "skipped", f"already in MongoDB as run {existing['_id']}"
    try:
        run_id = uploader.upload(run, UploadState())
    except (UploadError, PyMongoError) as error:
        return "failed", str(error)
    points = sum(len(series["steps"]) for series in run.metrics.values())
    return "uploaded", (
        f"run {run_id} ({run.entry['status']}, {len(run.metrics)} metrics with {points} points, "
        f"{len(set(run.entry['artifacts']))} artifacts)"
    )


def _run_number(path):
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def _seconds_since(iso_time):
    return (datetime.datetime.utcnow() - datetime.datetime.fromisoformat(iso_time)).total_seconds()
