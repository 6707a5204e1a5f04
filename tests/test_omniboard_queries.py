"""Omniboard 2.16.1's database queries on the embedded store (tracker db): answered as without its speed-ups, every
join answered, and anything unsupported answered with an error at once, the server answering on."""
import datetime
import threading
import time

import bson
import gridfs
import pymongo
import pytest
from neosqlite import Connection
from neosqlite.collection.expr_evaluator.python_evaluators.math_ops import MathPythonMixin
from neosqlite.collection.query_engine.python_aggregation_engine import execute_python_aggregation

from compat.neosqlite import subtract_dates_as_mongodb
from conftest import LocalMongoServer
from localdb import nx_adapter

# The columns that Omniboard's runs page selects on its first load (web/src/components/RunsTable/runsTable.js).
FIRST_SELECT = ("_id,heartbeat,experiment,command,host,stop_time,config,duration,result,start_time,resources,format,"
                "status,omniboard,metrics,meta").split(",")
NOW = datetime.datetime(2026, 12, 1, 12, 0)
PROBABLY_DEAD_MS = 120_000


def runs_page(select, sort_by="_id", order=-1, skip=0, limit=50, query=None, metric_columns=()):
    """The aggregation that Omniboard's server (dist/runs.response.js) sends for GET /api/v1/Runs."""
    names = [column["name"] for column in metric_columns]
    filtered = _query_columns(query or {})
    projection = {column: 1 for column in select}
    remove = {}
    for column in filtered:
        if not any(".".join(column.split(".")[:end]) in select for end in range(1, column.count(".") + 2)):
            projection[column], remove[column] = 1, 0
    wanted = [*select, *filtered]
    with_metrics = any(name in wanted for name in names)
    if with_metrics and "info" not in select:
        projection["info.metrics"] = 1
    added = {}
    if "duration" in wanted or "status" in wanted:
        for column in ("start_time", "heartbeat"):
            if column not in select:
                projection[column], remove[column] = 1, 0
    if "duration" in wanted:
        added["duration"] = {"$subtract": ["$heartbeat", "$start_time"]}
    if "status" in wanted:
        added["status"] = {"$cond": {
            "if": {"$and": [{"$eq": ["$status", "RUNNING"]},
                            {"$gt": [{"$subtract": [NOW, {"$ifNull": ["$heartbeat", "$start_time"]}]},
                                     PROBABLY_DEAD_MS]}]},
            "then": "PROBABLY_DEAD", "else": "$status"}}
    pipeline = [{"$project": projection}] + ([{"$addFields": added}] if added else [])
    metric_filter = any(name in filtered for name in names)
    if query and not metric_filter:
        pipeline.append({"$match": query})
    page = [{"$skip": skip}] if skip else []
    page += [{"$limit": limit}] if limit else []
    if sort_by not in names:
        pipeline += [{"$sort": {sort_by: order}}, *page]
    if with_metrics:
        pipeline += metric_join(sorted({column["metric_name"] for column in metric_columns}))
        for column in metric_columns:
            pipeline.append({"$addFields": {column["name"]: {
                f"${column['extrema']}": f"$metrics.{column['metric_name'].replace('.', '_')}.values"}}})
        remove["metrics"] = 0
    if query and metric_filter:
        pipeline.append({"$match": query})
    if remove:
        pipeline.append({"$project": remove})
    if with_metrics:
        pipeline.append({"$sort": {sort_by: order}})
    if sort_by in names:
        pipeline += page
    return pipeline


def metric_join(names):
    """Omniboard's join of each run with its metrics, from `$unwind` to `$project` (dist/runs.response.js)."""
    dotted_to_underscored = {"$reduce": {"input": {"$split": ["$metrics.name", "."]}, "initialValue": "",
                                         "in": {"$concat": ["$$value", {"$cond": [{"$eq": ["$$value", ""]}, "", "_"]},
                                                            "$$this"]}}}
    return [
        {"$unwind": {"path": "$info.metrics", "preserveNullAndEmptyArrays": True}},
        {"$lookup": {"from": "metrics", "let": {"metric_id": {"$toObjectId": "$info.metrics.id"}},
                     "pipeline": [{"$match": {"$expr": {"$and": [{"$eq": ["$_id", "$$metric_id"]},
                                                                 {"$in": ["$name", names]}]}}}],
                     "as": "metrics"}},
        {"$addFields": {"metrics": {"$arrayElemAt": ["$metrics", 0]}}},
        {"$group": {"_id": "$_id", "metrics": {"$push": {"$let": {
            "vars": {"metric_name": dotted_to_underscored},
            "in": {"$cond": [{"$gt": ["$metrics", None]}, {"k": "$$metric_name", "v": "$metrics"},
                             {"k": "empty", "v": ""}]}}}}, "runs": {"$first": "$$ROOT"}}},
        {"$addFields": {"runs.metrics": {"$arrayToObject": "$metrics"}}},
        {"$replaceRoot": {"newRoot": "$runs"}},
        {"$project": {"runs.metrics": 0}},
    ]


