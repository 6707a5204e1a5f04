"""How `tracker rerun`, `tracker resume` and a sweep's trials tell a new run where it comes from, and how the run
tells them which run it is.

The checkpoint that a resumed run continues from is a command-line option of the new process, `--resume=PATH`
(observers.track adds it to every tracked experiment), which Sacred keeps in the run's meta, outside its config.
The rest is a Handoff: a JSON file in a private folder of the starting command, named by one environment variable
(a script that calls ex.run itself never sees its command line, and its run must still refuse a config other than
the one it was given). The run reads the file and writes its own RunRef into it, once it is recorded and again when
it ends; the starting command opens that run (runstore.run_store.handed_back_run) instead of searching for it.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstore.atomic_file import write_atomically
from runstore.plain_json import dotted_values
from runstore.run_ref import RunRef

if TYPE_CHECKING:
    from sacred.run import Run

HANDOFF_ENV = "TRACKER_HANDOFF"  # the path of the Handoff file of a run started by a tracker command
HANDOFF_FILE = "handoff.json"
CONFIG_QUERY_ENV = "TRACKER_CONFIG_QUERY"  # set while `tracker rerun` reads a script's defaults with save_config
IGNORES_COMMAND_LINE_EXIT = 3  # the exit status of a script that, asked for its defaults, would start a run instead
RESUME_FLAG = "--resume"  # the experiment's option naming a checkpoint.pt file for the trainer to continue from
_MISSING = object()


@dataclass(frozen=True)
class Handoff:
    """What a tracker command tells the run it starts, in the file at `path`; the run answers there with its RunRef."""

    path: Path
    info: dict[str, Any] = field(default_factory=dict)  # merged into the new run's info: rerun_of, resumed_from, ...
    rerun_arguments: list[str] | None = None  # the `with` arguments given, the stored config file first
    pruning: dict[str, Any] | None = None  # a pruned sweep's Optuna study and trial (ingredients.pruning)

    @classmethod
    def create(cls, folder: Path, info: dict[str, Any], rerun_arguments: list[str] | None = None,
               pruning: dict[str, Any] | None = None) -> Handoff:
        """Write a new Handoff into `folder`, a folder of the starting command's own."""
        handoff = cls(Path(folder) / HANDOFF_FILE, info, rerun_arguments, pruning)
        handoff._write(None)
        return handoff

    @classmethod
    def read(cls, path: Path) -> Handoff:
        """The Handoff in the file `path`. It is data: values of any other type than written are left out."""
        content = json.loads(Path(path).read_text())
        if not isinstance(content, dict):
            content = {}
        info, arguments, pruning = content.get("info"), content.get("rerun_arguments"), content.get("pruning")
        return cls(
            Path(path),
            info if isinstance(info, dict) else {},
            arguments if isinstance(arguments, list) and arguments and all(isinstance(a, str) for a in arguments)
            else None,
            pruning if isinstance(pruning, dict) else None,
        )

    def env(self) -> dict[str, str]:
        """The environment variable that hands this file to the experiment process."""
        return {HANDOFF_ENV: str(self.path)}

    def answer(self, run: RunRef) -> None:
        """Called in the run's process: name its run in the file (replaced whole, so a reader never sees half)."""
        self._write(run)

    def answered(self) -> RunRef | None:
        """The run that the experiment named as its own, or None when it recorded none."""
        try:
            return RunRef.from_json(json.loads(self.path.read_text()).get("run"))
        except (OSError, ValueError, AttributeError, RecursionError):
            return None

    def _write(self, run: RunRef | None) -> None:
        content = {"info": self.info, "rerun_arguments": self.rerun_arguments, "pruning": self.pruning,
                   "run": None if run is None else run.as_json()}
        write_atomically(self.path, json.dumps(content, default=str))


def received_handoff() -> Handoff | None:
    """The Handoff that the tracker command starting this process gave it, or None (a run started by hand, or a
    handoff file that is gone or unreadable, which costs the run only its origin: one warning says so)."""
    path = os.environ.get(HANDOFF_ENV)
    return _read_handoff(path) if path else None


@functools.cache
def _read_handoff(path: str) -> Handoff | None:
    try:
        return Handoff.read(Path(path))  # once per process: its values are the same at every call
    except (OSError, ValueError, RecursionError) as error:
        print(f"WARNING: {HANDOFF_ENV}={path} cannot be read ({error.__class__.__name__}: {error}); the run is "
              f"recorded without the origin that tracker gave it", file=sys.stderr)
        return None


def resume_argument(checkpoint: str | os.PathLike[str]) -> str:
    """The command-line option that makes a new run continue from the file `checkpoint`."""
    return f"{RESUME_FLAG}={checkpoint}"


def resume_checkpoint(run: Run) -> str | None:
    """The checkpoint file that the Sacred run `run` was told to continue from (resume_argument), or None."""
    return (run.meta_info.get("options") or {}).get(RESUME_FLAG)


def config_not_given(config: dict[str, Any], meta_info: dict[str, Any], label: str,
                     arguments: list[str] | None) -> str | None:
    """Why the run `label` (its config and Sacred's meta_info) lacks the config `tracker rerun` gave it as
    `arguments` (Handoff.rerun_arguments; None: it is no rerun), or None.

    Sacred's command line applies the given arguments exactly. A script that calls ex.run() itself (as in a notebook)
    ignores them, and its run would be a rerun in name only: a different seed, config and result.
    """
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
