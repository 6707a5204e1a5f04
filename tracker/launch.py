"""Starts a recorded run's experiment again, with its stored config, on the code version the user chose.

The code is this checkout when it matches the run's commit, the run's own commit in a temporary git
worktree (--at-commit, with its uncommitted changes re-applied), or this checkout regardless (--force).
How an experiment process is started (experiment_env, run_in_foreground) is shared with `tracker sweep`'s trials.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import git
from sacred.config import save_config_file

from observers.environment import changed_packages
from observers.git_state import DIFF_ARTIFACT, had_uncommitted_changes, is_dirty
from observers.origin import RUN_INFO_ENV
from observers.plain_json import dotted_keys
from observers.settings import tracker_folders
from observers.errors import UserError


PROJECT_ROOT = Path(__file__).resolve().parent.parent  # this project's checkout, whose experiments/ hold today's code
CODE_CHOICE_HINT = "add --at-commit to run the original code, or --force to run this checkout's code"


def relaunch(stored, info, updates=(), at_commit=False, force=False, env=None):
    """Run `stored`'s experiment as a new run: its config, then `updates`; `info` goes into the new run's info.

    `env` adds environment variables for the experiment. Returns the experiment's exit status.
    """
    warn_of_changed_packages(stored)
    checkout, script, repo = locate(stored)
    with code_for(stored, checkout, repo, at_commit, force) as (code_dir, code_info):
        if not (code_dir / script).is_file():
            raise UserError(f"{stored.label} ran {script}, which is not in {code_dir}; {CODE_CHOICE_HINT}")
        child_env = experiment_env({**info, **code_info}, env, code_dir)
        if code_info:  # forced onto different code: Sacred would stop on config keys that code lacks
            check_config_keys(stored, code_dir / script, child_env)
        with tempfile.TemporaryDirectory(prefix="tracker-config-") as folder:
            config_file = Path(folder) / "stored_config.json"
            save_config_file(stored.config, str(config_file))
            return run_in_foreground([sys.executable, str(code_dir / script), "with", str(config_file), *updates],
                                     child_env)


def warn_of_changed_packages(stored):
    """One line when a package that `stored` had imported has another version (or none) installed now."""
    changed = changed_packages((stored.info.get("environment") or {}).get("packages", {}))
    if changed:
        then = ", ".join(f"{name} {recorded}" for name, (recorded, _) in changed.items())
        now = ", ".join(f"{name} {installed or '(not installed)'}" for name, (_, installed) in changed.items())
        print(f"WARNING: {stored.label} ran with {then}; installed now: {now}", file=sys.stderr)


def experiment_env(info, env=None, code_dir=None):
    """The environment for an experiment process: `info` for its run's info, `env` added, `code_dir` first on the path."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [code_dir and str(code_dir), os.environ.get("PYTHONPATH")])),
        RUN_INFO_ENV: json.dumps(info),
        **(env or {}),
    }