def _query_columns(query):
    """Omniboard's getAllColumnsFromQuery: the non-operator keys of a filter, through $and/$or lists."""
    columns = []
    for key, value in query.items():
        if isinstance(value, list):
            for item in value:
                columns += [column for column in _query_columns(item) if column not in columns]
        elif not key.startswith("$") and key not in columns:
            columns.append(key)
    return columns


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A server of its own, whose SQLite file the tests read too, filled with 40 varied runs and their metrics."""
    data_dir = tmp_path_factory.mktemp("omniboard-store")
    server = LocalMongoServer(data_dir).start()
    client = pymongo.MongoClient(server.url)
    db = client["board"]
    start = datetime.datetime(2026, 11, 1)
    for run_id in range(1, 41):
        began = start + datetime.timedelta(hours=run_id)
        metric_ids = []
        for name in ("val.acc", "train.loss"):
            values = [((run_id * 7 + step * 3) % 11) / 10 for step in range(5)]
            metric_ids.append({"name": name, "id": str(db.metrics.insert_one(
                {"run_id": run_id, "name": name, "steps": list(range(5)), "values": values}).inserted_id)})
        run = {
            "_id": run_id, "experiment": {"name": "cifar" if run_id % 3 else "signals", "sources": []},
            "command": "main", "host": {"hostname": f"node{run_id % 4}"}, "format": "MongoObserver-0.7.0",
            "start_time": began, "heartbeat": began + datetime.timedelta(seconds=(run_id * 37) % 500),
            "status": ("COMPLETED", "FAILED", "RUNNING")[run_id % 3], "resources": [],
            "config": {"lr": (0.1, 0.01, 0.05, 0.2)[run_id % 4], "model": {"arch": ("simple", "resnet18")[run_id % 2]},
                       "seed": run_id * 1000},
            "meta": {"command": "main"}, "info": {"metrics": metric_ids}, "captured_out": "x" * 2000,
            "omniboard": {"tags": ["sweep-1"] if run_id % 5 == 0 else []},
        }
        if run_id % 7:  # some runs have no result yet
            run["result"] = ((run_id * 13) % 17) / 17
        if run_id == 11:
            run["config"]["model"] = "simple"  # a parent that is not an object
        db.runs.insert_one(run)
    yield {"db": db, "file": data_dir / "board.db", "url": server.url}
    client.close()
    server.stop()


def without_speed_ups(store, pipeline, monkeypatch):
    """The pipeline answered by neosqlite's Python engine over the whole run documents (what tracker db did
    before answering from indexes), with this project's date arithmetic, as a reply carries it."""
    monkeypatch.setattr(MathPythonMixin, "_evaluate_arithmetic_python", MathPythonMixin._evaluate_arithmetic_python)
    subtract_dates_as_mongodb()  # undone by monkeypatch
    connection = Connection(str(store["file"]))
    try:
        docs = execute_python_aggregation(connection["runs"].query_engine, pipeline)
    finally:
        connection.close()
    return as_replied(docs)


def as_replied(docs):
    return bson.decode(nx_adapter._encode_reply({"docs": [nx_adapter._fix_document(doc) for doc in docs]}))["docs"]


