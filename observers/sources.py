"""Sacred's git details of a run's source files (repository, commit, dirty), looked up once per repository.

Sacred asks git for every source file on its own (three git processes each: ~0.3 s for this project's 22 files, at
every start); the answer is the same for all files of one repository.
"""
import functools
import os
from pathlib import Path

import sacred.dependencies

_commit_of_file = sacred.dependencies.get_commit_if_possible


def look_up_git_once_per_repository():
    """Make Sacred's per-file lookup answer from one lookup per repository; call before Ingredients are created."""
    sacred.dependencies.get_commit_if_possible = commit_if_possible


def commit_if_possible(filename, save_git_info):
    """(repository url or path, commit, dirty) of the repository holding `filename`, as Sacred's own lookup returns."""
    root = repository_root(Path(filename).resolve().parent)
    if root is None or save_git_info is False:
        return None, None, None
    return _commit_of_repository(root, save_git_info)


@functools.cache
def _commit_of_repository(root, save_git_info):
    return _commit_of_file(os.path.join(root, "any-file"), save_git_info)


def repository_root(folder):
    """The nearest folder from `folder` upwards that holds `.git` (a folder, or a file in a worktree), or None."""
    return next((str(path) for path in (folder, *folder.parents) if (path / ".git").exists()), None)
