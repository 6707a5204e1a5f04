"""The stores' contract: the same assertions against each place that keeps runs, read through RunStore and the database
calls the project makes. The file store (FolderStore, run folders as Sacred's file store writes them), the embedded
store (`tracker db`) and, when TEST_MONGO_URL is set, a real MongoDB (docs/testing.md). Runs are written directly, as
their observers write them: a run folder at once; a run document inserted at the start and then updated with `$set`,
as Sacred's MongoObserver and `tracker sync` update one."""
import datetime
import json
import os
import uuid

import pymongo
import pytest

from conftest import LocalMongoServer
from observers.upload import UploadError, ensure_unique_keys, highest_id
from runstore.query import listing_row
from runstore.run_store import FolderStore, MongoStore, mark_continued, newest_run_with_info
from runstore.settings import Settings

KINDS = ["folder", "embedded", *(["mongodb"] if os.environ.get("TEST_MONGO_URL") else [])]
# Whole milliseconds: what MongoDB keeps of a time.
START = datetime.datetime(2026, 11, 1, 9, 30, 0, 125000)


@pytest.fixture(scope="module")
def embedded_url(tmp_path_factory, mongo_url):
    """The URL of `tracker db`'s server: conftest's, unless TEST_MONGO_URL points the other tests elsewhere."""
    if not os.environ.get("TEST_MONGO_URL"):
        yield mongo_url
        return
    server = LocalMongoServer(tmp_path_factory.mktemp("embedded")).start()
    yield server.url
    server.stop()


class Store:
    """One kind of store: writes runs into it as their observer does, and reads them through RunStore."""

    def __init__(self, kind, url, tmp_path):
        self.kind = kind
        self.client = pymongo.MongoClient(url)
        runs_dir = tmp_path / "runs"
        runs_dir.mkdir()
        # A folder store's settings name a database without runs, a database's an empty runs folder.
        self.settings = Settings(mongo_url=url, db_name=f"contract_{uuid.uuid4().hex[:10]}", runs_dir=runs_dir)
        self.db = self.client[self.settings.db_name]
        self.store = FolderStore(runs_dir) if kind == "folder" else MongoStore(self.client, self.settings)

    def record(self, run_id, start=START, info=None, status="COMPLETED"):
        """Run `run_id`, started at `start`, its heartbeat 10 s and its end 20 s later."""
        heartbeat, stop = start + datetime.timedelta(seconds=10), start + datetime.timedelta(seconds=20)
        begun = {"status": "RUNNING", "start_time": start, "experiment": {"name": "contract"},
                 "host": {"hostname": "node1"}, "artifacts": []}
        ended = {"status": status, "heartbeat": heartbeat, "stop_time": stop, "result": run_id / 10}
        config, info = {"lr": run_id / 100, "seed": run_id}, {"pid": 1000 + run_id, **(info or {})}
        if self.kind == "folder":
            folder = self.settings.runs_dir / str(run_id)
            folder.mkdir()
            entry = {**begun, **ended}
            entry.update({name: entry[name].isoformat() for name in ("start_time", "heartbeat", "stop_time")})
            (folder / "run.json").write_text(json.dumps(entry))
            (folder / "config.json").write_text(json.dumps(config))
            (folder / "info.json").write_text(json.dumps(info))
        else:
            self.db.runs.insert_one({"_id": run_id, **begun, "config": config, "info": info})
            self.db.runs.update_one({"_id": run_id}, {"$set": ended})

    def open(self, run_id):
        return self.store.open(self.settings.runs_dir / str(run_id) if self.kind == "folder" else run_id)

    def ids_in_order(self):
        """The run ids in the store's own order: of its run folders, or of `_id` in the database."""
        if self.kind == "folder":
            return [int(os.path.basename(listing.id)) for listing in self.store.listings()]
        return [doc["_id"] for doc in self.db.runs.find({}, {"_id": 1}).sort("_id", pymongo.ASCENDING)]

    def newest_id(self):
        return self.ids_in_order()[-1] if self.kind == "folder" else highest_id(self.db.runs)

    def close(self):
        self.client.drop_database(self.settings.db_name)
        self.client.close()


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    url = request.getfixturevalue("embedded_url" if request.param in ("folder", "embedded") else "mongo_url")
    store = Store(request.param, url, tmp_path)
    yield store
    store.close()


