"""`tracker rerun`: run a recorded run again with its stored config (seed included), as a new run."""
from observers.run_store import open_run
from tracker.errors import UserError
from tracker.launch import add_code_options, relaunch


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "rerun",
        usage="tracker rerun [--at-commit | --force] RUN [with KEY=VALUE ...]",
        help="run a recorded run again with its stored config",
        description=(
            "Start a new run of RUN's experiment with RUN's stored config, seed included, plus any KEY=VALUE "
            "changes. The new run's info records rerun_of and the overrides. Refuses when this checkout's code "
            "differs from RUN's commit, unless --at-commit or --force is given."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="a run id in MongoDB (as in Omniboard), or a file-store run folder")
    parser.add_argument("updates", nargs="*", metavar="with KEY=VALUE", help="config changes, as for the experiment")
    add_code_options(parser)
    parser.set_defaults(func=run)


def run(args):
    if args.updates and args.updates[0] != "with":
        raise UserError(f"put config changes after 'with', e.g. tracker rerun {args.run} with lr=0.05")
    overrides = args.updates[1:]
    stored = open_run(args.run)
    info = {"rerun_of": stored.origin, "overrides": overrides}
    return relaunch(stored, info, overrides, at_commit=args.at_commit, force=args.force)