def locate(stored):
    """The checkout holding the run's experiment on this machine, its main file relative to it, and its git repository.

    For one of this project's experiments (its main file, relative to Sacred's base_dir, is in PROJECT_ROOT) the
    checkout is this project's, whose code this command runs; for another project's experiment, the git repository
    around the run's recorded base_dir, or around the current directory when that folder is not on this machine.
    """
    experiment = stored.doc["experiment"]
    base_dir = Path(experiment.get("base_dir") or ".")
    if (PROJECT_ROOT / experiment["mainfile"]).is_file():
        base_dir = PROJECT_ROOT
    elif not base_dir.is_dir():
        base_dir = Path.cwd()
    base_dir = base_dir.resolve()
    try:
        repo = git.Repo(base_dir, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        repo = None
    checkout = Path(repo.working_tree_dir).resolve() if repo else base_dir
    return checkout, (base_dir / experiment["mainfile"]).relative_to(checkout), repo


@contextlib.contextmanager
def code_for(stored, checkout, repo, at_commit, force):
    """Yield the folder holding the code to run, and what the new run's info should say about it."""
    original = original_repository(stored, repo)
    if original is not None:  # untracked files count as uncommitted changes, though Sacred's flag ignores them
        original = {**original, "dirty": had_uncommitted_changes(original, stored.info)}
    if at_commit:
        with original_code(stored, original, checkout, repo) as folder:
            yield folder, {}
        return
    problem = code_mismatch(stored.label, original, checkout, repo)
    if problem and not force:
        raise UserError(f"{problem}; {CODE_CHOICE_HINT}")
    # The new run records its own git state; when forced, it also notes the one it stands in for.
    yield checkout, {"forced_instead_of": original or {"commit": None}} if problem else {}


def original_repository(stored, repo):
    """The recorded git state of the repository holding the experiment's main file, or None if none was recorded.

    Sacred lists one repository per source file, so an experiment using this project's installed ingredients from
    another repository lists both; the main file's is the one named like this checkout (Sacred's own naming).
    """
    recorded = stored.doc["experiment"].get("repositories") or []
    if repo is not None:
        try:
            url = repo.remote().url
        except ValueError:  # no remote: Sacred names the repository by its folder
            url = "git:/" + repo.working_dir
        recorded = [entry for entry in recorded if entry["url"] == url] or recorded
    return recorded[0] if recorded else None


def code_mismatch(label, original, checkout, repo):
    """Why this checkout's code may differ from the original run's, or None when it is the same."""
    if original is None:
        return f"{label} recorded no git commit, so its code cannot be compared with this checkout"
    commit = original["commit"][:12]
    if repo is None:
        return f"this checkout ({checkout}) is not a git repository, so it cannot be compared with commit {commit}"
    head = repo.head.commit.hexsha[:12]
    if original["commit"] != repo.head.commit.hexsha:
        return f"{label} ran at commit {commit}, but this checkout is at commit {head}"
    if original["dirty"]:
        return f"{label} ran at commit {commit} with uncommitted changes (this checkout: commit {head})"
    if is_dirty(repo, tracker_folders(checkout)):
        return f"this checkout (commit {head}) has uncommitted changes that {label} (commit {commit}) did not have"
    return None


@contextlib.contextmanager
def original_code(stored, original, checkout, repo):
    """The original run's code in a temporary git worktree, removed afterwards."""
    if original is None or repo is None:
        problem = code_mismatch(stored.label, original, checkout, repo)
        raise UserError(f"{stored.label}'s code cannot be restored: {problem}; "
                        f"use --force to run this checkout's code")
    commit = original["commit"]
    try:
        repo.commit(commit)
    except (ValueError, git.BadName):
        raise UserError(
            f"commit {commit[:12]} of {stored.label} is not in this repository ({checkout}); "
            f"fetch it (git fetch) and try again"
        ) from None
    patch = stored.artifact(DIFF_ARTIFACT) if original["dirty"] else None
    if original["dirty"] and patch is None:
        raise UserError(
            f"{stored.label} ran with uncommitted changes but stored no {DIFF_ARTIFACT}, so they cannot be "
            f"restored; use --force to run this checkout's code"
        )
    with tempfile.TemporaryDirectory(prefix="tracker-code-") as folder:
        worktree = Path(folder) / "code"
        repo.git.worktree("add", "--detach", str(worktree), commit)
        try:
            if patch:
                patch_file = Path(folder) / DIFF_ARTIFACT
                patch_file.write_bytes(patch)
                try:
                    git.Repo(worktree).git.apply("--binary", str(patch_file))
                except git.GitCommandError:
                    raise UserError(
                        f"{stored.label}'s {DIFF_ARTIFACT} does not apply to commit {commit[:12]}; "
                        f"use --force to run this checkout's code"
                    ) from None
            print(f"Running the code of commit {commit[:12]}{' plus ' + DIFF_ARTIFACT if patch else ''} "
                  f"from a temporary git worktree", file=sys.stderr)
            yield worktree
        finally:
            repo.git.worktree("remove", "--force", str(worktree))


def check_config_keys(stored, script, env):
    """Refuse, in one line, stored config keys that the code at `script` no longer has."""
    with tempfile.TemporaryDirectory(prefix="tracker-defaults-") as folder:
        defaults_file = Path(folder) / "defaults.json"
        result = subprocess.run(
            [sys.executable, str(script), "save_config", "with", f"config_filename={defaults_file}"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{script} of this checkout does not start ({last_line}); {CODE_CHOICE_HINT}")
        defaults = json.loads(defaults_file.read_text())
    unknown = sorted(set(dotted_keys(stored.config)) - set(dotted_keys(defaults)))
    if unknown:
        raise UserError(
            f"{stored.label}'s config has {', '.join(unknown)}, which this checkout's code no longer has; "
            f"add --at-commit to run the original code"
        )


def run_in_foreground(command, env, started=None, ignored_signals=()):
    """Run `command` and return its exit status; it handles Ctrl-C itself, and a SIGTERM sent here is passed on.

    `started(process)` is called once it runs; `ignored_signals` are ignored by it (SLURM sends its warning signal
    to every process of a job, but only the job's own process, which calls this, handles it).
    """
    # Ctrl-C reaches the whole foreground process group, so the experiment sees it directly; this process must
    # only wait for it to store its checkpoint. (exec resets this handler, so the child still gets Ctrl-C.)
    previous_int = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        def ignore_signals():
            for number in ignored_signals:
                signal.signal(number, signal.SIG_IGN)

        process = subprocess.Popen(command, env=env, preexec_fn=ignore_signals if ignored_signals else None)
        if started:
            started(process)
        previous_term = signal.signal(signal.SIGTERM, lambda number, frame: process.send_signal(number))
        try:
            return process.wait()
        finally:
            signal.signal(signal.SIGTERM, previous_term)
    finally:
        signal.signal(signal.SIGINT, previous_int)
