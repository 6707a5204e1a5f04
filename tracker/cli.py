"""The `tracker` command: one subcommand per task around recorded runs."""
import argparse
import sys

from tracker import board, db, rerun, resume, sweep, sync
from observers.errors import UserError

# Each module adds its subcommand with `add_parser(subparsers)` and sets `func` to run it.
COMMAND_MODULES = [db, board, sync, rerun, resume, sweep]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tracker",
        description=(
            "Experiment tracking on Sacred, MongoDB and Omniboard. Train with "
            "'python experiments/cifar.py with lr=0.01'; runs are recorded in MONGO_URL/SACRED_DB "
            "(environment or .env), or in runs/ when MongoDB is unreachable."
        ),
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv=None):
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
