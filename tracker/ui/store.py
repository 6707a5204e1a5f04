"""The runs that `tracker ui` shows: MongoDB (when it answered at start) and RUNS_DIR, through runstore's RunStore."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runstore.errors import UserError
from runstore.query import listing_row, matching_rows, stored_selection, waiting_listings, waiting_rows
from runstore.run_ref import RunRef
from runstore.run_store import FolderStore, MongoStore

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from runstore.query import Condition
    from runstore.run_store import Points, StoredRun
    from runstore.settings import Settings


class Board:
    """One connection for the board's life; runs named as `tracker runs` names them (a database id or a folder)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folders = FolderStore(settings.runs_dir)
        self.mongo = MongoStore.connect(settings)

    def close(self) -> None:
        if self.mongo is not None:
            self.mongo.close()

    def describe(self) -> str:
        where = f"database {self.settings.db_name!r} at {self.settings.safe_url} and " if self.mongo else ""
        return f"the runs in {where}{self.settings.runs_dir}/"

    def matching(self, wanted: Collection[Condition]) -> list[dict[str, Any]]:
        """The rows meeting `wanted`, the database filtering first on what it can (runstore.query.matching_rows)."""
        return matching_rows(self.mongo, self.folders, wanted)

    def rows_of(self, references: Collection[str]) -> list[dict[str, Any]]:
        """The rows of the runs named by `references` (database ids and run folders of RUNS_DIR) that exist, read
        alone: a selection of 200 runs does not list 100,000."""
        refs = [ref for _, ref in _refs(references)]
        ids = [ref.database_id for ref in refs if ref.database_id is not None]
        listings = self.mongo.listings_of(ids) if self.mongo is not None and ids else []
        rows = [listing_row(listing) for listing in listings]
        for ref in refs:
            if ref.folder is not None:
                try:
                    rows.append(self.row(self.open_ref(ref)))
                except UserError:
                    continue  # a folder gone since the table was drawn, or never in RUNS_DIR: not a run to show
        return rows

    def selection(self, wanted: Collection[Condition], sort: str, limit: int, columns: Iterable[str]
                  ) -> list[dict[str, Any]]:
        """The first `limit` rows meeting `wanted` in `sort`'s order, from the store's first ones when it can
        (runstore.query.stored_selection); UserError for a key of `wanted`, `sort` or `columns` that no run has."""
        return stored_selection(self.mongo, self.folders, wanted, sort, limit, columns, option="columns")

    def read_folders(self) -> None:
        """Read RUNS_DIR's run folders into the FolderStore's listings and their rows, which later pages reuse for
        every folder that did not change."""
        waiting_rows(self.mongo, self.folders)

    def count(self) -> int:
        """How many runs the board shows: the database's (as it counts them, at once) and RUNS_DIR's."""
        stored = self.mongo.count() if self.mongo is not None else 0
        return stored + len(waiting_listings(self.mongo, self.folders))

    def open(self, reference: str) -> StoredRun:
        """The StoredRun named `reference`: a database id, or a run folder of RUNS_DIR (no other folder is read)."""
        if not reference:
            raise UserError("there is no run ''; the runs table lists them")
        return self.open_ref(RunRef.parse(reference))

    def open_ref(self, ref: RunRef) -> StoredRun:
        if ref.database_id is not None:
            if self.mongo is None:
                raise UserError(f"there is no run {ref.database_id}: the board reads no database; the runs table "
                                f"lists the runs it has")
            return self.mongo.open(ref.database_id)
        assert ref.folder is not None  # a RunRef names one or the other
        if ref.folder.resolve().parent != self.settings.runs_dir.resolve() or not ref.folder.is_dir():
            raise UserError(f"there is no run {str(ref.folder)!r}; the runs table lists them")
        return self.folders.open(ref.folder)

    def plotted_metrics(self, rows: Iterable[dict[str, Any]]) -> dict[str, Points]:
        """{run id as text: (steps, values)}: the points Omniboard plots of each row's result metric, for the rows that
        have one and logged it; the database's in two reads per metric name, however many runs."""
        wanted: dict[str, list[str]] = {}
        for row in rows:
            if row.get("result_metric") and row.get("status") != "UNREADABLE":
                wanted.setdefault(row["result_metric"], []).append(str(row["id"]))
        found: dict[str, Points] = {}
        for name, references in wanted.items():
            refs = _refs(references)
            ids = [ref.database_id for _, ref in refs if ref.database_id is not None]
            if self.mongo is not None and ids:
                found.update((str(run_id), points) for run_id, points in self.mongo.plotted_metrics(ids, name).items())
            for reference, ref in refs:
                if ref.folder is not None:
                    try:
                        found[reference] = self.open_ref(ref).plotted_metric(name)
                    except UserError:
                        continue  # a folder gone since it was listed
        return found

    def row(self, run: StoredRun) -> dict[str, Any]:
        return listing_row(run.listing())


def _refs(references: Iterable[str]) -> list[tuple[str, RunRef]]:
    """(reference, the run it names) for the page's references, read as `tracker` commands read them
    (RunRef.parse); empty ones name none."""
    return [(reference, RunRef.parse(reference)) for reference in references if reference]
