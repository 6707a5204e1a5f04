"""The embedded run store (nx-27017 with localdb/nx_adapter.py) answers as MongoDB does where runs and Omniboard
notice: non-finite floats, dotted collection names, date arithmetic, projections of nested fields."""
import datetime
import json
import math
import urllib.parse
import urllib.request

from bson import ObjectId

from conftest import start_board, with_token


def test_nan_and_inf_metrics_round_trip_and_omniboard_serves_them(mongo_db, mongo_url, db_name):
    values = [0.5, math.nan, math.inf, -math.inf]
    mongo_db.runs.insert_one({"_id": 1, "status": "COMPLETED", "result": math.nan, "info": {"best": math.inf}})
    mongo_db.metrics.insert_one({"run_id": 1, "name": "train.loss", "steps": [0, 1, 2, 3], "values": values})
    # As Sacred appends points to a metric: $push with $each.
    mongo_db.metrics.update_one({"run_id": 1, "name": "train.loss"},
                                {"$push": {"steps": {"$each": [4, 5]}, "values": {"$each": [math.nan, 1.5]}}})
    mongo_db.metrics.insert_one({"run_id": 1, "name": "after", "values": [2.0]})  # later writes are not poisoned

    stored = mongo_db.metrics.find_one({"name": "train.loss"})["values"]
    assert stored[0] == 0.5 and math.isnan(stored[1]) and stored[2:4] == [math.inf, -math.inf]
    assert math.isnan(stored[4]) and stored[5] == 1.5
    run = mongo_db.runs.find_one({"_id": 1})
    assert math.isnan(run["result"]) and run["info"]["best"] == math.inf
    assert mongo_db.metrics.find_one({"name": "after"})["values"] == [2.0]

    board, url = start_board(mongo_url, db_name)
    try:
        query = urllib.parse.quote(json.dumps({"run_id": 1, "name": "train.loss"}))
        metrics_url = with_token(f"{url}/api/v1/Metrics?query={query}", board.token)
        with urllib.request.urlopen(metrics_url, timeout=30) as response:
            (served,) = json.load(response)
        # JSON has no NaN or Infinity: Omniboard serves them as null, as it does from MongoDB.
        assert served["values"] == [0.5, None, None, None, None, 1.5]
    finally:
        board.kill()


def test_dotted_collections_keep_omniboards_settings(mongo_db):
    for name in ("omniboard.settings", "omniboard.columns", "omniboard.metric.columns", "omniboard.custom.columns",
                 "omniboard.config.columns"):
        mongo_db[name].insert_one({"name": "timezone", "value": "Europe/Berlin"})
        mongo_db[name].update_one({"name": "timezone"}, {"$set": {"value": "Asia/Tokyo"}})
        assert [doc["value"] for doc in mongo_db[name].find({"name": "timezone"})] == ["Asia/Tokyo"]
    assert "omniboard.metric.columns" in mongo_db.list_collection_names()


def test_durations_are_date_differences_in_milliseconds_and_dates_sort(mongo_db):
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    for run_id, minutes in ((1, 3), (2, 1)):
        mongo_db.runs.insert_one({"_id": run_id, "start_time": start,
                                  "heartbeat": start + datetime.timedelta(minutes=minutes)})
    pipeline = [{"$project": {"start_time": 1, "heartbeat": 1}},  # as Omniboard's runs table asks
                {"$addFields": {"duration": {"$subtract": ["$heartbeat", "$start_time"]}}},
                {"$sort": {"duration": 1}}]
    assert [(run["_id"], run["duration"]) for run in mongo_db.runs.aggregate(pipeline)] == [(2, 60_000), (1, 180_000)]
    by_heartbeat = [{"$project": {"heartbeat": 1}}, {"$sort": {"heartbeat": -1}}]  # Omniboard's sorting by a date
    assert [run["_id"] for run in mongo_db.runs.aggregate(by_heartbeat)] == [1, 2]


def test_projections_of_nested_fields_are_nested(mongo_db):
    mongo_db.runs.insert_one({"_id": 1, "experiment": {"name": "cifar", "sources": [["a.py", 7]]}, "status": "X"})
    assert mongo_db.runs.find_one({}, {"experiment.sources": 1}) == {"_id": 1, "experiment": {"sources": [["a.py", 7]]}}


def test_a_listing_find_answers_as_mongodb_does(mongo_db):
    # tracker runs' query: no filter, an inclusion projection (the embedded store answers it from SQL).
    started, source = datetime.datetime(2026, 1, 1, 12, 0, 0, 123000), ObjectId()
    mongo_db.runs.insert_many([
        {"_id": 1, "status": "COMPLETED", "result": 0.12345678901234568, "start_time": started, "info": {"best": 1e300},
         "experiment": {"name": "cifar", "sources": [["a.py", source]]}, "config": {"lr": 0.01, "model": {"w": 8}},
         "captured_out": "x" * 10_000},
        {"_id": 2, "status": "FAILED", "result": None, "config": {"lr": math.inf}, "info": {"best": -math.inf}},
    ])
    projection = {"status": 1, "result": 1, "start_time": 1, "experiment.name": 1, "experiment.sources": 1,
                  "config": 1, "info.best": 1}
    first, second = mongo_db.runs.find({}, projection)
    assert first == {"_id": 1, "status": "COMPLETED", "result": 0.12345678901234568, "start_time": started,
                     "experiment": {"name": "cifar", "sources": [["a.py", source]]}, "info": {"best": 1e300},
                     "config": {"lr": 0.01, "model": {"w": 8}}}
    assert second.pop("result", None) is None  # the embedded store leaves a null field out
    assert second == {"_id": 2, "status": "FAILED", "config": {"lr": math.inf}, "info": {"best": -math.inf}}
    assert [run["_id"] for run in mongo_db.runs.find({"status": "FAILED"}, projection)] == [2]