def test_run_10_comes_after_run_9(store):
    for run_id in range(1, 12):
        store.record(run_id)
    assert store.ids_in_order() == list(range(1, 12))
    assert store.newest_id() == 11
    if store.kind != "folder":
        assert store.db.runs.find_one(sort=[("_id", pymongo.DESCENDING)])["_id"] == 11


def test_times_come_back_as_naive_utc_datetimes_in_their_order(store):
    store.record(1)
    run = store.open(1)
    times = [run.doc[name] for name in ("start_time", "heartbeat", "stop_time")]
    assert times == [START, START + datetime.timedelta(seconds=10), START + datetime.timedelta(seconds=20)]
    (listing,) = store.store.listings()
    assert [listing.doc[name] for name in ("start_time", "heartbeat", "stop_time")] == times
    row = listing_row(listing)
    assert (row["start"], row["stop"], row["duration_s"], row["status"]) == (times[0], times[2], 20.0, "COMPLETED")
    if store.kind != "folder":  # the server computes with them as dates too: Omniboard's Duration column
        duration = [{"$project": {"ms": {"$subtract": ["$stop_time", "$start_time"]}}}]
        assert [doc["ms"] for doc in store.db.runs.aggregate(duration)] == [20_000]


def test_a_listing_holds_every_run_with_its_config_info_and_result(store):
    for run_id in (1, 2, 3):
        store.record(run_id, status="FAILED" if run_id == 2 else "COMPLETED")
    listings = store.store.listings()
    rows = [listing_row(listing) for listing in listings]
    assert [row["status"] for row in rows] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert [row["config.lr"] for row in rows] == [0.01, 0.02, 0.03]
    assert [row["result"] for row in rows] == [0.1, 0.2, 0.3]
    assert [listing.info["pid"] for listing in listings] == [1001, 1002, 1003]


def test_the_newest_run_with_an_info_is_the_last_started_whatever_its_id(store):
    trial = {"sweep": {"id": 4, "trial": 2}}
    store.record(9, START + datetime.timedelta(hours=1), trial)  # continued later under a higher id, started first
    store.record(10, START, trial)
    store.record(11, START + datetime.timedelta(hours=2), {"sweep": {"id": 4, "trial": 3}})
    newest = newest_run_with_info({"sweep.id": 4, "sweep.trial": 2}, store.settings)
    assert newest.doc["start_time"] == START + datetime.timedelta(hours=1) and newest.config["seed"] == 9


def test_an_update_keeps_the_other_fields_and_their_types(store):
    store.record(1)
    store.record(2)
    run = store.open(1)
    run.store.annotate(run, ["best"], "the one to keep")
    mark_continued(run, by=store.open(2).origin, settings=store.settings)
    again = store.open(1)
    assert again.store.annotations(again) == (["best"], "the one to keep")
    assert (again.info["pid"], again.info["continued_by"]) == (1001, store.open(2).origin)
    assert (again.config, again.doc["status"], again.doc["result"]) == (run.config, "COMPLETED", 0.1)
    assert [again.doc[name] for name in ("start_time", "heartbeat", "stop_time")] == [
        run.doc[name] for name in ("start_time", "heartbeat", "stop_time")]
    assert isinstance(again.doc["stop_time"], datetime.datetime)


@pytest.mark.parametrize("store", [kind for kind in KINDS if kind != "folder"], indirect=True)
def test_a_run_stored_twice_is_named_when_its_unique_index_is_made(store):
    store.db.runs.insert_many([{"_id": run_id, "local_copy": {"key": "node1/runs/1"}} for run_id in (1, 2)])
    with pytest.raises(UploadError, match="holds doubles of a run"):
        ensure_unique_keys(store.db)
