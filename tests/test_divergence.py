"""A run whose loss diverges to NaN on the embedded store: FAILED with one line, its NaN point stored, and the
store keeps taking runs and syncs afterwards; Omniboard serves the metrics of both."""
import json
import math
import re
import urllib.parse
import urllib.request

from conftest import free_port, metric, newest_run, run_experiment, run_tracker, start_board, with_token

QUICK = ["trainer.steps=20", "trainer.val_every=10", "trainer.log_every=5", "data.limit=1000", "trainer.progress=False"]


def served_values(url, token, run_id, name):
    query = urllib.parse.quote(json.dumps({"run_id": run_id, "name": name}))
    with urllib.request.urlopen(with_token(f"{url}/api/v1/Metrics?query={query}", token), timeout=30) as response:
        (served,) = json.load(response)
    return served["values"]


def test_diverging_run_fails_in_one_line_and_the_store_keeps_working(workdir, mongo_url, mongo_db, tmp_path):
    diverged = run_experiment(["with", "smoke", "lr=1e6", *QUICK], workdir, mongo_url, mongo_db.name)

    assert diverged.returncode == 1
    errors = [line for line in diverged.stderr.splitlines() if "loss is" in line]
    assert len(errors) == 1 and re.search(r"loss is nan at step \d+; try a lower lr", errors[0]), diverged.stderr
    failed = newest_run(mongo_db)
    assert failed["status"] == "FAILED"
    # Omniboard's Captured Out ends with the error, as the terminal did.
    assert re.search(r"UserError: loss is nan at step \d+; try a lower lr.*\n$", failed["captured_out"]), \
        failed["captured_out"]
    assert any(math.isnan(value) for value in metric(mongo_db, failed["_id"], "train.loss").values())

    normal = run_experiment(["with", "smoke", *QUICK], workdir, mongo_url, mongo_db.name)
    assert normal.returncode == 0, normal.stderr
    completed = newest_run(mongo_db)
    assert completed["status"] == "COMPLETED" and completed["_id"] != failed["_id"]

    offline = run_experiment(["with", "smoke", "lr=1e6", *QUICK], workdir, f"mongodb://127.0.0.1:{free_port()}",
                             "unused", runs_dir=tmp_path / "runs")
    assert offline.returncode == 1
    synced = run_tracker(["sync", str(tmp_path / "runs")], workdir, mongo_url, mongo_db.name)
    assert synced.returncode == 0 and "1 uploaded" in synced.stdout, synced.stdout + synced.stderr
    assert newest_run(mongo_db)["status"] == "FAILED"

    board, url = start_board(mongo_url, mongo_db.name)
    try:
        # JSON has no NaN: Omniboard serves it as null, as it does from MongoDB.
        assert None in served_values(url, board.token, failed["_id"], "train.loss")
        assert None not in served_values(url, board.token, completed["_id"], "train.loss")
    finally:
        board.kill()


def test_a_diverged_runs_summaries_show_its_nan(workdir, mongo_url, mongo_db, tmp_path):
    diverged = run_experiment(["with", "smoke", "lr=1e6", *QUICK], workdir, mongo_url, mongo_db.name)
    assert diverged.returncode == 1
    run_id = newest_run(mongo_db)["_id"]
    summaries = ["train.loss.last", "train.loss.min", "train.loss.max"]

    # From an empty folder, so that no other test's runs/ is listed.
    listed = run_tracker(["runs", "--metrics", ",".join(summaries), "--format", "csv"], tmp_path, mongo_url,
                         mongo_db.name)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert [row.split(",")[header.split(",").index(name)] for name in summaries] == ["nan", "nan", "nan"]

    compared = run_tracker(["compare", str(run_id), str(run_id)], tmp_path, mongo_url, mongo_db.name)
    assert compared.returncode == 0, compared.stderr
    for name in summaries:
        assert re.search(rf"^{re.escape(name)}\s+nan\s+nan$", compared.stdout, re.M), compared.stdout
