"""The runs that `tracker ui` shows: MongoDB (when it answered at start) and RUNS_DIR, through runstore's RunStore."""
from pathlib import Path

from runstore.errors import UserError
from runstore.query import listing_row, stored_rows
from runstore.run_store import FolderStore, MongoStore


class Board:
    """One connection for the board's life; runs named as `tracker runs` names them (a database id or a folder)."""

    def __init__(self, settings):
        self.settings = settings
        self.folders = FolderStore(settings.runs_dir)
        self.mongo = MongoStore.connect(settings)

    def close(self):
        if self.mongo is not None:
            self.mongo.close()

    def describe(self):
        where = f"database {self.settings.db_name!r} at {self.settings.safe_url} and " if self.mongo else ""
        return f"the runs in {where}{self.settings.runs_dir}/"

    def rows(self):
        """A row (runstore.query) per run."""
        return stored_rows(self.mongo, self.folders)

    def open(self, reference):
        """The StoredRun named `reference`: a database id, or a run folder of RUNS_DIR (no other folder is read)."""
        if reference.isdigit() and self.mongo is not None:
            return self.mongo.open(int(reference))
        folder = Path(reference)
        if folder.resolve().parent != self.settings.runs_dir.resolve() or not folder.is_dir():
            raise UserError(f"there is no run {reference!r}; the runs table lists them")
        return self.folders.open(folder)

    def row(self, run):
        return listing_row(run.listing())
