"""The `tracker` command: one subcommand per task around recorded runs."""
from __future__ import annotations

import argparse
import os
import sys

from compat import CompatError
from observers.startup import imports_done, quick_start
from runstore.errors import UserError
from runstore.shell import PrintableStream


def build_parser() -> argparse.ArgumentParser:
    # Here: main() has the collector run rarely while the commands' modules are imported.
    from tracker import (board, compare, db, delete, export, gc, get, importance, report, rerun, resume, runs, sweep,
                         sync)
    from tracker.ui import command as ui

    parser = argparse.ArgumentParser(
        prog="tracker",
        description=(
            "Experiment tracking on Sacred, MongoDB and Omniboard. Run any tracked experiment "
            "('python EXPERIMENT.py with KEY=VALUE ...'); runs are recorded in MONGO_URL/SACRED_DB "
            "(environment or .env), or in runs/ when MongoDB is unreachable."
        ),
    )
    # Each module adds its subcommand with `add_parser(subparsers)` and sets `func` to run it.
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in (db, board, ui, sync, runs, compare, get, rerun, resume, export, sweep, importance, report, delete,
                   gc):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    quick_start(git=False)
    parser = build_parser()
    imports_done()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    streams = sys.stdout, sys.stderr
    # Whatever a command prints may hold stored text (names, config values, errors): it never drives the terminal.
    sys.stdout, sys.stderr = PrintableStream(sys.stdout), PrintableStream(sys.stderr)
    try:
        return args.func(args) or 0
    except (UserError, CompatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader stopped reading (`| head`): it has all it wanted, so no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), streams[0].fileno())  # nor a second error when Python flushes
        return 141  # 128 + SIGPIPE: how a shell reports a command stopped by a closed pipe
    finally:
        sys.stdout, sys.stderr = streams


if __name__ == "__main__":
    sys.exit(main())
