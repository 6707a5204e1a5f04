"""Starts a recorded run's experiment again, with its stored config, on the code version the user chose.

The code is this checkout when it matches the run's commit, the run's own commit in a temporary git
worktree (--at-commit; its stored patch of uncommitted changes is applied only with --apply-diff), or this checkout
regardless (--force).
A stored run is data: the script that runs is always a file of a local checkout (trusted_script, inside_checkout),
whatever paths the run's record holds (docs/security.md, "What a rerun trusts").
How an experiment process is started (experiment_env, run_in_foreground) is shared with `tracker sweep`'s trials.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, NamedTuple

import git
import compat.sacred  # noqa: F401  (first: it imports Sacred without its pkg_resources warning)
from sacred.config import save_config_file

from runstore.environment import changed_packages
from observers.git_state import (DIFF_ARTIFACT, DIFF_DIGEST_INFO, had_uncommitted_changes, has_recorded_changes,
                                 is_dirty, patch_digest)
from observers.origin import CONFIG_QUERY_ENV, HANDOFF_ENV, IGNORES_COMMAND_LINE_EXIT, Handoff
from runstore.plain_json import dotted_keys, dotted_values
from runstore.run_store import FolderStore
from runstore.settings import load_settings, tracker_folders
from runstore.errors import UserError
from runstore.shell import last_line

if TYPE_CHECKING:
    from runstore.run_ref import RunRef
    from runstore.run_store import StoredRun


PROJECT_ROOT = Path(__file__).resolve().parent.parent  # this project's checkout, whose experiments/ hold today's code
CODE_CHOICE_HINT = "add --at-commit to run the original code, or --force to run this checkout's code"
FORCE_HINT = "add --force to run this checkout's code"  # for a run without a commit (e.g. from an installed wheel)
# A stored patch is code that anyone who can write to the run store may have changed (docs/security.md).
DIRTY_CODE_HINT = ("add --at-commit --apply-diff to run the original code with its stored git_diff.patch, which is "
                   "code (its files, line counts and sha256 are shown before it runs), or --force to run this "
                   "checkout's code")
PATCH_IS_CODE = ("that patch is code, and anyone who can write to the run store may have changed it: read what it "
                 "changes above, then add --apply-diff to apply it, or --force to run this checkout's code")
NOT_RUN = "it was not run: tracker starts only scripts of the checkout it runs from"
OTHER_REPOSITORY = "a run of another repository is rerun from within a checkout of that repository"
SHOWN_VALUE_CHARS = 40  # a config value longer than this is cut in the line saying what a rerun runs


class Launched(NamedTuple):
    status: int  # the experiment's exit status
    run: RunRef | None  # the run it recorded, as it named itself (observers.origin.Handoff); None: it recorded none


def relaunch(stored: StoredRun, info: dict[str, Any], updates: Sequence[str] = (), at_commit: bool = False,
             force: bool = False, options: Sequence[str] = (), action: str = "rerun",
             apply_diff: bool = False) -> Launched:
    """Run `stored`'s experiment as a new run: its config, then `updates`; `info` goes into the new run's info.

    `options` are command-line options for the experiment (observers.origin.resume_argument); `action` ("rerun",
    "resume") names the run in the line saying what runs; `apply_diff`: with `at_commit`, apply the run's stored
    patch of uncommitted changes (original_code).
    """
    if apply_diff and not at_commit:
        raise UserError("--apply-diff applies a run's stored patch to its commit; give it with --at-commit")
    warn_of_changed_packages(stored)
    checkout, script, repo = trusted_script(stored)
    launcher = python_launcher(stored_world_size(stored))
    with code_for(stored, checkout, repo, at_commit, force, apply_diff) as (code_dir, code_info, commit):
        if not (code_dir / script).is_file():
            raise UserError(f"{stored.label} ran {script}, which is not in {code_dir}; {CODE_CHOICE_HINT}")
        # Code in a temporary worktree still records into the checkout's own store and RUNS_DIR, not the worktree's.
        child_env = experiment_env(env=store_env(checkout) if code_dir != checkout else None, code_dir=code_dir)
        defaults = experiment_defaults(code_dir / script, child_env)
        if defaults is not None:
            if code_info:  # forced onto different code: Sacred would stop on config keys that code lacks
                check_config_keys(stored, defaults)
            check_data_root(stored, defaults, updates)
        print(f"{action} of {stored.label}: {script} at {commit}; {differences(stored.config, defaults)}",
              file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="tracker-config-") as folder:
            config_file = Path(folder) / "stored_config.json"
            save_config_file(stored.config, str(config_file))
            arguments = [str(config_file), *updates]
            # The experiment checks that Sacred gave it exactly these (observers.origin.config_not_given).
            handoff = Handoff.create(Path(folder), {**info, **code_info}, arguments)
            command = [*launcher, str(code_dir / script), *options, "with", *arguments]
            older_code = pre_handoff_env(handoff) if code_dir != checkout else {}
            status = run_in_foreground(command, {**child_env, **handoff.env(), **older_code})
            return Launched(status, handoff.answered())


def stored_world_size(stored: StoredRun) -> int:
    """How many processes trained `stored` (info.world_size), if this machine can start as many, else UserError: a
    stored value is data, and reaches torchrun only as a checked number."""
    world_size, cores = stored.info.get("world_size", 1), os.cpu_count() or 1
    if type(world_size) is not int or world_size < 1:
        raise UserError(f"{stored.label}'s info.world_size {str(world_size)[:SHOWN_VALUE_CHARS]!r} is not a number "
                        f"of processes; it was not run")
    if world_size > cores:
        raise UserError(f"{stored.label} was trained by {world_size} processes, more than this machine's {cores} CPU "
                        f"cores; it was not run: run it on a machine with {world_size} or more")
    return world_size


def python_launcher(world_size: int) -> list[str]:
    """How to start a script: Python, or for a run trained by several processes (DDP), torchrun on this machine
    with as many, which a resumed run's checkpoint needs."""
    if world_size == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world_size}"]


