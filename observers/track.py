"""`track(ex)`: one call that gives any Sacred experiment this project's run recording.

What a tracked experiment gets:
- the durable MongoDB observer (observers.durable), attached after every other config hook has run, so a bad config
  value fails before any database wait; `-u`, `print_config`, `save_config` and `--help` never touch the database;
- what `tracker rerun`/`resume`/`sweep` say about the run's origin (observers.origin.Handoff) in its info, and the
  run's RunRef written back to them; a rerun whose script ignores the config it was given (a script calling ex.run
  itself) stops as FAILED before its main function;
- the option `--tag=TAG` (`-T TAG`; several: comma-separated), which tags the run as Omniboard's Tags do;
- the option `--resume=CHECKPOINT`, with which `tracker resume` starts a run that the trainer continues from
  CHECKPOINT (observers.origin.resume_checkpoint);
- the direction of its result in info.higher_is_better (true: a larger result is better), which `tracker runs
  --sort best`, `--group-by`, `sweep`, `importance` and `report` rank by; the trainer sets it from its task's
  Task.higher_is_better, any other experiment gives it to track();
- the uncommitted changes of its git repository as the artifact git_diff.patch;
- Sacred's file-descriptor capture (output of C extensions and worker processes too), progress bars stored as their
  final state;
- its process id in info.pid (observers.durable; with the host Sacred records, `tracker sync` can tell a killed
  run, runstore.liveness), and its temporary files in one folder per process, removed at its end, or by
  `tracker sync` after a kill;
- the environment (every installed distribution, Python, torch, CUDA, cuDNN, GPUs) as the artifact environment.json
  and a summary in info.environment (observers.environment);
- system metrics (CPU, memory, GPU) as sys.* metrics every SYSTEM_METRICS_S seconds (observers.system_metrics);
- exit status 130 on Ctrl-C, without a traceback (Sacred has recorded the run as INTERRUPTED), also when the reader of
  its output has gone (observers.closed_output);
- under torchrun (DistributedDataParallel, ingredients.distributed), a run recorded by rank 0 alone: the other ranks
  attach no observer, write no file, and print neither output nor the one-line errors that rank 0 prints too;
- one line naming the closest existing keys for an unknown config key (Sacred prints three, without suggestions),
  one line with a valid name for a config key that MongoDB cannot store (Sacred prints its traceback), one line
  before the run starts for a config MongoDB cannot store (runstore.storable), and one line, exit status 1, for any
  UserError.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compat import CompatError
# compat.sacred before sacred: it imports Sacred without its warning
from compat.sacred import (add_command_line_options, add_last_config_hook, at_main_end, invalid_config_key,
                           lock_captured_output, run_id, store_info_now, unknown_config_key, wrap_run,
                           wrap_run_commandline)
from sacred import SETTINGS
from sacred.commandline_options import cli_option
from sacred.utils import ConfigAddedError, SacredError, apply_backspaces_and_linefeeds

from observers.choose import choose_observers
from observers.closed_output import tolerate_closed_output
from observers.environment import record_environment
from observers.git_state import record_uncommitted_changes
from observers.origin import (CONFIG_QUERY_ENV, IGNORES_COMMAND_LINE_EXIT, RESUME_FLAG, config_not_given,
                              received_handoff)
from observers.process_rank import process_rank
from observers.startup import imports_done, quick_start_done
from observers.system_metrics import start_system_metrics
from observers.termination import RUN_END
from runstore.errors import UserError
from runstore.liveness import make_process_temp_dir, process_temp_dirs
from runstore.plain_json import dotted_keys
from runstore.settings import load_settings, tracker_folders
from runstore.storable import check_storable

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import ParamSpec, TypeVar

    from sacred import Experiment
    from sacred.run import Run

    P = ParamSpec("P")
    R = TypeVar("R")

# Sacred types some of Experiment's attributes by their defaults (captured_out_filter and logger: None): hence the
# `type: ignore[assignment]` where track() sets them.

TAG_FLAG = "--tag"
# How long a rank above 0 that refused its config waits for torchrun to end it, once rank 0 has printed why.
PEER_REPORT_S = 60


@cli_option("-r", RESUME_FLAG)
def resume_option(checkpoint: str, run: Run) -> None:
    """Continue from the checkpoint file VALUE, as `tracker resume` does."""
    if not Path(checkpoint).is_file():
        raise UserError(f"{RESUME_FLAG}={checkpoint} is not a file; give the checkpoint.pt of the run to continue")


@cli_option("-T", TAG_FLAG)
def tag_option(tags: str, run: Run) -> None:
    """Tag the run with VALUE (several: comma-separated), as Omniboard's Tags show it and `tracker runs --tag`
    selects it."""


def given_tags(run: Run) -> list[str]:
    """The tags given with --tag, in order."""
    value = (run.meta_info.get("options") or {}).get(TAG_FLAG) or ""
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def track(ex: Experiment, higher_is_better: bool = True) -> Experiment:
    """Record every run of `ex` (a sacred.Experiment) in MONGO_URL/SACRED_DB, or in RUNS_DIR while that is down.

    `higher_is_better`: whether a larger result of `ex`'s main function is a better one (False for an error).
    """
    quick_start_done()  # the experiment is created: its imports are done
    ex.captured_out_filter = apply_backspaces_and_linefeeds  # type: ignore[assignment]
    state: dict[str, Any] = {"observe": True, "attached": []}
    add_command_line_options(ex, [resume_option, tag_option])

    def attach_observers(config: dict[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
        if os.environ.get(CONFIG_QUERY_ENV) and command_name != "save_config":
            sys.exit(IGNORES_COMMAND_LINE_EXIT)  # asked for its defaults, the script started a run: it calls ex.run
        for observer in state["attached"]:
            ex.observers.remove(observer)
        observe = command_name == ex.default_command and state["observe"] and process_rank() == 0
        if observe:
            check_storable(config, "config")  # before any run folder or database wait
        state["attached"] = choose_observers(load_settings(root=project_dir(ex))) if observe else []
        ex.observers.extend(state["attached"])
        return {}

    @ex.option_hook
    def read_options(options: dict[str, Any]) -> None:
        state["observe"] = not options.get("--unobserved")
        add_last_config_hook(ex, attach_observers)  # option hooks run once the experiment's file is loaded

    @ex.pre_run_hook
    def sigterm_ends_only_the_main_function_at_once(_run: Run) -> None:
        RUN_END.main_started()
        at_main_end(_run, RUN_END.recording)  # the first hook: it holds SIGTERM before the others' end work

    def answer_handoff() -> None:
        """Name the run in the file of the tracker command that started it (observers.origin.Handoff)."""
        if process_rank() > 0:
            return
        handoff = received_handoff()
        ref = next(filter(None, (observer.run_ref() for observer in state["attached"])), None)
        if handoff is not None and ref is not None:
            with contextlib.suppress(OSError):  # its folder is gone with the command: nobody waits for the answer
                handoff.answer(ref)

    @ex.pre_run_hook
    def record_origin_and_code(_run: Run) -> None:
        if process_rank() > 0:  # rank 0 records the run
            return
        handoff = received_handoff()
        if handoff is not None:
            _run.info.update(handoff.info)
            answer_handoff()  # now: a run killed later is still the command's to find
        tags = [*_run.info.get("tags", []), *given_tags(_run)]
        if tags:  # the info's tags become Omniboard's (observers.upload)
            _run.info["tags"] = list(dict.fromkeys(tags))
        arguments = handoff.rerun_arguments if handoff is not None else None
        problem = config_not_given(_run.config, _run.meta_info, f"run {run_id(_run)}", arguments)
        if problem:  # SystemExit: Sacred records the run as FAILED, and Python prints the line without a traceback
            raise SystemExit(f"error: {problem}")
        _run.info["higher_is_better"] = higher_is_better
        with tempfile.TemporaryDirectory(prefix="tracker-git-") as workdir:
            record_uncommitted_changes(_run, project_dir(ex), Path(workdir), skip=tracker_folders(project_dir(ex)))

    @ex.pre_run_hook
    def record_the_environment(_run: Run) -> None:
        if process_rank() == 0:
            record_environment(_run, Path(tempfile.gettempdir()))  # the run's own folder

    @ex.pre_run_hook
    def sample_system_metrics(_run: Run) -> None:
        if process_rank() == 0:
            # stops when the run ends
            start_system_metrics(_run, load_settings(root=project_dir(ex)).system_metrics_s)

    @ex.pre_run_hook
    def store_the_origin_now(_run: Run) -> None:
        """After the hooks above: the stores get what they put in the info (a trial's sweep and number, a rerun's
        source) now, not with the first heartbeat 10 s on; a run killed meanwhile is still found by its sweep or
        resume."""
        if process_rank() == 0:
            store_info_now(_run)

    def wrapped(run: Callable[P, R]) -> Callable[P, R]:
        # The last answer comes before the run's end work is over (RUN_END.finish acts on a SIGTERM held meanwhile).
        return _one_line_errors(_unknown_keys_as_user_error(_in_this_process(_then(run, answer_handoff))))

    wrap_run(ex, wrapped)
    wrap_run_commandline(ex, functools.partial(_commandline, ex))
    return ex


def project_dir(ex: Experiment) -> str:
    """The folder of `ex`'s project (its base_dir, which Sacred types as str or bytes)."""
    return os.fsdecode(ex.base_dir)


