"""README's "Your own experiment": its snippet, run from a fresh git repository outside experiments/, is tracked."""
import re
import subprocess
import sys

from conftest import REPO_ROOT, git, metric, newest_run, python_env, run_tracker


def readme_snippet():
    readme = (REPO_ROOT / "README.md").read_text()
    return re.search(r"<!-- own-experiment -->\n```python\n(.*?)```", readme, re.S)[1]


def test_readme_experiment_is_recorded_and_rerun_exactly(tmp_path, mongo_url, mongo_db):
    project = tmp_path / "my-research"
    project.mkdir()
    (project / "line.py").write_text(readme_snippet())
    git("init", "-q", cwd=project)
    git("add", "line.py", cwd=project)
    git("commit", "-q", "-m", "fit a line", cwd=project)

    result = subprocess.run(
        [sys.executable, "line.py", "with", "trainer.steps=200", "trainer.val_every=50", "trainer.progress=False"],
        cwd=project, env=python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name), capture_output=True, text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    run = newest_run(mongo_db)
    assert run["status"] == "COMPLETED" and run["experiment"]["name"] == "line"
    assert run["config"]["trainer"]["steps"] == 200 and run["config"]["noise"] == 0.1
    head = git("rev-parse", "HEAD", cwd=project).strip()
    assert {"url": f"git:/{project}", "commit": head, "dirty": False} in run["experiment"]["repositories"]
    assert "Iteration 200/200" in run["captured_out"]
    assert run["result"] < 0.2  # the noise's MAE is 0.08: the line is found
    # A clean tree, though the run's own record sat untracked in the project's runs/ while it ran.
    assert {a["name"] for a in run["artifacts"]} == {"model_best.pt", "model_last.pt", "results.json"}
    assert "untracked_files" not in run["info"]
    assert len(metric(mongo_db, run["_id"], "val.mae")) == 4

    # Another repository's run is rerun from within it: a rerun starts only the code of the checkout it runs from.
    rerun = run_tracker(["rerun", str(run["_id"])], project, mongo_url, mongo_db.name)

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    again = newest_run(mongo_db)
    assert again["info"]["rerun_of"] == run["_id"] and again["config"] == run["config"]
    for name in ("train.loss", "val.mae", "test.mae"):
        assert metric(mongo_db, again["_id"], name) == metric(mongo_db, run["_id"], name), name
