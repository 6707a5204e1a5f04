"""Chooses where a run is recorded: MongoDB through a local copy that survives outages (observers.durable)."""
from __future__ import annotations

import sys
import tempfile
from typing import TYPE_CHECKING

from runstore.database import connect
from observers.durable import DurableMongoObserver
from runstore.errors import UserError
from runstore.settings import create_tracker_folder, load_settings

if TYPE_CHECKING:
    from pathlib import Path

    from runstore.settings import Settings


def choose_observers(settings: Settings | None = None) -> list[DurableMongoObserver]:
    """[DurableMongoObserver]: the run goes to RUNS_DIR first and to MongoDB as soon as (and whenever) it answers.

    Checks the URL and credentials first, so that a mistake there stops the run with one clear line.
    """
    settings = settings or load_settings()
    client = connect(settings)
    reachable = client is not None
    if client is not None:
        client.close()
    require_writable(settings.runs_dir)
    if not reachable:
        print(
            f"WARNING: MongoDB at {settings.safe_url} is unreachable; recording this run in "
            f"{settings.runs_dir}/ and uploading it if MongoDB answers during the run; otherwise "
            f"upload it afterwards with `tracker sync`",
            file=sys.stderr,
        )
    return [DurableMongoObserver(settings.runs_dir, settings.mongo_url, settings.db_name, reachable)]


def require_writable(folder: Path) -> None:
    """Create `folder` if needed; UserError when no file can be written there (every run is written there first)."""
    try:
        create_tracker_folder(folder)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        why = "it is a file" if folder.is_file() else error.strerror or error
        raise UserError(
            f"RUNS_DIR={folder} is not a writable folder ({why}); set RUNS_DIR in the "
            f"environment or .env to a folder you can write, or unset it for runs/ in the project root"
        ) from None
