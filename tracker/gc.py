"""`tracker gc`: removes what deleted runs left behind in MongoDB (metrics, metric points, GridFS files)."""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from runstore.database import require_database
from runstore.cleanup import find_orphans, remove_orphans
from runstore.settings import load_settings

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gc",
        help="remove metrics, metric points and files that no run uses any more",
        description=(
            "Find metrics and metric points of runs that no longer exist and GridFS files (artifacts, sources) "
            "that no run names, in MONGO_URL/SACRED_DB, and remove them; reports documents and bytes freed."
        ),
    )
    parser.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    parser.add_argument(
        "--min-age", type=float, default=60, metavar="MINUTES",
        help="keep files stored in the last MINUTES (default: 60): a starting run stores its sources first",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    db = require_database(settings, "start it to clean it up")
    orphans = find_orphans(db, min_age=datetime.timedelta(minutes=args.min_age))
    if args.dry_run:
        print(f"would free {orphans.summary()} in database {settings.db_name!r}")
    else:
        remove_orphans(db, orphans)
        print(f"freed {orphans.summary()} in database {settings.db_name!r}")
    db.client.close()
    return 0