PAGES = {
    "first load": dict(select=FIRST_SELECT),
    "sorted by a config key, second page": dict(select=FIRST_SELECT, sort_by="config.lr", order=1, skip=10, limit=10),
    "sorted by a nested config key": dict(select=FIRST_SELECT, sort_by="config.model.arch", order=1, limit=15),
    "sorted by duration": dict(select=FIRST_SELECT, sort_by="duration", order=-1, limit=10),
    "sorted by status": dict(select=FIRST_SELECT, sort_by="status", order=1, limit=40),
    "sorted by result": dict(select=FIRST_SELECT, sort_by="result", order=-1, limit=12),
    "filtered by status and lr": dict(select=FIRST_SELECT, query={"$and": [
        {"$or": [{"status": {"$eq": "COMPLETED"}}, {"status": {"$eq": "PROBABLY_DEAD"}}]},
        {"config.lr": {"$gte": 0.05}}]}),
    "filtered by tag": dict(select=["_id", "status", "omniboard"], query={"$and": [{"$or": [
        {"config.tags": {"$in": ["sweep-1"]}}, {"omniboard.tags": {"$in": ["sweep-1"]}}]}]}),
    "one sweep, as the README filters it": dict(select=FIRST_SELECT, query={"$and": [{"$or": [
        {"config.tags": {"$eq": "sweep-1"}}, {"omniboard.tags": {"$eq": "sweep-1"}}]}]}),
    "chosen columns, filtered by a column not shown": dict(
        select=["_id", "config.lr", "result"], sort_by="result", order=1, query={"$and": [{"host.hostname": "node1"}]}),
    "filtered by duration": dict(select=FIRST_SELECT, query={"$and": [{"duration": {"$gt": 200_000}}]}, limit=None),
}


@pytest.mark.parametrize("page", PAGES, ids=list(PAGES))
def test_the_runs_page_answers_as_without_the_speed_ups(store, page, monkeypatch):
    pipeline = runs_page(**PAGES[page])
    answered = list(store["db"].runs.aggregate(pipeline))
    assert answered, "the page shows runs"
    # MongoDB (and the embedded store) keep {"config": {}} for a projected "config.tags" that a run lacks; neosqlite's
    # engine leaves the parent out. Omniboard shows neither.
    assert without_empty_objects(answered) == without_empty_objects(without_speed_ups(store, pipeline, monkeypatch))


def without_empty_objects(docs):
    return [{key: value for key, value in doc.items() if value != {}} for doc in docs]


def test_the_runs_count_answers_as_without_the_speed_ups(store, monkeypatch):
    # GET /api/v1/Runs/count: no projection, the filter's columns computed, then $count.
    query = {"$and": [{"$or": [{"status": {"$eq": "PROBABLY_DEAD"}}, {"status": {"$eq": "FAILED"}}]}]}
    pipeline = [stage for stage in runs_page([], query=query, limit=None) if "$sort" not in stage] + [
        {"$count": "count"}]
    pipeline = [stage for stage in pipeline if stage != {"$project": {}}]
    (answered,) = store["db"].runs.aggregate(pipeline)
    assert answered == without_speed_ups(store, pipeline, monkeypatch)[0] and answered["count"] > 0
    assert list(store["db"].runs.aggregate([{"$count": "count"}])) == [{"count": 40}]


def test_a_metric_column_sorts_and_pages_runs_by_each_runs_best_value(store):
    columns = [{"name": "best_val_acc", "metric_name": "val.acc", "extrema": "max"}]
    select = [*FIRST_SELECT, "best_val_acc"]
    best = {metric["run_id"]: max(metric["values"]) for metric in store["db"].metrics.find({"name": "val.acc"})}
    by_best = sorted(best, key=lambda run_id: -best[run_id])  # stable: ties in the order the join gives
    page = list(store["db"].runs.aggregate(runs_page(select, "best_val_acc", -1, 5, 10, metric_columns=columns)))
    assert [run["best_val_acc"] for run in page] == [best[run_id] for run_id in by_best[5:15]]
    first = list(store["db"].runs.aggregate(runs_page(select, metric_columns=columns)))
    assert ([(run["_id"], run["best_val_acc"]) for run in first]
            == [(run_id, best[run_id]) for run_id in range(40, 0, -1)])
    assert all("metrics" not in run and "duration" in run for run in first)