def warn_of_changed_packages(stored: StoredRun) -> None:
    """One line when a package that `stored` had imported has another version (or none) installed now."""
    changed = changed_packages((stored.info.get("environment") or {}).get("packages", {}))
    if changed:
        then = ", ".join(f"{name} {recorded}" for name, (recorded, _) in changed.items())
        now = ", ".join(f"{name} {installed or '(not installed)'}" for name, (_, installed) in changed.items())
        print(f"WARNING: {stored.label} ran with {then}; installed now: {now}", file=sys.stderr)


def experiment_env(env: dict[str, str] | None = None, code_dir: Path | None = None) -> dict[str, str]:
    """The environment for an experiment process: this one's, `env` added, `code_dir` first on the path. A handoff
    reaches it only in `env`: one this process got (a tracker command run within a run) is not the child's."""
    return {
        **{name: value for name, value in os.environ.items() if name != HANDOFF_ENV},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(code_dir) if code_dir else "", os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }


def pre_handoff_env(handoff: Handoff) -> dict[str, str]:
    """The origin in the environment variables that the code of a commit from before observers.origin.Handoff reads
    instead, for --at-commit runs of such commits (a worktree's own observers/ come first on its path). That code
    names no run back: Launched.run is None."""
    return {"TRACKER_RUN_INFO": json.dumps(handoff.info, default=str),
            "TRACKER_RERUN_ARGUMENTS": json.dumps(handoff.rerun_arguments)}


def store_env(checkout: Path) -> dict[str, str]:
    """The environment that makes an experiment record where it would when started from `checkout`: its MONGO_URL,
    SACRED_DB and RUNS_DIR (runstore.settings)."""
    settings = load_settings(root=checkout)
    return {"MONGO_URL": settings.mongo_url, "SACRED_DB": settings.db_name, "RUNS_DIR": str(settings.runs_dir)}


