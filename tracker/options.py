"""The command-line options that several tracker commands share, each defined once."""
from __future__ import annotations

from typing import TYPE_CHECKING

from runstore.errors import UserError
from runstore.query import WHERE_HELP

if TYPE_CHECKING:
    import argparse


def add_run_argument(parser: argparse.ArgumentParser, usage: str) -> None:
    """RUN, the recorded run a command works on (get, export, rerun, resume), and the command's usage line, which
    shows RUN among its other arguments: `usage` follows 'tracker COMMAND'."""
    parser.usage = f"{parser.prog} {usage}"
    parser.add_argument("run", metavar="RUN", help="a run id in MongoDB (as in Omniboard), or a file-store run folder")


def add_code_choice(parser: argparse.ArgumentParser) -> None:
    """The choice of code for a run whose code differs from this checkout's (rerun, resume)."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--at-commit", action="store_true",
        help="run the original run's commit in a temporary git worktree (a run with uncommitted changes also needs "
             "--apply-diff)",
    )
    parser.add_argument(
        "--apply-diff", action="store_true",
        help="with --at-commit: apply the run's stored git_diff.patch of uncommitted changes, which is code; its "
             "files, line counts and sha256 are shown first",
    )
    choice.add_argument(
        "--force", action="store_true",
        help="run this checkout's code although it differs from the original run's (recorded as forced_instead_of)",
    )


def add_filters(parser: argparse.ArgumentParser) -> None:
    """--where, --experiment and --tag, which choose runs (runs, importance, report): runstore.query.conditions."""
    parser.add_argument("--where", action="append", default=[], metavar="COND",
                        help=f"keep runs that meet COND: {WHERE_HELP}, 'val.acc.max>0.9'; repeatable")
    parser.add_argument("--experiment", help="keep runs of this experiment (e.g. cifar)")
    parser.add_argument("--tag", help="keep runs with this Omniboard tag")


def given_data_root(arguments: list[str], continues: str, example: str) -> list[str]:
    """The updates in `arguments` (`with data.root=PATH` or nothing) of a command that runs stored config again as it
    is (resume, sweep --continue): only where the data is may be given (launch.check_data_root); UserError otherwise.
    `continues` says what the command runs, `example` is the command for the hint."""
    if arguments[:1] not in ([], ["with"]) or not all(a.startswith("data.root=") for a in arguments[1:]):
        raise UserError(f"{continues}; only where its data is may be given, e.g. {example} with data.root=PATH")
    return arguments[1:]
