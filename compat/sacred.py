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
- invalid_config_key: Sacred's KeyError for a config key that MongoDB cannot store names the key only in its text.
- run_id: a Run's id is its attribute `_id`.
- add_command_line_options: an Experiment takes options of its own only when it is created; Sacred parses the
  command line with one of its lists of options and applies those of another.
- add_last_config_hook: Sacred's config_hook decorator adds hooks in the order of the file; a hook that must run
  after all of them goes into the Experiment's list of hooks, once the file is loaded.
- wrap_run, wrap_run_commandline: Sacred's command line calls Experiment.run, and automain calls run_commandline,
  through the Experiment's attributes, so that replacing them there wraps every run.
- add_documented_config: Sacred documents a config entry only from a comment in a config function; an entry given
  as a value is documented through the ConfigDict's summary.
- store_info_now: Sacred hands a run's info to its observers only with a heartbeat, the first one 10 s after the
  start; what the pre-run hooks put there (a sweep trial's number, the run a rerun repeats) must be stored before a
  kill can come, or `tracker sweep --continue` and `tracker resume` cannot find the run.
- at_main_end: Sacred's post-run hooks run only after the main function returns; a Run calls its main function,
  after the pre-run hooks, through its attribute main_function.
- MONGO_PRIORITY: the priority of Sacred's MongoObserver, which an observer in its place takes, is a constant of a
  module that sacred.observers does not export.
- FileStorage: FileStorageObserver writes a run's files through methods of its own (save_json, save_cout,
  find_or_save, render_template) and keeps sources in one folder for all runs (source_dir, resource_dir).
"""
import functools
import os
import re
import threading
import warnings
from pathlib import Path

from compat import Package

with warnings.catch_warnings():  # Sacred 0.8.7 imports pkg_resources, which warns at every start (setuptools<81)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import sacred.arg_parser
    import sacred.dependencies
    from sacred.config import ConfigDict
    from sacred.observers import FileStorageObserver
    from sacred.observers.mongo import DEFAULT_MONGO_PRIORITY
    from sacred.run import Run
    from sacred.stdout_capturing import CapturedStdout
    from sacred.utils import IntervalTimer

SACRED = Package("sacred", ("0.8.7",), "compat/sacred.py")
MONGO_PRIORITY = DEFAULT_MONGO_PRIORITY
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


# Sacred 0.8.7's text (sacred.config.utils.assert_is_valid_key).
_MONGO_INVALID_KEY = re.compile(r'Invalid key "(.*)"\. Config-keys cannot contain "\." or start with "\$"')


def invalid_config_key(error):
    """The config key that Sacred's KeyError `error` refuses because MongoDB cannot store it, or None when `error` is
    another KeyError."""
    refused = _MONGO_INVALID_KEY.fullmatch(str(error.args[0])) if error.args else None
    return None if refused is None else refused.group(1)


def run_id(run):
    """The id that the observers gave the Sacred Run `run` (None when it has none)."""
    return SACRED.target(run, "_id")


def add_command_line_options(ex, options):
    """Give the Experiment `ex` the command-line `options` (made with sacred.commandline_options.cli_option)."""
    SACRED.target(ex, "all_cli_options").extend(options)
    SACRED.target(ex, "additional_cli_options").extend(options)


def add_last_config_hook(ex, hook):
    """Make `hook` the last config hook of the Experiment `ex` (once): call it from an option hook, when every
    other hook of the experiment's file is in place."""
    hooks = SACRED.target(ex, "config_hooks")
    if hook not in hooks:
        hooks.append(hook)


def wrap_run(ex, wrapper):
    """Make every run of the Experiment `ex`, from its command line too, go through wrapper(ex.run)."""
    ex.run = wrapper(SACRED.target(ex, "run"))


def wrap_run_commandline(ex, wrapper):
    """Make `ex`'s command line, from automain too, go through wrapper(ex.run_commandline)."""
    ex.run_commandline = wrapper(SACRED.target(ex, "run_commandline"))


def add_documented_config(ex, key, value, doc):
    """Add the config entry `key` = `value` to the Experiment `ex`, with `doc` as print_config shows it."""
    entry = ConfigDict({key: value})

    def config(fixed=None, preset=None, fallback=None):
        summary = entry(fixed, preset, fallback)
        summary.docs[key] = doc
        return summary

    SACRED.target(ex, "configurations").append(config)


def store_info_now(run):
    """Send the observers of `run` (a sacred Run, in a pre-run hook) a heartbeat now: its info, output and metrics."""
    SACRED.target(run, "_emit_heartbeat")()


def at_main_end(run, finish):
    """Call `finish()` once `run`'s (a sacred Run, in a pre-run hook) main function has returned or raised, before
    Sacred sends the run's last heartbeat (so what `finish` logs or adds is stored)."""
    main = SACRED.target(run, "main_function")

    def main_then_finish(*args):
        try:
            return main(*args)
        finally:
            finish()

    run.main_function = main_then_finish


class FileStorage(FileStorageObserver):
    """Sacred's FileStorageObserver, each of whose writes into a run's folder goes through write_file, and whose
    sources and resources go into the run's folder `sources_folder` when that is set."""
    sources_folder: str | None = None  # None: Sacred's folder _sources/ beside the runs, shared by all of them
    WRITES = ("save_json", "save_cout", "find_or_save", "render_template", "save_sources")

    def __init__(self, *args, **kwargs):
        for name in self.WRITES:
            SACRED.target(FileStorageObserver, name)
        super().__init__(*args, **kwargs)

    def write_file(self, name, write, *args):
        """Write the run folder's file `name` (a source or resource: its base name) with write(*args); what that
        returns. A subclass may return None instead for a source or resource: it is then recorded where it is."""
        return write(*args)

    def save_json(self, obj, filename):
        self.write_file(filename, super().save_json, obj, filename)

    def save_cout(self):
        self.write_file("cout.txt", super().save_cout)

    def render_template(self):
        self.write_file("report", super().render_template)

    def find_or_save(self, filename, store_dir):
        stored = self.write_file(os.path.basename(filename), self.save_source, filename, store_dir)
        return Path(filename) if stored is None else stored

    def save_source(self, filename, store_dir):
        """Copy the source or resource file `filename` into `store_dir` unless it is there; where the copy is."""
        return Path(super().find_or_save(filename, store_dir))

    def save_sources(self, ex_info):
        if self.sources_folder is not None:
            self.source_dir = self.resource_dir = Path(self.dir) / self.sources_folder
        return super().save_sources(ex_info)
