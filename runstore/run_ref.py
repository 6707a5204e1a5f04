"""RunRef: the one name of a recorded run, as a user gives it and as a run started by `tracker` hands it back.

A run lives in MongoDB (its numeric id), in a file store's run folder, or in both: the durable observer writes the
folder first and uploads it, and the folder holds the run's latest state until its upload is complete and it is
removed. runstore.run_store.open_ref opens what a RunRef names.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstore.errors import UserError


@dataclass(frozen=True)
class RunRef:
    """One run: its MongoDB id, its run folder, or both."""

    database_id: int | None = None
    folder: Path | None = None

    def __post_init__(self) -> None:
        if self.database_id is None and self.folder is None:
            raise ValueError("a RunRef names a database id, a run folder, or both")

    @classmethod
    def parse(cls, reference: str) -> RunRef:
        """The run a user names on the command line: a number is always a MongoDB run id (3), whatever folders the
        current directory holds; anything else is the path of a run folder (runs/3, ./3)."""
        if reference.isascii() and reference.isdigit():
            return cls(database_id=int(reference))
        if not reference:
            raise UserError("the run reference is empty; give the id shown in Omniboard (e.g. 3) or a file-store "
                            "folder (e.g. runs/3)")
        return cls(folder=Path(reference))

    def as_json(self) -> dict[str, Any]:
        return {"database_id": self.database_id, "folder": None if self.folder is None else str(self.folder)}

    @classmethod
    def from_json(cls, value: Any) -> RunRef | None:
        """The RunRef that `value` (as_json's, read back from a file) holds, or None when it names none: a file is
        data, so anything else than an int id and a text path is no run."""
        if not isinstance(value, dict):
            return None
        database_id, folder = value.get("database_id"), value.get("folder")
        if type(database_id) is not int:
            database_id = None
        if not isinstance(folder, str) or not folder:
            folder = None
        if database_id is None and folder is None:
            return None
        return cls(database_id, None if folder is None else Path(folder))
