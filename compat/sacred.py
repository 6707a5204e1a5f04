"""Sacred's private parts that this project uses, written for Sacred 0.8.7. Why each is needed:

- lock_captured_output: Sacred reads the captured-output buffer (seek, read, tell) and appends it to
  `Run.captured_out` from the heartbeat thread and from the main thread at a run's end without a lock, so overlapping
  reads skip or repeat output (likely with long heartbeats: a run printing 100 MB).
- look_up_git_once_per_repository: Sacred asks git about every source file (three git processes each, ~0.3 s of
  every start for this project's files) when an Ingredient or Experiment is created; the answer is the same for all
  files of a repository.
- wait_for_last_heartbeat: Sacred waits only 2 s for its last heartbeat, which carries the final metrics and output,
  before it reports the run's end; only the running threads tell which one is the heartbeat.
- convert_value: how Sacred reads a `with KEY=VALUE` value (private), for values given the same way to the tracker.
- unknown_config_key: Sacred's error for an unknown config key holds the key in an attribute of its own.
"""
import functools
import os
import threading
import warnings
from pathlib import Path

from compat import Package

with warnings.catch_warnings():  # Sacred 0.8.7 imports pkg_resources, which warns at every start (setuptools<81)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import sacred.arg_parser
    import sacred.dependencies
    from sacred.run import Run
    from sacred.stdout_capturing import CapturedStdout
    from sacred.utils import IntervalTimer

SACRED = Package("sacred", ("0.8.7",), "compat/sacred.py")
_output_lock = threading.RLock()


def lock_captured_output():
    """Serialize Sacred's reads of a run's captured output, in this process."""
    for owner, name in ((Run, "_get_captured_output"), (CapturedStdout, "get"), (CapturedStdout, "finalize")):
        method = SACRED.target(owner, name)
        if not getattr(method, "holds_output_lock", False):
            setattr(owner, name, _holding_output_lock(method))


def _holding_output_lock(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _output_lock:
            return method(*args, **kwargs)

    locked.holds_output_lock = True
    return locked


def look_up_git_once_per_repository():
    """Make Sacred's per-file git lookup answer from one lookup per repository, until look_up_git_per_file(); it
    matters while Ingredients and Experiments are created."""
    global _commit_of_file
    lookup = SACRED.target(sacred.dependencies, "get_commit_if_possible", optional=True)
    if lookup is not None and lookup is not commit_if_possible:
        _commit_of_file = lookup
        sacred.dependencies.get_commit_if_possible = commit_if_possible


def look_up_git_per_file():
    """Give Sacred back its own git lookup."""
    if sacred.dependencies.get_commit_if_possible is commit_if_possible:
        sacred.dependencies.get_commit_if_possible = _commit_of_file


_commit_of_file = sacred.dependencies.get_commit_if_possible


def commit_if_possible(filename, save_git_info):
    """(repository url or path, commit, dirty) of the repository holding `filename`, as Sacred's own lookup returns."""
    root = _repository_root(Path(filename).resolve().parent)
    if root is None or save_git_info is False:
        return None, None, None
    return _commit_of_repository(root, save_git_info)


@functools.cache
def _commit_of_repository(root, save_git_info):
    return _commit_of_file(os.path.join(root, "any-file"), save_git_info)


def _repository_root(folder):
    """The nearest folder from `folder` upwards that holds `.git` (a folder, or a file in a worktree), or None."""
    return next((str(path) for path in (folder, *folder.parents) if (path / ".git").exists()), None)


def wait_for_last_heartbeat(timeout_s):
    """Wait up to `timeout_s` for Sacred's heartbeat thread (of the run ending in this process) to finish."""
    for thread in threading.enumerate():
        if isinstance(thread, IntervalTimer) and thread is not threading.current_thread():
            thread.join(timeout_s)


def convert_value(text):
    """`text` read as Sacred reads the value of `with KEY=VALUE`: a Python literal, else the text itself."""
    return SACRED.target(sacred.arg_parser, "_convert_value")(text)


def unknown_config_key(error):
    """(the unknown key, dotted from the top; the config of the ingredient it was given to) of Sacred's
    ConfigAddedError."""
    return SACRED.target(error, "__conflicting_configs__")[0], error.__config__
