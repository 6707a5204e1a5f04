"""`tracker get`: download one artifact of a recorded run (a checkpoint, a figure, results.json, ...)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runstore.atomic_file import write_atomically
from runstore.errors import UserError
from runstore.run_store import open_run
from runstore.settings import create_tracker_folder
from tracker.options import add_run_argument

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "get",
        help="download an artifact of a run",
        description="Write RUN's artifact FILE (its latest version) into DIR. 'tracker get RUN' lists the artifacts.",
    )
    add_run_argument(parser, "RUN FILE [--out DIR]")
    parser.add_argument("name", metavar="FILE", nargs="?", help="the artifact's name, e.g. model_best.pt")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="the folder to write it to, created if missing (default: the current folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stored = open_run(args.run)
    if args.name is None:
        print("\n".join(stored.artifact_names) or f"{stored.label} has no artifacts")
        return 0
    content = stored.artifact(args.name)
    if content is None:
        raise UserError(f"{stored.label} has no artifact {args.name!r}; it has "
                        f"{', '.join(stored.artifact_names) or 'none'}")
    try:
        create_tracker_folder(args.out)  # one it makes holds records, so it is no uncommitted change of a run
    except OSError as error:  # a file of that name, or a folder that cannot be written
        raise UserError(f"--out {args.out} cannot be a folder ({error.strerror}); give another") from None
    # The name comes from the command line, but only its last part names the file: nothing lands outside DIR.
    target = args.out / Path(args.name).name
    write_atomically(target, content)
    print(f"Wrote {target} ({len(content):,} bytes) from {stored.label}")
    return 0
