"""A file store's listing (runstore.run_store.FolderStore.listings): what it reads of each run folder, and that a
store listed again reads only the folders that changed."""
import json

from runstore.local_run import RECORDED_KEY
from runstore.query import waiting_rows
from runstore.run_store import FolderStore


def write_run(folder, lr, recorded=None):
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"experiment": {"name": "cifar"}, "host": {"hostname": "node1"}, "status": "COMPLETED",
             "start_time": "2026-11-03T09:00:00", "stop_time": "2026-11-03T09:01:00", "artifacts": []}
    if recorded is not None:
        entry[RECORDED_KEY] = recorded
    (folder / "run.json").write_text(json.dumps(entry))
    (folder / "config.json").write_text(json.dumps({"lr": lr}))
    (folder / "metrics.json").write_text(json.dumps({"val.acc": {
        "steps": [1, 2], "values": [0.25, 0.75], "timestamps": ["2026-11-03T09:00:30", "2026-11-03T09:01:00"]}}))


def test_summaries_come_from_run_json_when_the_observer_recorded_them_else_from_metrics_json(tmp_path):
    write_run(tmp_path / "1", 0.1)
    summary = {"first": 0.5, "last": 0.5, "min": 0.5, "max": 0.5, "argmax": 9, "points": 1}
    write_run(tmp_path / "2", 0.2, {"metric_points": {"val.acc": 1}, "metric_summaries": {"val.acc": summary}})
    rows = {row["config.lr"]: row for row in waiting_rows(None, FolderStore(tmp_path))}
    assert (rows[0.1]["val.acc.max"], rows[0.1]["val.acc.argmax"]) == (0.75, 2)  # from metrics.json
    assert (rows[0.2]["val.acc.max"], rows[0.2]["val.acc.argmax"]) == (0.5, 9)  # as run.json records them


def test_a_store_listed_again_reads_only_the_folders_that_changed(tmp_path):
    for number in (1, 2):
        write_run(tmp_path / str(number), number / 10)
    store = FolderStore(tmp_path)
    first = {listing.config["lr"]: listing for listing in store.listings()}
    (tmp_path / "2" / "config.json").write_text(json.dumps({"lr": 0.5}))
    (tmp_path / "1" / "metrics.json").unlink()

    again = {listing.config["lr"]: listing for listing in store.listings()}

    assert sorted(again) == [0.1, 0.5]
    assert again[0.1] is not first[0.1] and again[0.1].summaries == {}  # metrics.json gone: read again
    write_run(tmp_path / "3", 0.3)
    third = {listing.config["lr"]: listing for listing in store.listings()}
    assert third[0.5] is again[0.5] and sorted(third) == [0.1, 0.3, 0.5]


def test_only_folders_holding_a_run_json_file_are_listed_numbered_ones_first_by_number(tmp_path):
    for name, lr in (("10", 0.3), ("9", 0.2), ("copied", 0.4), ("2", 0.1)):
        write_run(tmp_path / name, lr)
    (tmp_path / "11" / "run.json").mkdir(parents=True)  # a folder named run.json is no run
    (tmp_path / "12").mkdir()  # an empty folder
    (tmp_path / "notes.txt").write_text("not a folder")

    listings = FolderStore(tmp_path).listings()

    assert [(listing.id, listing.config["lr"]) for listing in listings] == [
        (str(tmp_path / "2"), 0.1), (str(tmp_path / "9"), 0.2), (str(tmp_path / "10"), 0.3),
        (str(tmp_path / "copied"), 0.4)]
    assert [row["config.lr"] for row in waiting_rows(None, FolderStore(tmp_path))] == [0.1, 0.2, 0.3, 0.4]
