"""`tracker delete RUN [RUN ...]`: removes runs from MongoDB with their metrics, metric points and files."""
from __future__ import annotations

from typing import TYPE_CHECKING

from runstore.cleanup import NOUNS
from runstore.run_ref import RunRef
from runstore.run_store import MongoStore
from runstore.settings import load_settings
from runstore.errors import UserError
from tracker.runs import cell

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "delete",
        help="delete runs from MongoDB with everything they stored",
        description=(
            "Delete runs from MONGO_URL/SACRED_DB: the run document, its metrics and metric points, its artifact "
            "files, and its source files unless another run uses them. Asks for confirmation unless --yes."
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run ids, as Omniboard shows them")
    parser.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    refs = [RunRef.parse(reference) for reference in args.runs]
    bad = [reference for reference, ref in zip(args.runs, refs) if ref.database_id is None]
    if bad:
        raise UserError(f"{bad[0]!r} is not a run id; give the ids Omniboard shows, e.g. 'tracker delete 3 4'")
    store = MongoStore.require(settings, "start it to delete runs from it")
    fields = {"artifacts": 1, "experiment.sources": 1, "experiment.name": 1, "status": 1, "start_time": 1}
    ids = dict.fromkeys(ref.database_id for ref in refs if ref.database_id is not None)
    runs = [store.document(run_id, fields) for run_id in ids]
    for doc in runs:
        print(f"run {doc['_id']}: {doc.get('experiment', {}).get('name')} {doc.get('status')}, "
              f"started {cell(doc.get('start_time'))}")
    question = f"Delete {len(runs)} {NOUNS['runs'][len(runs) != 1]} from database {settings.db_name!r}? [y/N] "
    if not args.yes and confirmed(question) not in ("y", "yes"):
        print("nothing deleted")
        return 1
    with store:
        for doc in runs:
            print(f"deleted run {doc['_id']}: {store.delete(doc).summary()}")
    return 0


def confirmed(question: str) -> str:
    """The answer to `question`, lower-cased; UserError when there is none to read (no terminal, a closed input)."""
    try:
        return input(question).strip().lower()
    except EOFError:
        raise UserError("nothing deleted: no answer could be read (no terminal?); add --yes to delete without "
                        "asking") from None