def test_a_listing_find_sees_every_later_write(mongo_db):
    # The embedded store answers listings from an index it keeps: it must follow inserts, updates and deletes, and
    # listings of other fields in turn.
    listing, other = {"status": 1, "config.lr": 1}, {"result": 1}
    mongo_db.runs.insert_many([{"_id": 1, "status": "RUNNING", "config": {"lr": 0.1}, "result": None},
                               {"_id": 2, "status": "RUNNING", "config": {"lr": 0.2}}])
    assert list(mongo_db.runs.find({}, listing)) == [{"_id": 1, "status": "RUNNING", "config": {"lr": 0.1}},
                                                     {"_id": 2, "status": "RUNNING", "config": {"lr": 0.2}}]
    mongo_db.runs.update_one({"_id": 1}, {"$set": {"status": "COMPLETED", "result": 0.9, "config.lr": 0.3}})
    mongo_db.runs.delete_one({"_id": 2})
    mongo_db.runs.insert_one({"_id": 3, "status": "QUEUED", "config": {}})
    assert list(mongo_db.runs.find({}, other)) == [{"_id": 1, "result": 0.9}, {"_id": 3}]
    assert list(mongo_db.runs.find({}, listing)) == [{"_id": 1, "status": "COMPLETED", "config": {"lr": 0.3}},
                                                     {"_id": 3, "status": "QUEUED", "config": {}}]


def test_a_listing_find_projects_through_arrays_and_gridfs_as_mongodb_does(mongo_db):
    mongo_db.runs.insert_one({"_id": 1, "artifacts": [{"name": "a", "file_id": 5}, {"name": "b", "file_id": 6}, 7]})
    assert list(mongo_db.runs.find({}, {"artifacts.file_id": 1})) == [{"_id": 1, "artifacts": [{"file_id": 5},
                                                                                                {"file_id": 6}]}]
    at = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)
    mongo_db.runs.insert_one({"_id": 2, "artifacts": 5, "info": {"at": at, "seen": [1, {"at": at}]}})
    assert list(mongo_db.runs.find({}, {"artifacts.file_id": 1, "info": 1})) == [
        {"_id": 1, "artifacts": [{"file_id": 5}, {"file_id": 6}]},
        {"_id": 2, "info": {"at": at, "seen": [1, {"at": at}]}},  # a scalar parent leaves nothing; dates anywhere
    ]
    mongo_db.fs.files.insert_one({"filename": "x.py", "length": 0})
    assert [f["filename"] for f in mongo_db.fs.files.find({}, {"filename": 1})] == ["x.py"]


def test_a_runs_metric_points_are_found_as_mongodb_finds_them(mongo_db):
    # The embedded store sends these equalities as $eq, which its index serves (adaptation 18).
    mongo_db.metric_points.create_index([("run_id", 1), ("name", 1), ("chunk", 1)], unique=True)
    mongo_db.metric_points.insert_many([
        {"run_id": run_id, "name": name, "chunk": chunk, "points": 10 * run_id + chunk}
        for run_id in (1, 7, 70) for name in ("train.loss", "val.acc") for chunk in (2, 0, 1)])
    mongo_db.metric_points.insert_one({"run_id": "7", "name": "train.loss", "chunk": 0, "points": -1})

    found = mongo_db.metric_points.find({"run_id": 7, "name": "train.loss"}).sort("chunk", 1)
    assert [(doc["chunk"], doc["points"]) for doc in found] == [(0, 70), (1, 71), (2, 72)]
    later = mongo_db.metric_points.find({"run_id": 7, "name": "val.acc", "chunk": {"$gte": 1}}).sort("chunk", -1)
    assert [doc["chunk"] for doc in later] == [2, 1]
    assert [doc["points"] for doc in mongo_db.metric_points.find({"run_id": "7"})] == [-1]
    assert mongo_db.metric_points.count_documents({"run_id": 70}) == 6


def test_an_upsert_or_delete_of_metric_points_acts_as_mongodb_does(mongo_db):
    # The uploader's upsert of a chunk, and a run's deletion (adaptation 18 sends their equalities as $eq).
    mongo_db.metric_points.create_index([("run_id", 1), ("name", 1), ("chunk", 1)], unique=True)
    for points in (5, 6):
        mongo_db.metric_points.update_one({"run_id": 3, "name": "val.acc", "chunk": 0}, {"$set": {"points": points}},
                                          upsert=True)
    mongo_db.metric_points.update_one({"run_id": 4, "name": "val.acc", "chunk": 0}, {"$set": {"points": 1}},
                                      upsert=True)
    stored = [{key: doc[key] for key in ("run_id", "name", "chunk", "points")} for doc in mongo_db.metric_points.find()]
    assert stored == [{"run_id": 3, "name": "val.acc", "chunk": 0, "points": 6},
                      {"run_id": 4, "name": "val.acc", "chunk": 0, "points": 1}]
    assert mongo_db.metric_points.delete_many({"run_id": 3}).deleted_count == 1
    assert [doc["run_id"] for doc in mongo_db.metric_points.find()] == [4]