def test_source_files_of_runs_are_joined_with_their_files(store):
    db = store["db"]
    files = gridfs.GridFS(db)
    first, second = files.put(b"print(1)\n", filename="/p/a.py"), files.put(b"x = 2\n", filename="/p/b.py")
    db.runs.update_one({"_id": 1}, {"$set": {"experiment.sources": [["a.py", first], ["b.py", second]]}})
    db.runs.update_one({"_id": 2}, {"$set": {"experiment.sources": [["a.py", first]]}})
    # Compare -> Source Files (dist/sourceFiles.response.js)
    pipeline = [
        {"$project": {"_id": 1, "experiment": 1}}, {"$match": {"_id": {"$in": [1, 2]}}},
        {"$unwind": {"path": "$experiment.sources", "preserveNullAndEmptyArrays": True}},
        {"$lookup": {"from": "fs.files",
                     "let": {"source_file_id": {"$toObjectId": {"$arrayElemAt": ["$experiment.sources", 1]}}},
                     "pipeline": [{"$match": {"$expr": {"$eq": ["$_id", "$$source_file_id"]}}}], "as": "files"}},
        {"$group": {"_id": "$_id", "files": {"$push": {"$arrayElemAt": ["$files", 0]}}}},
    ]
    joined = {run["_id"]: [(file["filename"], file["length"]) for file in run["files"]]
              for run in db.runs.aggregate(pipeline)}
    assert joined == {1: [("/p/a.py", 9), ("/p/b.py", 6)], 2: [("/p/a.py", 9)]}
    assert all(isinstance(file["uploadDate"], datetime.datetime)
               for run in db.runs.aggregate(pipeline) for file in run["files"])
    by_field = [{"$match": {"_id": 1}}, {"$unwind": "$experiment.sources"},
                {"$addFields": {"file_id": {"$arrayElemAt": ["$experiment.sources", 1]}}},
                {"$lookup": {"from": "fs.files", "localField": "file_id", "foreignField": "_id", "as": "file"}}]
    assert [[file["filename"] for file in run["file"]] for run in db.runs.aggregate(by_field)] == [["/p/a.py"],
                                                                                                   ["/p/b.py"]]
    db.runs.update_many({"_id": {"$in": [1, 2]}}, {"$set": {"experiment.sources": []}})


UNSUPPORTED = {
    "an unknown stage": [{"$frobnicate": {}}],
    "$graphLookup": [{"$graphLookup": {"from": "runs", "startWith": "$_id", "connectFromField": "_id",
                                       "connectToField": "_id", "as": "g"}}],
    "$out": [{"$out": "copy"}], "$merge": [{"$merge": "copy"}],
    "$geoNear": [{"$geoNear": {"near": [0, 0], "distanceField": "d"}}],
    "$setWindowFields": [{"$setWindowFields": {"output": {"n": {"$count": {}}}}}],
    "$densify": [{"$densify": {"field": "_id", "range": {"step": 1, "bounds": "full"}}}],
    "$collStats": [{"$collStats": {}}], "$search": [{"$search": {}}],
    "$where": [{"$match": {"$where": "true"}}], "$text": [{"$match": {"$text": {"$search": "x"}}}],
    "$function": [{"$addFields": {"f": {"$function": {"body": "x", "args": [], "lang": "js"}}}}],
    "$jsonSchema": [{"$match": {"$jsonSchema": {}}}], "$near": [{"$match": {"at": {"$near": [0, 0]}}}],
    "an unknown expression operator": [{"$addFields": {"f": {"$frobnicate": 1}}}],
    "an unknown query operator": [{"$match": {"a": {"$frobnicate": 1}}}],
    "a $lookup pipeline of another shape": [{"$lookup": {"from": "runs", "pipeline": [{"$match": {}}], "as": "x"}}],
    "a $lookup joining on more than equality": [{"$lookup": {
        "from": "metrics", "let": {"run": "$_id"}, "pipeline": [{"$match": {"$expr": {"$gt": ["$run_id", "$$run"]}}}],
        "as": "later"}}],
    "an empty stage": [{}], "a stage of two keys": [{"$match": {}, "$limit": 1}],
}


def test_each_unsupported_query_gets_an_error_within_a_second_and_the_server_answers_on(store):
    client = pymongo.MongoClient(store["url"], socketTimeoutMS=5000, maxPoolSize=2)  # a hang holds a connection
    db = client["board"]
    for name, pipeline in UNSUPPORTED.items():
        began = time.monotonic()
        with pytest.raises(pymongo.errors.OperationFailure) as error:
            list(db.runs.aggregate(pipeline))
            pytest.fail(f"{name} was answered")
        assert time.monotonic() - began < 1, f"{name}: answered after {time.monotonic() - began:.1f} s"
        assert "tracker db" in str(error.value), name
    assert db.command("ping")["ok"] == 1
    assert db.runs.count_documents({}) == 40
    client.close()


