"""Stores uncommitted changes of the experiment's git repository with the run, so its code can be restored."""
import os

import git

DIFF_ARTIFACT = "git_diff.patch"
MAX_UNTRACKED_BYTES = 1_000_000  # larger untracked files are data, not code


def uncommitted_changes(path):
    """`git diff HEAD` plus new untracked files, as one patch that `git apply` restores; '' when clean."""
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return ""
    patch = repo.git.diff("HEAD", "--binary")
    for name in repo.untracked_files:
        path = os.path.join(repo.working_tree_dir, name)
        if not os.path.isfile(path) or os.path.getsize(path) > MAX_UNTRACKED_BYTES:
            continue
        # `git diff --no-index` exits 1 when the files differ, which they always do here.
        patch += "\n" + repo.git.diff("--no-index", "--binary", "--", "/dev/null", name, with_exceptions=False)
    return patch.strip() and patch + "\n"


def record_uncommitted_changes(run, path, workdir):
    """Attach the patch of uncommitted changes as an artifact when the repository is dirty."""
    if not any(repo.get("dirty") for repo in run.experiment_info.get("repositories", [])):
        return
    patch = uncommitted_changes(path)
    if patch:
        file = workdir / DIFF_ARTIFACT
        file.write_text(patch)
        run.add_artifact(str(file), name=DIFF_ARTIFACT, content_type="text/x-diff")
