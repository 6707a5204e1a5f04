"""The image-folder experiment (experiments/images.py): files read by DataLoader workers, tracked, rerun and resumed
like CIFAR, with the data's fingerprint recorded and compared."""
import json
import re
import uuid

import numpy as np
import pymongo
import pytest
from conftest import COMPUTED_METRICS, interrupt_at, metric, newest_run, run_experiment, run_tracker
from PIL import Image

from runstore.layout import read_file

# A short deterministic run on the generated folder with 2 workers; dropout makes resuming depend on the global RNG.
TINY = ["with", "smoke", "data.num_workers=2", "data.batch_size=32", "model.width=8", "model.dropout=0.1",
        "trainer.deterministic=True", "trainer.steps=12", "trainer.val_every=4", "trainer.log_every=2",
        "trainer.print_every=2", "trainer.checkpoint_every=4", "trainer.progress=False"]


@pytest.fixture(scope="module")
def image_run(project_repo, mongo_url, workdir):
    """One TINY run made from the clean `project_repo`, recorded in MongoDB."""
    db_name = f"images_{uuid.uuid4().hex[:10]}"
    result = run_experiment(TINY, workdir, mongo_url, db_name, project=project_repo, experiment="images")
    assert result.returncode == 0, result.stdout + result.stderr
    client = pymongo.MongoClient(mongo_url)
    yield {"db": client[db_name], "db_name": db_name, "run": newest_run(client[db_name])}
    client.drop_database(db_name)
    client.close()


def assert_same_metrics(db, run_id, other_id):
    for name in COMPUTED_METRICS:
        values = metric(db, run_id, name)
        assert values, f"run {run_id} logged no {name}"
        assert values == metric(db, other_id, name), name


def write_folder(root, classes, images_per_class):
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for index in range(images_per_class):
            pixels = np.full((8, 8, 3), 40 * label + index, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def test_the_run_is_recorded_with_its_data_and_split(image_run):
    db, run = image_run["db"], image_run["run"]
    assert run["status"] == "COMPLETED" and run["experiment"]["name"] == "images"
    assert "Iteration 12/12" in run["captured_out"] and "val acc:" in run["captured_out"]
    data = run["info"]["data"]
    assert data["rule"] == "content" and data["counts"] == {"train": 1920, "val": 240, "test": 240}
    assert len(data["digest"]) == 16 and len(set(data["splits"].values())) == 3
    (split_file,) = [a["file_id"] for a in run["artifacts"] if a["name"] == "data_splits.json"]
    splits = json.loads(read_file(db, split_file))
    assert {name: len(paths) for name, paths in splits.items()} == data["counts"]
    assert not set(splits["train"]) & set(splits["val"]) and splits["val"][0].endswith(".png")
    assert {"train_samples.png", "confusion_matrix.png", "checkpoint.pt", "model_best.pt"} <= {
        a["name"] for a in run["artifacts"]}


def test_rerun_reproduces_the_run_exactly(image_run, project_repo, workdir, mongo_url):
    db, original = image_run["db"], image_run["run"]
    result = run_tracker(["rerun", str(original["_id"])], workdir, mongo_url, image_run["db_name"],
                         project=project_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    rerun = newest_run(db)
    assert rerun["info"]["rerun_of"] == original["_id"] and rerun["info"]["data"] == original["info"]["data"]
    assert_same_metrics(db, rerun["_id"], original["_id"])
    assert rerun["result"] == original["result"]


def test_interrupted_run_with_workers_resumes_to_the_uninterrupted_result(image_run, project_repo, workdir,
                                                                          mongo_url):
    db, original = image_run["db"], image_run["run"]
    returncode, output = interrupt_at(r"Iteration\s+4/12", [*TINY, f"seed={original['config']['seed']}"], workdir,
                                      mongo_url, image_run["db_name"], project_repo, experiment="images")
    assert returncode == 130, output
    stopped_at = int(re.search(r"Stopped by SIGINT at step (\d+)/12", output).group(1))
    assert 4 <= stopped_at < 12  # mid-epoch: an epoch is 60 steps
    interrupted = newest_run(db)

    result = run_tracker(["resume", str(interrupted["_id"])], workdir, mongo_url, image_run["db_name"],
                         project=project_repo)

    assert result.returncode == 0, result.stdout + result.stderr
    resumed = newest_run(db)
    assert resumed["status"] == "COMPLETED" and resumed["info"]["resumed_from"] == interrupted["_id"]
    for name in COMPUTED_METRICS:
        uninterrupted = metric(db, original["_id"], name)
        assert metric(db, interrupted["_id"], name) == {s: v for s, v in uninterrupted.items() if s <= stopped_at}
        assert metric(db, resumed["_id"], name) == {s: v for s, v in uninterrupted.items() if s > stopped_at} != {}
    assert resumed["result"] == original["result"]


def test_compare_flags_runs_on_other_data_and_runs_filters_on_it(image_run, tmp_path, workdir, mongo_url):
    db, original = image_run["db"], image_run["run"]
    root = write_folder(tmp_path / "own", ["cat", "dog"], 10)
    result = run_experiment(["with", f"data.root={root}", "data.batch_size=4", "model.arch=simple", "model.width=4",
                             "trainer.steps=1", "trainer.progress=False", "data.val_fraction=0.2",
                             "data.test_fraction=0.2"], workdir, mongo_url, image_run["db_name"],
                            experiment="images")
    assert result.returncode == 0, result.stdout + result.stderr
    other = newest_run(db)
    assert other["info"]["data"]["counts"] == {"train": 12, "val": 4, "test": 4}

    compared = run_tracker(["compare", str(original["_id"]), str(other["_id"])], workdir, mongo_url,
                           image_run["db_name"])
    assert compared.returncode == 0, compared.stderr
    assert original["info"]["data"]["digest"] in compared.stdout and other["info"]["data"]["digest"] in compared.stdout
    assert f"WARNING: runs {original['_id']}, {other['_id']} trained on different data" in compared.stdout

    listed = run_tracker(["runs", "--where", f"info.data.digest={other['info']['data']['digest']}", "--format",
                          "json"], workdir, mongo_url, image_run["db_name"])
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == [other["_id"]]


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "is not a folder; point it at an image folder"),
    (lambda root: (root / "notes.txt").write_text("no images") and root, "is not an image folder"),
    (lambda root: (write_folder(root, ["cat"], 2) / "dog").mkdir() or root, "class folder 'dog' holds no PNG"),
    (lambda root: write_folder(root / "train", ["cat"], 2).parent, "has train/ but no val/"),
])
def test_a_root_that_is_not_an_image_folder_is_one_line(make, message, tmp_path, workdir, mongo_url, db_name):
    root = tmp_path / "root"
    root.mkdir()
    result = run_experiment(["with", f"data.root={make(root)}", "trainer.progress=False"], workdir, mongo_url,
                            db_name, experiment="images")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after Sacred's own log lines about the failed run
    assert last.startswith("error: ") and message in last, result.stderr