def test_concurrent_pages_and_writes_are_answered_right(store):
    # Requests run in threads of the server; none may change how another is answered.
    db, pipeline, errors = store["db"], runs_page(FIRST_SELECT, "duration", -1, 0, 40), []
    expected = [(run["_id"], run["duration"]) for run in db.runs.aggregate(pipeline)]

    def read():
        for _ in range(5):
            answered = [(run["_id"], run["duration"]) for run in db.runs.aggregate(pipeline)]
            if answered != expected:
                errors.append(answered)

    def write(run_id):
        for step in range(5):
            db.runs.update_one({"_id": run_id}, {"$set": {"info.step": step}, "$inc": {"info.writes": 1}})

    threads = [threading.Thread(target=read) for _ in range(3)] + [threading.Thread(target=write, args=(i,))
                                                                   for i in (3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert [run["info"]["writes"] for run in db.runs.find({"_id": {"$in": [3, 4]}})] == [5, 5]


# Requests of both kinds: aggregations, answered by neosqlite's Python engine (which neosqlite offers to switch on
# process-wide, query_helper.set_force_fallback), and requests that neosqlite answers in SQL.
MIXED_REQUESTS = {
    "runs page": lambda db: [(run["_id"], run["duration"], run["status"])
                             for run in db.runs.aggregate(runs_page(FIRST_SELECT, "duration", -1, 0, 40))],
    "metric column": lambda db: [(run["_id"], run["best"]) for run in db.runs.aggregate(runs_page(
        ["_id", "best"], metric_columns=[{"name": "best", "metric_name": "val.acc", "extrema": "max"}]))],
    "numeric ids grouped": lambda db: [doc["_id"] for doc in db.runs.aggregate(
        [{"$group": {"_id": "$_id"}}, {"$sort": {"_id": 1}}])],
    "filtered find": lambda db: [run["_id"] for run in db.runs.find({"status": "COMPLETED"}, {"_id": 1}).sort("_id")],
    "find by date": lambda db: [run["_id"] for run in db.runs.find(
        {"start_time": {"$gte": datetime.datetime(2026, 11, 2, 9)}}, {"_id": 1}).sort("_id")],
    "listing find": lambda db: [(run["_id"], run["config"]["lr"]) for run in db.runs.find({}, {"config.lr": 1})],
    "count": lambda db: db.runs.count_documents({"config.lr": 0.1}),
    "distinct": lambda db: sorted(db.runs.distinct("host.hostname")),
}


def test_concurrent_requests_of_both_kinds_are_each_answered_as_alone(store):
    db = store["db"]
    copy = db.client["board_copy"]  # a second database: its requests hold other locks in the server
    for name in ("runs", "metrics"):
        copy[name].delete_many({})
        copy[name].insert_many(list(db[name].find()))
    alone = {name: request(db) for name, request in MIXED_REQUESTS.items()}
    assert {name: request(copy) for name, request in MIXED_REQUESTS.items()} == alone
    assert alone["numeric ids grouped"] == list(range(1, 41))  # numbers, as MongoDB answers (not neosqlite's SQL)
    assert alone["find by date"] == list(range(33, 41)) and alone["count"] == 10
    assert [duration for _, duration, _ in alone["runs page"]] == sorted(
        (duration for _, duration, _ in alone["runs page"]), reverse=True)
    wrong = []

    def client_session(offset):
        # Each client has its own connection and database, and goes through the requests from a different one.
        with pymongo.MongoClient(store["url"]) as client:
            database = client["board" if offset % 2 else "board_copy"]
            names = list(MIXED_REQUESTS)[offset:] + list(MIXED_REQUESTS)[:offset]
            for name in names * 3:
                try:
                    answered = MIXED_REQUESTS[name](database)
                except pymongo.errors.PyMongoError as error:
                    answered = error
                if answered != alone[name]:
                    wrong.append((name, answered))

    threads = [threading.Thread(target=client_session, args=(offset,)) for offset in range(len(MIXED_REQUESTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    db.client.drop_database("board_copy")
