"""The `tracker` command: one subcommand per task around recorded runs."""
import argparse
import sys

from tracker import board, compare, db, delete, export, gc, get, importance, report, rerun, resume, runs, sweep, sync
from observers import imports_done
from runstore.errors import UserError

# Each module adds its subcommand with `add_parser(subparsers)` and sets `func` to run it.
COMMAND_MODULES = [db, board, sync, runs, compare, get, rerun, resume, export, sweep, importance, report, delete, gc]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tracker",
        description=(
            "Experiment tracking on Sacred, MongoDB and Omniboard. Run any tracked experiment "
            "('python EXPERIMENT.py with KEY=VALUE ...'); runs are recorded in MONGO_URL/SACRED_DB "
            "(environment or .env), or in runs/ when MongoDB is unreachable."
        ),
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    imports_done()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
