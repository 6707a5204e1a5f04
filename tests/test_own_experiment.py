"""README's "Your own experiment": its snippet, run from a fresh git repository outside experiments/, is tracked."""
import json
import platform
import re
import shutil
import subprocess
import sys
import uuid
from importlib import metadata

import pymongo
import pytest

from conftest import REPO_ROOT, git, metric, newest_run, python_env, run_tracker

from runstore.layout import read_file

WITHOUT_TRAINER = """
from observers.track import track
from sacred import Experiment

ex = track(Experiment("plain"))


@ex.automain
def main():
    return 1.0
"""


def readme_snippet():
    readme = (REPO_ROOT / "README.md").read_text()
    return re.search(r"<!-- own-experiment -->\n```python\n(.*?)```", readme, re.S)[1]


@pytest.fixture(scope="module")
def line_run(tmp_path_factory, mongo_url):
    """The README's line.py, committed in a fresh repository that has a virtual environment inside it, and run once."""
    project = tmp_path_factory.mktemp("my research") / "my-research"
    project.mkdir()
    (project / "line.py").write_text(readme_snippet())
    git("init", "-q", cwd=project)
    git("add", "line.py", cwd=project)
    git("commit", "-q", "-m", "fit a line", cwd=project)
    # The usual setup, not in .gitignore: thousands of untracked files that are no change of the code.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project / ".venv")], check=True, timeout=120)
    (project / "node_modules" / "left-pad").mkdir(parents=True)
    (project / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    db_name = f"line_{uuid.uuid4().hex[:10]}"
    result = subprocess.run(
        [sys.executable, "line.py", "with", "trainer.steps=200", "trainer.val_every=50", "trainer.progress=False"],
        cwd=project, env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name), capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    client = pymongo.MongoClient(mongo_url)
    yield {"project": project, "db": client[db_name], "db_name": db_name, "run": newest_run(client[db_name]),
           "process": result}
    client.drop_database(db_name)
    client.close()


def test_readme_experiment_is_recorded_and_rerun_exactly_with_a_venv_in_the_project(line_run, mongo_url):
    project, db, run = line_run["project"], line_run["db"], line_run["run"]
    assert run["status"] == "COMPLETED" and run["experiment"]["name"] == "line"
    assert run["config"]["trainer"]["steps"] == 200 and run["config"]["noise"] == 0.1
    head = git("rev-parse", "HEAD", cwd=project).strip()
    assert {"url": f"git:/{project}", "commit": head, "dirty": False} in run["experiment"]["repositories"]
    assert "Iteration 200/200" in run["captured_out"]
    assert run["result"] < 0.2  # the noise's MAE is 0.08: the line is found
    # A clean tree, though the run's own record sat untracked in the project's runs/ while it ran, and .venv/ and
    # node_modules/ are untracked and not ignored.
    assert {a["name"] for a in run["artifacts"]} == {"model_best.pt", "model_last.pt", "results.json",
                                                    "environment.json", "predictions.val.npz", "predictions.test.npz"}
    assert "untracked_files" not in run["info"] and "untracked" not in line_run["process"].stderr
    assert len(metric(db, run["_id"], "val.mae")) == 4

    # Another repository's run is rerun from within it, without --force: a rerun starts only the code of the
    # checkout it runs from.
    rerun = run_tracker(["rerun", str(run["_id"])], project, mongo_url, line_run["db_name"])

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    again = newest_run(db)
    assert again["info"]["rerun_of"] == run["_id"] and again["config"] == run["config"]
    for name in ("train.loss", "val.mae", "test.mae"):
        assert metric(db, again["_id"], name) == metric(db, run["_id"], name), name


def test_readme_experiment_saved_but_not_committed_is_rerun_without_force(tmp_path, mongo_url, mongo_db):
    # As the README says it: save line.py in a repository, run it, rerun it; line.py is an uncommitted change of both.
    project = tmp_path / "my research"
    project.mkdir()
    (project / "notes.md").write_text("ideas\n")
    git("init", "-q", cwd=project)
    git("add", "notes.md", cwd=project)
    git("commit", "-q", "-m", "notes", cwd=project)
    (project / "line.py").write_text(readme_snippet())
    env = python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name)
    first = subprocess.run([sys.executable, "line.py", "with", "trainer.steps=20", "trainer.val_every=10",
                            "trainer.progress=False"], cwd=project, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    run = newest_run(mongo_db)

    rerun = run_tracker(["rerun", str(run["_id"])], project, mongo_url, mongo_db.name)

    assert rerun.returncode == 0, rerun.stderr
    again = newest_run(mongo_db)
    assert again["info"]["rerun_of"] == run["_id"]
    assert again["info"]["git_diff_sha256"] == run["info"]["git_diff_sha256"]
    assert metric(mongo_db, again["_id"], "val.mae") == metric(mongo_db, run["_id"], "val.mae")


def test_load_model_gives_the_readme_experiments_network_and_names_where_to_call_it(line_run, mongo_url, tmp_path):
    """The README's experiment declares no task for rebuilding: its main gives the trainer one, and that is enough."""
    env = python_env(MONGO_URL=mongo_url, SACRED_DB=line_run["db_name"])
    run_id = line_run["run"]["_id"]
    slope = f"from tracker import load_model; print(load_model({run_id})[0].weight.item())"

    inside = subprocess.run([sys.executable, "-c", slope], cwd=line_run["project"], env=env, capture_output=True,
                            text=True, timeout=300)
    elsewhere = subprocess.run([sys.executable, "-c", slope], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=300)

    assert inside.returncode == 0, inside.stderr
    assert abs(float(inside.stdout) - 3) < 0.2  # y = 3x - 1
    assert inside.stderr == ""  # no pkg_resources warning either
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.strip().splitlines()[-1] == (
        f"runstore.errors.UserError: run {run_id} is a run of line.py in {line_run['project']}, whose code builds "
        f"its network; call load_model from within that folder (cd {line_run['project']})")


def test_a_run_without_the_trainer_records_its_environment(tmp_path, mongo_url, mongo_db):
    (tmp_path / "plain.py").write_text(WITHOUT_TRAINER)

    result = subprocess.run([sys.executable, "plain.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=python_env(MONGO_URL=mongo_url, SACRED_DB=mongo_db.name))

    assert result.returncode == 0, result.stderr
    run = newest_run(mongo_db)
    summary = run["info"]["environment"]
    assert summary["python"] == platform.python_version() and summary["torch"] == metadata.version("torch")
    assert summary["packages"]["sacred"] == metadata.version("sacred") and "playwright" not in summary["packages"]
    [artifact] = [a for a in run["artifacts"] if a["name"] == "environment.json"]
    environment = json.loads(read_file(mongo_db, artifact["file_id"]))
    assert environment["packages"]["playwright"] == metadata.version("playwright")  # installed, not imported
    assert {"cuda", "cudnn", "gpus", "platform"} <= set(environment)


def test_compare_shows_and_rerun_warns_of_environment_differences(failed_file_store_run, project_repo, workdir,
                                                                    mongo_url, db_name, tmp_path):
    """Two copies of a run, one made as if numpy and torch had had other versions."""
    same, older = tmp_path / "same", tmp_path / "older"
    shutil.copytree(failed_file_store_run, same)
    shutil.copytree(failed_file_store_run, older)
    info = json.loads((older / "info.json").read_text())
    recorded_torch = info["environment"]["torch"]
    info["environment"]["packages"]["numpy"] = "1.0.0"
    info["environment"]["torch"] = "1.13.0"
    (older / "info.json").write_text(json.dumps(info))

    compare = run_tracker(["compare", str(same), str(older)], workdir, mongo_url, db_name)
    rerun = run_tracker(["rerun", str(older)], workdir, mongo_url, db_name, project=project_repo)

    assert compare.returncode == 0, compare.stderr
    rows = {line.split()[0]: line.split()[1:] for line in compare.stdout.splitlines() if line.startswith("env.")}
    assert rows == {"env.packages.numpy": [metadata.version("numpy"), "1.0.0"],
                    "env.torch": [recorded_torch, "1.13.0"]}
    warnings = [line for line in rerun.stderr.splitlines() if "installed now" in line]
    assert warnings == [f"WARNING: run {older} ran with numpy 1.0.0; installed now: numpy {metadata.version('numpy')}"]