def trusted_script(stored: StoredRun) -> tuple[Path, Path, git.Repo | None]:
    """The checkout whose code reruns `stored`, the run's main file relative to it, and the checkout's git repository.

    The checkout is chosen here, never by the stored run: this project's checkout (PROJECT_ROOT) for one of its
    experiments, else the git repository the command runs from (around the current directory). The run's
    experiment.mainfile and base_dir only name a file inside it; any that point elsewhere are refused. `tracker
    rerun` and `resume` start their script through this, and so must every command that runs a stored run's code.
    """
    experiment = stored.doc.get("experiment") or {}
    mainfile = relative_inside(stored.label, "experiment.mainfile", experiment.get("mainfile"))
    if (PROJECT_ROOT / mainfile).is_file():
        checkout, base_dir = PROJECT_ROOT, PROJECT_ROOT
    else:
        checkout, base_dir = repository_root(Path.cwd()), Path.cwd().resolve()
        recorded = experiment.get("base_dir")
        # A base_dir that is not on this machine is another machine's: the current directory stands for it.
        if isinstance(recorded, str) and Path(recorded).is_dir():
            base_dir = inside_checkout(stored.label, "experiment.base_dir", recorded, [checkout], fix=OTHER_REPOSITORY)
    script = inside_checkout(stored.label, "experiment.mainfile", base_dir / mainfile, [checkout])
    return checkout, script.relative_to(checkout), git_repository(checkout)


def trusted_checkouts() -> list[Path]:
    """The checkouts whose code a command may start: this project's, and the git repository it runs from."""
    return [PROJECT_ROOT, repository_root(Path.cwd())]


def relative_inside(label: str, field: str, value: object) -> PurePath:
    """`value`, a path read from a stored record, when it is relative and without `..`; refused otherwise."""
    if not isinstance(value, str) or not value or PurePath(value).is_absolute() or ".." in PurePath(value).parts:
        raise UserError(f"{label}'s {field} {value!r} is not a relative path inside a checkout; {NOT_RUN}")
    return PurePath(value)


def inside_checkout(label: str, field: str, path: str | PurePath, checkouts: Iterable[Path],
                    fix: str | None = None) -> Path:
    """`path` (from a stored record), resolved, when it lies inside one of `checkouts`; refused, naming `field`."""
    for checkout in checkouts:
        resolved = Path(checkout, path).resolve()  # links included: a file linking out is outside too
        if resolved.is_relative_to(checkout):
            return resolved
    raise UserError(f"{label}'s {field} {str(path)!r} is outside {' and '.join(map(str, checkouts))}; {NOT_RUN}"
                    + (f" ({fix})" if fix else ""))


def repository_root(folder: str | Path) -> Path:
    """The top folder of the git repository around `folder`, or `folder` itself outside any repository."""
    repo = git_repository(folder)
    return Path(repo.working_tree_dir).resolve() if repo and repo.working_tree_dir else Path(folder).resolve()


def git_repository(folder: str | Path) -> git.Repo | None:
    try:
        return git.Repo(folder, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


@contextlib.contextmanager
def code_for(stored: StoredRun, checkout: Path, repo: git.Repo | None, at_commit: bool, force: bool,
             apply_diff: bool = False) -> Iterator[tuple[Path, dict[str, Any], str]]:
    """Yield the folder holding the code to run, what the new run's info should say about it, and its commit."""
    original = original_repository(stored, repo)
    if original is not None:  # untracked files count as uncommitted changes, though Sacred's flag ignores them
        check_repository(stored, original, checkout, repo)
        original = {**original, "dirty": had_uncommitted_changes(original, stored.info)}
    if at_commit:
        with original_code(stored, original, checkout, repo, apply_diff) as (folder, commit):
            yield folder, {}, commit
        return
    problem = code_mismatch(stored.label, original, checkout, repo, stored.info)
    if problem and not force:
        hint = FORCE_HINT if original is None else DIRTY_CODE_HINT if original["dirty"] else CODE_CHOICE_HINT
        raise UserError(f"{problem}; {hint}")
    # The new run records its own git state; when forced, it also notes the one it stands in for.
    forced = {"forced_instead_of": original or {"commit": None}} if problem else {}
    yield checkout, forced, checkout_commit(checkout, repo)


def original_repository(stored: StoredRun, repo: git.Repo | None) -> dict[str, Any] | None:
    """The recorded git state of the repository holding the experiment's main file, or None if none was recorded.

    Sacred lists one repository per source file, so an experiment using this project's installed ingredients from
    another repository lists both; the main file's is the one named like this checkout (Sacred's own naming).
    """
    recorded = stored.doc["experiment"].get("repositories") or []
    if not isinstance(recorded, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("url"), str) and isinstance(entry.get("commit"), str)
        for entry in recorded
    ):
        raise UserError(f"{stored.label}'s experiment.repositories is not a list of {{url, commit, dirty}} entries, "
                        f"as Sacred records them; {NOT_RUN}")
    if repo is not None:
        recorded = [entry for entry in recorded if entry["url"] == local_url(repo)] or recorded
    return recorded[0] if recorded else None