def _quiet(ex: Experiment) -> None:
    """Silence a rank above 0, which would print what rank 0 prints: its output, Sacred's log lines and warnings
    (tracebacks of its own failures still reach stderr)."""
    SETTINGS.CAPTURE_MODE = "no"
    logger = logging.getLogger(f"{os.fsdecode(ex.path)}.rank{process_rank()}")
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    ex.logger = logger  # type: ignore[assignment]
    sys.stdout = open(os.devnull, "w")
    warnings.simplefilter("ignore")


class SacredUserError(UserError, SacredError):
    """A UserError as Sacred's command line prints its own errors: one line, without a traceback. (UserError itself
    does not derive from Sacred's error, so that the `tracker` command starts without importing Sacred.)"""

    def __init__(self, message: str) -> None:
        SacredError.__init__(self, message, print_traceback=False)


# Sacred prints `module.Class: message`: the line reads `error: message`, as the tracker command's errors do.
SacredUserError.__name__ = SacredUserError.__qualname__ = "error"
SacredUserError.__module__ = "builtins"


def _in_this_process(run: Callable[P, R]) -> Callable[P, R]:
    """`run` (Sacred's Experiment.run) with Sacred's reads of captured output serialized (compat.sacred), and the
    temporary files of the run (anyone's, through tempfile) in one new folder of its process, removed at its end,
    or by `tracker sync` after a kill (a killed process cannot clean up); tempfile's own folder is given back after."""
    @functools.wraps(run)
    def in_process_temp_dir(*args: P.args, **kwargs: P.kwargs) -> R:
        lock_captured_output()
        # a run within a run: the outer one cleans up
        if tempfile.tempdir is not None and tempfile.tempdir in map(str, process_temp_dirs(os.getpid())):
            return run(*args, **kwargs)
        folder = str(make_process_temp_dir(os.getpid()))
        previous, tempfile.tempdir = tempfile.tempdir, folder
        RUN_END.begin(Path(folder))
        try:
            return run(*args, **kwargs)
        finally:
            tempfile.tempdir = previous
            RUN_END.finish()  # removes the folder; a SIGTERM received meanwhile ends the process now

    return in_process_temp_dir


