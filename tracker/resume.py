"""`tracker resume`: continue an interrupted run from its latest checkpoint, as a new run."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingredients.checkpoint import CHECKPOINT, load_checkpoint
from runstore.run_store import handed_back_run, mark_continued, newest_run_with_info, open_run
from runstore.errors import UserError
from runstore.liveness import death, describe_alive
from observers.origin import resume_argument
from runstore.shell import shell_command
from runstore.stored_fields import field_problem
from tracker.options import add_code_choice, add_run_argument, given_data_root

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

    from runstore.run_store import StoredRun


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "resume",
        help="continue an interrupted run from its latest checkpoint",
        description=(
            f"Start a new run with RUN's stored config that restores RUN's latest {CHECKPOINT} and continues at "
            f"the next step. The new run's info records resumed_from and resumed_after_step. Refuses when this "
            f"checkout's code differs from RUN's commit, unless --at-commit or --force is given. Only data.root may be "
            f"given again: a stored data.root outside the experiment's data folder is used only when given so."
        ),
    )
    add_run_argument(parser, "[--at-commit [--apply-diff] | --force] RUN [with data.root=PATH]")
    add_code_choice(parser)
    parser.add_argument("updates", nargs="*", metavar="with data.root=PATH",
                        help="where the data is, for a run whose stored data.root is outside the experiment's data "
                             "folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported when used: GitPython cannot even be imported without a git executable, which other commands lack.
    from tracker.launch import relaunch

    updates = given_data_root(args.updates, "tracker resume continues the run's own config",
                              f"tracker resume {args.run}")
    stored = open_run(args.run)
    if stored.doc.get("status") == "COMPLETED":
        raise UserError(f"{stored.label} completed, so there is nothing to resume; run it again with "
                        f"`{shell_command('tracker', 'rerun', args.run)}`")
    problem = field_problem(stored.doc, stored.info)
    if problem is not None:
        raise UserError(f"{stored.label}'s {problem}; repair its record, or start it again with "
                        f"`{shell_command('tracker', 'rerun', args.run)}`")
    if stored.doc.get("status") == "RUNNING" and death(stored.doc, stored.info) is None:
        raise UserError(f"{stored.label} is still running ({describe_alive(stored.doc, stored.info)}); resume it "
                        f"once it has ended (Ctrl-C stops it with a checkpoint)")
    with tempfile.TemporaryDirectory(prefix="tracker-resume-") as folder:
        continued = continuation(stored, Path(folder))
        if continued is None:
            raise UserError(
                f"{stored.label} has no {CHECKPOINT}: it stopped before its first checkpoint (every "
                f"trainer.checkpoint_every steps, and on Ctrl-C); start it again with "
                f"`{shell_command('tracker', 'rerun', args.run)}`"
            )
        info, options = continued
        launched = relaunch(stored, info, updates, at_commit=args.at_commit, force=args.force, options=options,
                            action="resume", apply_diff=args.apply_diff)
    resumed = handed_back_run(launched.run)
    if resumed is None and args.at_commit:  # a commit's code from before observers.origin.Handoff names no run
        resumed = newest_run_with_info({"resumed_from": stored.origin})
    if resumed is not None:  # whatever became of it: the new run stands for this one now
        mark_continued(stored, resumed.origin)
    return launched.status


def continuation(stored: StoredRun, folder: Path) -> tuple[dict[str, Any], list[str]] | None:
    """(info, command-line options) of a new run that continues `stored` from its latest checkpoint, written to
    `folder`.

    None when `stored` has no checkpoint. `tracker sweep` continues interrupted trials with it too.
    """
    content = stored.artifact(CHECKPOINT)
    if content is None:
        return None
    checkpoint = folder / CHECKPOINT
    checkpoint.write_bytes(content)
    step = load_checkpoint(checkpoint, label=f"{stored.label}'s {CHECKPOINT}")["step"]
    return {"resumed_from": stored.origin, "resumed_after_step": step}, [resume_argument(checkpoint)]