def local_url(repo: git.Repo) -> str:
    try:
        return repo.remote().url
    except ValueError:  # no remote: Sacred names the repository by its folder
        return "git:/" + str(repo.working_dir)


def check_repository(stored: StoredRun, original: dict[str, Any], checkout: Path, repo: git.Repo | None) -> None:
    """Refuse a recorded repository that is another folder of this machine, whose commit this checkout lacks.

    Sacred names a repository without a remote by its folder (git:/PATH). One that exists here but is not this
    checkout, with a commit this checkout does not have, is another repository's code: it is never run.
    """
    folder = original["url"].removeprefix("git:/") if original["url"].startswith("git:/") else None
    if folder is None or not Path(folder).is_dir() or Path(folder).resolve() == checkout:
        return
    if repo is None or not has_commit(repo, original["commit"]):
        raise UserError(f"{stored.label}'s experiment.repositories names {original['url']!r} at commit "
                        f"{original['commit'][:12]}, a repository outside {checkout} whose commit it lacks; {NOT_RUN} "
                        f"({OTHER_REPOSITORY})")


def has_commit(repo: git.Repo, commit: str) -> bool:
    try:
        repo.commit(commit)
        return True
    except (ValueError, git.BadName):
        return False


def checkout_commit(checkout: Path, repo: git.Repo | None) -> str:
    """How the line saying what runs names this checkout's code: its commit, and whether it has changes."""
    if repo is None:
        return f"{checkout} (not a git repository)"
    changes = " with uncommitted changes" if is_dirty(repo, tracker_folders(checkout)) else ""
    return f"commit {repo.head.commit.hexsha[:12]}{changes} of {checkout}"


def code_mismatch(label: str, original: dict[str, Any] | None, checkout: Path, repo: git.Repo | None,
                  info: dict[str, Any] | None = None) -> str | None:
    """Why this checkout's code may differ from the original run's, or None when it is the same: the same commit,
    and the same uncommitted changes as the run recorded in its `info` (e.g. its script, saved but not committed)."""
    if original is None:
        return f"{label} recorded no git commit, so its code cannot be compared with this checkout"
    commit = original["commit"][:12]
    if repo is None:
        return f"this checkout ({checkout}) is not a git repository, so it cannot be compared with commit {commit}"
    head = repo.head.commit.hexsha[:12]
    if original["commit"] != repo.head.commit.hexsha:
        return f"{label} ran at commit {commit}, but this checkout is at commit {head}"
    if original["dirty"]:
        if has_recorded_changes(checkout, info or {}, tracker_folders(checkout)):
            return None
        return f"{label} ran at commit {commit} with uncommitted changes (this checkout: commit {head})"
    if is_dirty(repo, tracker_folders(checkout)):
        return f"this checkout (commit {head}) has uncommitted changes that {label} (commit {commit}) did not have"
    return None