def _then(run: Callable[P, R], after: Callable[[], None]) -> Callable[P, R]:
    """`run` (Sacred's Experiment.run), calling `after()` once it has returned or raised: its observers have
    stored the run's end by then."""
    @functools.wraps(run)
    def followed(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return run(*args, **kwargs)
        finally:
            after()

    return followed


def _one_line_errors(run: Callable[P, R]) -> Callable[P, R]:
    """`run` (Sacred's Experiment.run) raising any UserError (or CompatError) as a SacredUserError. Sacred has
    recorded the failed run, with the traceback, by then."""
    @functools.wraps(run)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return run(*args, **kwargs)
        except (UserError, CompatError) as error:
            if process_rank() > 0:
                raise SystemExit(1) from None  # rank 0 prints the same line
            if isinstance(error, SacredError):
                raise
            raise SacredUserError(str(error)) from error

    return checked


def _unknown_keys_as_user_error(run: Callable[P, R]) -> Callable[P, R]:
    """`run` raising Sacred's error for an unknown config key as a UserError naming the closest existing keys, and
    its error for a key MongoDB cannot store as a UserError naming a valid one."""
    @functools.wraps(run)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return run(*args, **kwargs)
        except KeyError as error:
            key = invalid_config_key(error)
            if key is None:
                raise
            valid = key.lstrip("$").replace(".", "_") or "name"
            raise UserError(f"config key {key!r} contains '.' or starts with '$', which MongoDB does not allow in "
                            f"keys; rename it, e.g. to {valid!r}") from None
        except ConfigAddedError as error:
            # The key is dotted from the top; the config is that of the ingredient whose config got it.
            key, config = unknown_config_key(error)
            keys = list(dotted_keys(config))
            added = max((k for k in keys if key == k or key.endswith("." + k)), key=len)
            prefix = key[: len(key) - len(added)]
            others = [prefix + k for k in keys if k != added]
            close = difflib.get_close_matches(key, others, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}?" if close else "print_config shows every key"
            raise UserError(f"{key} is not a config key; {hint}") from None

    return checked


def _commandline(ex: Experiment, run_commandline: Callable[P, R]) -> Callable[P, R]:
    """`ex`'s Sacred command line `run_commandline`, started once the experiment's imports are done, exiting 130 on
    Ctrl-C, with an output whose reader may go (`| tee log` and Ctrl-C) without failing the run, quiet on ranks above
    0, and ended by a SIGTERM outside the main function only once it has printed the outcome
    (observers.termination)."""

    @functools.wraps(run_commandline)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        imports_done()
        tolerate_closed_output()
        if process_rank() > 0:
            _quiet(ex)
        RUN_END.hold()  # a SIGTERM outside the main function waits until the outcome is printed
        try:
            return run_commandline(*args, **kwargs)
        except KeyboardInterrupt:  # Sacred has recorded the run as INTERRUPTED and re-raises it
            sys.exit(130)
        except SystemExit as refused:
            if process_rank() > 0 and refused.code == 1 and not RUN_END.main_ran:
                # Every rank refuses a bad config alike, and rank 0 prints why: a rank that left first would make
                # torchrun end rank 0 before it prints. torchrun ends this one once rank 0 has left.
                RUN_END.wait_for_sigterm(PEER_REPORT_S)
            raise
        finally:
            RUN_END.release()

    return run
