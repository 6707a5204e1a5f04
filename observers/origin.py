"""How `tracker rerun` and `tracker resume` tell a new run where it comes from, and how the run checks what it got.

The checkpoint that a resumed run continues from is a command-line option of the new process, `--resume=PATH`
(observers.track adds it to every tracked experiment), which Sacred keeps in the run's meta, outside its config.
Sacred's command line has no place for the rest, so it travels as environment variables.
"""
import json
import os
from pathlib import Path

from runstore.plain_json import dotted_values

RUN_INFO_ENV = "TRACKER_RUN_INFO"  # JSON merged into the new run's info: rerun_of, resumed_from, ...
RERUN_ARGUMENTS_ENV = "TRACKER_RERUN_ARGUMENTS"  # JSON list: the `with` arguments given, the stored config file first
CONFIG_QUERY_ENV = "TRACKER_CONFIG_QUERY"  # set while `tracker rerun` reads a script's defaults with save_config
IGNORES_COMMAND_LINE_EXIT = 3  # the exit status of a script that, asked for its defaults, would start a run instead
PRUNING_ENV = "TRACKER_PRUNING"  # JSON naming a pruned sweep's Optuna study and trial (ingredients.pruning)
RESUME_FLAG = "--resume"  # the experiment's option naming a checkpoint.pt file for the trainer to continue from
_MISSING = object()


def resume_argument(checkpoint):
    """The command-line option that makes a new run continue from the file `checkpoint`."""
    return f"{RESUME_FLAG}={checkpoint}"


def resume_checkpoint(run):
    """The checkpoint file that the Sacred run `run` was told to continue from (resume_argument), or None."""
    return (run.meta_info.get("options") or {}).get(RESUME_FLAG)


def config_not_given(config, meta_info, label):
    """Why the run `label` (its config and Sacred's meta_info) lacks the config `tracker rerun` gave it, or None.

    Sacred's command line applies the given arguments exactly. A script that calls ex.run() itself (as in a notebook)
    ignores them, and its run would be a rerun in name only: a different seed, config and result.
    """
    arguments = json.loads(os.environ.get(RERUN_ARGUMENTS_ENV, "null"))
    if arguments is None or (meta_info.get("options") or {}).get("UPDATE") == arguments:
        return None
    given = dotted_values(json.loads(Path(arguments[0]).read_text()))
    got = dotted_values(json.loads(json.dumps(config, default=str)))
    differing = sorted(key for key in given.keys() | got.keys() if given.get(key, _MISSING) != got.get(key, _MISSING))
    ignored = arguments[1:]
    if not differing and not ignored:
        return None
    what = ", ".join(differing) if differing else "nothing"
    return (f"{label}'s config differs from the stored one in {what}"
            + (f" and leaves out the changes {' '.join(ignored)}" if ignored else "")
            + ", because its script ignores its command line (it calls ex.run itself); the run was stopped: "
              "rerun such a run with its script's own ex.run(config_updates=<the stored config>), see README")