@contextlib.contextmanager
def original_code(stored: StoredRun, original: dict[str, Any] | None, checkout: Path, repo: git.Repo | None,
                  apply_diff: bool = False) -> Iterator[tuple[Path, str]]:
    """The original run's code in a temporary git worktree, removed afterwards, and how to name its commit.

    A run with uncommitted changes stored them as a patch, which is code that anyone who can write to the run store
    may have changed: it is applied only with `apply_diff`, after show_patch has shown what it changes.
    """
    if original is None or repo is None:
        problem = code_mismatch(stored.label, original, checkout, repo)
        raise UserError(f"{stored.label}'s code cannot be restored: {problem}; "
                        f"use --force to run this checkout's code")
    commit = original["commit"]
    if not has_commit(repo, commit):
        raise UserError(
            f"commit {commit[:12]} of {stored.label} is not in this repository ({checkout}); "
            f"fetch it (git fetch) and try again"
        )
    patch = stored.artifact(DIFF_ARTIFACT) if original["dirty"] else None
    if original["dirty"] and patch is None:
        raise UserError(
            f"{stored.label} ran with uncommitted changes but stored no {DIFF_ARTIFACT}, so they cannot be "
            f"restored; use --force to run this checkout's code"
        )
    with tempfile.TemporaryDirectory(prefix="tracker-code-") as folder:
        patch_file = Path(folder) / DIFF_ARTIFACT
        if patch:  # shown before anything runs, so that the user chooses --apply-diff knowing what it changes
            patch_file.write_bytes(patch)
            show_patch(stored, patch, patch_numstat(stored, repo, patch_file, commit))
            if not apply_diff:
                raise UserError(f"{stored.label} ran at commit {commit[:12]} with uncommitted changes, stored as its "
                                f"{DIFF_ARTIFACT}; {PATCH_IS_CODE}")
        worktree = Path(folder) / "code"
        repo.git.worktree("add", "--detach", str(worktree), commit)
        try:
            if patch:
                try:
                    git.Repo(worktree).git.apply("--binary", str(patch_file))
                except git.GitCommandError:
                    raise UserError(
                        f"{stored.label}'s {DIFF_ARTIFACT} does not apply to commit {commit[:12]}; "
                        f"use --force to run this checkout's code"
                    ) from None
            yield worktree, (f"commit {commit[:12]}{' plus its ' + DIFF_ARTIFACT if patch else ''} "
                             f"in a temporary git worktree")
        finally:
            repo.git.worktree("remove", "--force", str(worktree))


def patch_numstat(stored: StoredRun, repo: git.Repo, patch_file: Path, commit: str) -> str:
    """`git apply --numstat` of the patch in `patch_file`: what it changes, read without applying it."""
    try:
        return repo.git.apply("--numstat", str(patch_file))
    except git.GitCommandError:
        raise UserError(f"{stored.label}'s {DIFF_ARTIFACT} is not a patch git can read, so it cannot be applied to "
                        f"commit {commit[:12]}; use --force to run this checkout's code") from None


def show_patch(stored: StoredRun, patch: bytes, numstat: str) -> None:
    """Print what `stored`'s patch changes (`numstat`: `git apply --numstat`'s lines), its sha256 and whether the
    run's own folder recorded the same one; UserError when that folder recorded another."""
    digest, (recorded, record) = patch_digest(patch), recorded_patch_digest(stored)
    lines = [line.split("\t", 2) for line in numstat.splitlines() if line.count("\t") >= 2]
    width = max((len(name) for _, _, name in lines), default=0)
    print(f"{stored.label}'s {DIFF_ARTIFACT} is code; applied to its commit, it changes:", file=sys.stderr)
    for added, deleted, name in lines:
        counts = "binary" if added == "-" else f"+{added} -{deleted}"
        print(f"  {name.ljust(width)}  {counts}", file=sys.stderr)
    print(f"  sha256 {digest}", file=sys.stderr)
    if record is None:
        print(f"  no folder of {stored.label} in RUNS_DIR recorded a sha256 to check it against (a run's folder is "
              f"removed once MongoDB holds it)", file=sys.stderr, flush=True)
    elif recorded == digest:
        print(f"  the same sha256 as the run recorded in {record}", file=sys.stderr, flush=True)
    else:
        raise UserError(f"{stored.label}'s {DIFF_ARTIFACT} has sha256 {digest}, but the run recorded {recorded} in "
                        f"{record}: it was changed since, and was not applied; use --force to run this checkout's code")


def recorded_patch_digest(stored: StoredRun) -> tuple[str, Path] | tuple[None, None]:
    """(the sha256 of its patch that `stored` recorded in its own folder, that folder's info.json), or (None, None)
    when no folder of the run is on this machine.

    The folder is the run itself (a file-store run), or the RUNS_DIR folder that a MongoDB run was uploaded from
    (runstore.local_run.LocalRun.key): MongoDB's copy of the info could have been changed along with the patch.
    """
    if isinstance(stored.key, Path):
        found = [(stored.info, stored.key)]
    else:
        key = (stored.doc.get("local_copy") or {}).get("key")
        found = [(run.info, folder) for folder, run in FolderStore(load_settings().runs_dir).runs() if run.key == key]
    for info, folder in found:
        if isinstance(info.get(DIFF_DIGEST_INFO), str):
            return info[DIFF_DIGEST_INFO], folder / "info.json"
    return None, None


