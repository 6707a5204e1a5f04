"""Stores uncommitted changes of the experiment's git repository with the run, so its code can be restored.

Untracked files that git does not ignore are changes too (a new module is one), so they go into the patch, and make
the run count as having uncommitted changes even when Sacred's `dirty` flag (which ignores them) says clean. They go
in only as code would: none whose name looks like a secret, none over MAX_UNTRACKED_FILE_BYTES, and at most
MAX_UNTRACKED_TOTAL_BYTES in all; what was left out, and why, is listed in the run's info (the first
LISTED_LEFT_OUT files, and their number), and one line says so.

Folders that hold an environment or a cache are neither code nor changes of it: a Python environment (`pyvenv.cfg`,
`conda-meta/`, e.g. `python -m venv .venv` or `uv venv` in the project), `node_modules/` and tools' caches are never
listed, whether .gitignore names them or not.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import git

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from sacred.run import Run

    # The `skip` folders, as str or as paths. Not Iterable[str | PathLike]: untracked_files replaces them by a tuple of
    # str, which mypy would then type as a tuple of that union.
    Folders = Iterable[str] | Iterable[os.PathLike[str]]

DIFF_ARTIFACT = "git_diff.patch"
# info key: the sha256 of the run's DIFF_ARTIFACT, which `tracker rerun --apply-diff` checks against the run's folder
DIFF_DIGEST_INFO = "git_diff_sha256"
UNTRACKED_INFO = "untracked_files"  # info key: {"included": [names], "left_out": [{"file": name, "why": ...}]}
MAX_UNTRACKED_FILE_BYTES = 1_000_000  # larger untracked files are data, not code
MAX_UNTRACKED_TOTAL_BYTES = 10_000_000
LISTED_LEFT_OUT = 20  # the run's info names this many left-out files, and counts the rest
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")  # what a folder holding a Python environment contains
CACHE_FOLDERS = ("__pycache__", "node_modules", ".cache", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox",
                 ".nox", ".ipynb_checkpoints", ".hypothesis")
# Matched against the lower-cased file name: keys, certificates, tokens and environment files.
SECRET_NAMES = (".env*", "*.pem", "*key*", "*.token", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.p12",
                "*.pfx", "*.jks", "*.kdbx", "*secret*", "*password*", "*credential*", ".netrc", ".pgpass", "*.ovpn")


@dataclass
class Changes:
    patch: str = ""  # what `git apply` restores on the commit; '' when there is nothing
    included: list[str] = field(default_factory=list)  # untracked files in the patch
    # Untracked files not in it, as {"file": name, "why": ...}: names hold dots, which MongoDB keys must not.
    left_out: list[dict[str, str]] = field(default_factory=list)

    @property
    def has_untracked(self) -> bool:
        return bool(self.included or self.left_out)


def uncommitted_changes(path: str | os.PathLike[str], skip: Folders = ()) -> Changes:
    """`git diff HEAD` plus the untracked files that may go in (see the module docstring), as one patch.

    `skip`: folders whose files are not changes of the code (the tracker's own records).
    """
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return Changes()
    changes = Changes(patch=repo.git.diff("HEAD", "--binary", "--", *_outside(repo, skip)))
    total = 0
    for name in untracked_files(repo, skip):
        file = os.path.join(work_tree(repo), name)
        size = os.path.getsize(file)
        why = _left_out_because(name, size, total)
        if why:
            changes.left_out.append({"file": name, "why": why})
            continue
        total += size
        changes.included.append(name)
        # `git diff --no-index` exits 1 when the files differ, which they always do here.
        changes.patch += "\n" + repo.git.diff("--no-index", "--binary", "--", "/dev/null", name, with_exceptions=False)
    changes.patch = changes.patch.strip() and changes.patch + "\n"
    return changes


def untracked_files(repo: git.Repo, skip: Folders = ()) -> Iterator[str]:
    """The untracked, not ignored files of `repo` (names relative to it), but for those in the `skip` folders and in
    environments and caches."""
    skip = tuple(os.path.realpath(folder) + os.sep for folder in skip)
    for name in _untracked_outside_environments(repo):
        file = os.path.join(work_tree(repo), name)
        if os.path.isfile(file) and not os.path.realpath(file).startswith(skip):
            yield name


def _untracked_outside_environments(repo: git.Repo) -> Iterator[str]:
    """Untracked names, but for those inside environments and caches. Git names a wholly untracked folder once
    (`--directory`), so a top-level environment's thousands of files are never listed; other folders are listed
    file by file, and a file inside an environment there is dropped."""
    caches = [f"--exclude={name}/" for name in CACHE_FOLDERS]
    listed = repo.git.ls_files("--others", "--exclude-standard", "--directory", "-z", *caches).split("\0")
    folders = [name for name in listed if name.endswith("/")]
    yield from (name for name in listed if name and not name.endswith("/"))
    is_environment = functools.cache(lambda folder: any(
        os.path.exists(os.path.join(work_tree(repo), folder, marker))
        for marker in ENVIRONMENT_MARKERS))
    wanted = [folder for folder in folders if not is_environment(folder.rstrip("/"))]
    if not wanted:
        return
    pathspecs = [f":(literal){folder}" for folder in wanted]  # a folder's name is no pattern
    for name in repo.git.ls_files("--others", "--exclude-standard", "-z", *caches, "--", *pathspecs).split("\0"):
        parents = [os.path.dirname(name)]
        while parents[-1]:
            parents.append(os.path.dirname(parents[-1]))
        if name and not any(is_environment(folder) for folder in parents[:-1]):
            yield name


def work_tree(repo: git.Repo) -> str:
    """The folder of `repo`'s files. GitPython types it as optional, for a bare repository; none here is bare."""
    assert repo.working_tree_dir is not None, f"{repo.git_dir} is a bare repository"
    return str(repo.working_tree_dir)


def _outside(repo: git.Repo, skip: Folders) -> list[str]:
    """Pathspecs for all of `repo` but the `skip` folders: tracked files there (committed records) are no code."""
    inside = []
    for folder in skip:
        relative = os.path.relpath(os.path.realpath(folder),
                                   os.path.realpath(work_tree(repo)))
        if relative != "." and not relative.startswith(os.pardir):
            inside.append(f":(exclude){relative}")
    return [".", *inside]


def _left_out_because(name: str, size: int, total: int) -> str | None:
    base = os.path.basename(name).lower()
    if any(fnmatch.fnmatch(base, pattern) for pattern in SECRET_NAMES):
        return "the name looks like a secret"
    if size > MAX_UNTRACKED_FILE_BYTES:
        return f"{size} bytes, over the {MAX_UNTRACKED_FILE_BYTES} bytes per file"
    if total + size > MAX_UNTRACKED_TOTAL_BYTES:
        return f"the untracked files would exceed {MAX_UNTRACKED_TOTAL_BYTES} bytes in all"
    return None


def record_uncommitted_changes(run: Run, path: str | os.PathLike[str], workdir: Path, skip: Folders = ()) -> None:
    """Attach the patch of uncommitted changes as an artifact, and list untracked files in the run's info."""
    changes = uncommitted_changes(path, skip)
    if changes.has_untracked:
        run.info[UNTRACKED_INFO] = {"included": changes.included, "left_out": changes.left_out[:LISTED_LEFT_OUT],
                                    "left_out_count": len(changes.left_out)}
    if changes.left_out:
        print(f"WARNING: {len(changes.left_out)} untracked files left out of {DIFF_ARTIFACT} (names like secrets, "
              f"or too large), listed in the run's info.{UNTRACKED_INFO}; add them to .gitignore to keep runs clean",
              file=sys.stderr)
    if changes.patch:
        file = workdir / DIFF_ARTIFACT
        file.write_bytes(changes.patch.encode())
        run.info[DIFF_DIGEST_INFO] = patch_digest(file.read_bytes())
        run.add_artifact(str(file), name=DIFF_ARTIFACT, content_type="text/x-diff")


def patch_digest(patch: bytes) -> str:
    """The sha256 (hex) of a patch's bytes."""
    return hashlib.sha256(patch).hexdigest()


def had_uncommitted_changes(recorded_repository: dict[str, Any], info: dict[str, Any]) -> bool:
    """Whether a run's code differed from its commit: Sacred's dirty flag, or untracked files (UNTRACKED_INFO)."""
    return bool(recorded_repository["dirty"] or info.get(UNTRACKED_INFO))


def has_recorded_changes(path: str | os.PathLike[str], info: dict[str, Any], skip: Folders = ()) -> bool:
    """Whether the checkout at `path` has the very uncommitted changes a run recorded in its `info` (the sha256 of
    its patch, and the untracked files left out of it), so that its code is the run's."""
    recorded = info.get(DIFF_DIGEST_INFO)
    if not recorded:
        return False
    changes = uncommitted_changes(path, skip)
    untracked = info.get(UNTRACKED_INFO) or {}
    return (patch_digest(changes.patch.encode()) == recorded
            and changes.left_out[:LISTED_LEFT_OUT] == untracked.get("left_out", [])
            and len(changes.left_out) == untracked.get("left_out_count", len(untracked.get("left_out", []))))


def is_dirty(repo: git.Repo, skip: Folders = ()) -> bool:
    """Whether a checkout differs from its commit, in the sense a run records: untracked files count, but no file in
    the `skip` folders does."""
    changed = repo.git.diff("HEAD", "--name-only", "--", *_outside(repo, skip))
    return bool(changed) or any(True for _ in untracked_files(repo, skip))
