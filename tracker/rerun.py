"""`tracker rerun`: run a recorded run again with its stored config (seed included), as a new run; with --seeds N, as
N new runs with new seeds, so that one run becomes a sample."""
from __future__ import annotations

from typing import TYPE_CHECKING

from runstore.run_store import open_run
from runstore.errors import UserError
from runstore.shell import shell_command
from tracker.options import add_code_choice, add_run_argument
from tracker.search_space import new_seeds

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rerun",
        help="run a recorded run again with its stored config",
        description=(
            "Start a new run of RUN's experiment with RUN's stored config, seed included, plus any KEY=VALUE "
            "changes. The new run's info records rerun_of and the overrides. Refuses when this checkout's code "
            "differs from RUN's commit, unless --at-commit or --force is given. Only scripts of this checkout run: "
            "a stored main file, base_dir or repository pointing elsewhere is refused, and a stored data.root "
            "outside the experiment's data folder is used only when given again (with data.root=PATH). Prints the "
            "script, commit and non-default config values before it starts."
        ),
    )
    add_run_argument(parser, "[--at-commit [--apply-diff] | --force] [--seeds N] RUN [with KEY=VALUE ...]")
    add_code_choice(parser)
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="run it N times, each with a new random seed (recorded in overrides), e.g. to see with "
                             "`tracker runs --group` whether its result was a lucky seed")
    parser.add_argument("updates", nargs="*", metavar="with KEY=VALUE", help="config changes, as for the experiment")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported when used: GitPython cannot even be imported without a git executable, which other commands lack.
    from tracker.launch import relaunch

    if args.updates and args.updates[0] != "with":
        raise UserError(f"put config changes after 'with', e.g. "
                        f"{shell_command('tracker', 'rerun', args.run, 'with', 'KEY=VALUE')}")
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds {args.seeds} must be at least 1, e.g. --seeds 5")
    overrides = args.updates[1:]
    stored = open_run(args.run)
    if args.seeds is None:
        return relaunch(stored, {"rerun_of": stored.origin, "overrides": overrides}, overrides,
                        at_commit=args.at_commit, force=args.force, apply_diff=args.apply_diff).status
    seeds = new_seeds(args.seeds, taken={stored.config.get("seed")})
    worst = 0
    for number, seed in enumerate(seeds, 1):
        print(f"rerun {number}/{len(seeds)} of {stored.label} with seed={seed}", flush=True)
        changed = [*overrides, f"seed={seed}"]
        returncode = relaunch(stored, {"rerun_of": stored.origin, "overrides": changed}, changed,
                              at_commit=args.at_commit, force=args.force, apply_diff=args.apply_diff).status
        worst = max(worst, returncode)
        if returncode == 130:  # Ctrl-C: the interrupted run can be resumed; the others are not started
            break
    return worst