def experiment_defaults(script: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """The config `script` has without any changes (seed included), or None when the script ignores its command line.

    A script that calls ex.run() itself (as a notebook does) would start a run even for save_config: while
    CONFIG_QUERY_ENV is set, the experiment stops before any run with IGNORES_COMMAND_LINE_EXIT (observers.track).
    """
    with tempfile.TemporaryDirectory(prefix="tracker-defaults-") as folder:
        defaults_file = Path(folder) / "defaults.json"
        result = subprocess.run(
            [sys.executable, str(script), "save_config", "with", f"config_filename={defaults_file}"],
            env={**env, CONFIG_QUERY_ENV: "1"}, capture_output=True, text=True, timeout=300,
        )
        if result.returncode == IGNORES_COMMAND_LINE_EXIT:
            return None
        if result.returncode != 0 or not defaults_file.is_file():
            raise UserError(f"{script} of this checkout does not start ({last_line(result.stderr)}); "
                            f"{CODE_CHOICE_HINT}")
        return json.loads(defaults_file.read_text())


def check_config_keys(stored: StoredRun, defaults: dict[str, Any]) -> None:
    """Refuse, in one line, stored config keys that the code (whose config is `defaults`) no longer has."""
    unknown = sorted(set(dotted_keys(stored.config)) - set(dotted_keys(defaults)))
    if unknown:
        raise UserError(
            f"{stored.label}'s config has {', '.join(unknown)}, which this checkout's code no longer has; "
            f"add --at-commit to run the original code"
        )


def check_data_root(stored: Any, defaults: dict[str, Any], updates: Collection[str]) -> None:
    """Refuse a stored data.root outside the experiment's default data folder, unless `updates` give data.root.

    Experiments download or generate data into data.root, so a stored one could make a rerun write anywhere: outside
    the project, or into a folder of the checkout that git does not ignore. Only the user's own command line widens it.
    """
    stored_data, default_root = stored.config.get("data"), (defaults.get("data") or {}).get("root")
    if not isinstance(stored_data, dict) or "root" not in stored_data or not isinstance(default_root, str):
        return
    stored_root = stored_data["root"]
    if stored_root == default_root:
        return
    if any(update.startswith("data.root=") for update in updates):
        return
    allowed = PurePath(default_root).parts
    parts = PurePath(stored_root).parts if isinstance(stored_root, str) else ()
    if not parts or parts[:len(allowed)] != allowed or ".." in parts:
        raise UserError(
            f"{stored.label}'s data.root {stored_root!r} is outside the experiment's data folder {default_root!r}; "
            f"it was not used, so that a rerun writes data only there: give it on the command line to use it "
            f"(with data.root=PATH)"
        )


def differences(config: dict[str, Any], defaults: dict[str, Any] | None) -> str:
    """The stored config's values that differ from the experiment's defaults, as key=value, for one line."""
    if defaults is None:
        return "the script ignores its command line (it calls ex.run itself), so its config is checked as it starts"
    default_values = dotted_values(defaults)
    changed = [(key, value) for key, value in dotted_values(config).items() if default_values.get(key) != value]
    shown = ", ".join(f"{key}={shorten(json.dumps(value))}" for key, value in changed)
    return f"config differing from its defaults: {shown}" if changed else "its default config"


def shorten(text: str) -> str:
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS - 1] + "…"


def run_in_foreground(command: list[str], env: dict[str, str],
                      started: Callable[[subprocess.Popen[bytes]], None] | None = None,
                      ignored_signals: Collection[int] = ()) -> int:
    """Run `command` and return its exit status; it handles Ctrl-C itself, and a SIGTERM sent here is passed on.

    `started(process)` is called once it runs; `ignored_signals` are ignored by it (SLURM sends its warning signal
    to every process of a job, but only the job's own process, which calls this, handles it).
    """
    # Ctrl-C reaches the whole foreground process group, so the experiment sees it directly; this process must
    # only wait for it to store its checkpoint. (exec resets this handler, so the child still gets Ctrl-C.)
    previous_int = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        def ignore_signals() -> None:
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
