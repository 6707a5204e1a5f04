"""`tracker delete RUN [RUN ...]`: removes runs from MongoDB with their metrics, metric points and files."""
from runstore.database import require_database
from runstore.cleanup import NOUNS, delete_run
from runstore.query import stored_time
from runstore.settings import load_settings
from runstore.errors import UserError
from tracker.runs import cell


def add_parser(subparsers):
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


def run(args):
    settings = load_settings()
    bad = [reference for reference in args.runs if not reference.isdigit()]
    if bad:
        raise UserError(f"{bad[0]!r} is not a run id; give the ids Omniboard shows, e.g. 'tracker delete 3 4'")
    db = require_database(settings, "start it to delete runs from it")
    runs = []
    for run_id in dict.fromkeys(int(reference) for reference in args.runs):
        doc = db.runs.find_one({"_id": run_id}, {"artifacts": 1, "experiment.sources": 1, "experiment.name": 1,
                                                 "status": 1, "start_time": 1})
        if doc is None:
            raise UserError(f"there is no run {run_id} in database {settings.db_name!r} at {settings.safe_url}; "
                            f"check the id in Omniboard, and SACRED_DB")
        runs.append(doc)
    for doc in runs:
        print(f"run {doc['_id']}: {doc.get('experiment', {}).get('name')} {doc.get('status')}, "
              f"started {cell(stored_time(doc.get('start_time')))}")
    question = f"Delete {len(runs)} {NOUNS['runs'][len(runs) != 1]} from database {settings.db_name!r}? [y/N] "
    if not args.yes and input(question).strip().lower() not in ("y", "yes"):
        print("nothing deleted")
        return 1
    for doc in runs:
        print(f"deleted run {doc['_id']}: {delete_run(db, doc).summary()}")
    db.client.close()
    return 0
