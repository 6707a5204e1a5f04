"""Makes nx-27017 0.8.1 (over neosqlite 1.17.2) serve Omniboard and Sacred as MongoDB would, from the outside.

nx-27017 is a dependency, not this project's code, so nothing in it is edited; `install()` adapts it where it
differs from MongoDB in ways that Omniboard or a run notices, through compat/nx27017.py and compat/neosqlite.py (which
hold every use of their private parts). Each adaptation, and why:

1. Dotted collection names. neosqlite names SQLite tables after collections and refuses names with dots, but
   Omniboard keeps its settings and columns in `omniboard.settings`, `omniboard.columns`, `omniboard.metric.columns`,
   `omniboard.custom.columns` and `omniboard.config.columns`. Commands get such names with each dot spelled
   DOT_ESCAPE, and replies get them back with dots. GridFS's `fs.files` and `fs.chunks` are left alone: nx-27017
   serves those itself.
2. Non-finite floats. neosqlite stores documents as JSON, which has no NaN or Infinity: SQLite answers
   'malformed JSON' and the write fails (a run logging a NaN loss would lose that metric). Incoming NaN, inf and
   -inf are stored as {NON_FINITE_KEY: "NaN" | "Infinity" | "-Infinity"} and turned back into floats in replies
   (also from the JSON text of such a marker, the form in which neosqlite keeps a `$push`ed one).
3. Aggregations. neosqlite's SQL translation of an aggregation turns numeric `_id`s into strings (so Omniboard's
   count of the runs using a source file, which compares `_id` with the run id, finds none and a deleted run's
   sources stay) and answers 0 for `$subtract` of dates (Duration 0 for every run). Aggregations are run by
   neosqlite's Python engine instead (called directly, never through neosqlite's process-wide switch to it, which
   other requests would see), whose `$subtract` gets MongoDB's date semantics: date - date is milliseconds, date -
   number is a date. Its `$project` drops `"_id": "$_id"` (Omniboard's source-file count), which is therefore sent
   as `"_id": 1`, the same in MongoDB; an exclusion `$project` of a dotted path, which it leaves in place, is run as
   the `$unset` of its paths.
4. Metric columns. Omniboard joins each run with its metrics by a `$lookup` with `let` and a sub-pipeline, then
   builds a {metric name: metric} object with `$group`, `$reduce` and `$arrayToObject`; neosqlite has no such
   `$lookup` ('localField' error, no column values). That join (Omniboard's stages from `$unwind` of `info.metrics`
   to `$project` of `runs.metrics`) is done here in Python with the same result; the other stages run in
   neosqlite's Python engine.
5. Projections of nested fields. nx-27017 answers a projection such as {"experiment.sources": 1} with a top-level
   key "experiment.sources" where MongoDB answers {"experiment": {"sources": ...}}; replies nest such keys (Sacred
   and Omniboard never write dots in keys). Code that reads a projected field would otherwise see nothing.
6. GridFS upload dates. nx-27017 keeps a GridFS file's `uploadDate` as ISO text and answers it so; replies give
   it back as a date, as MongoDB does (`tracker gc` compares it with the time now).
7. Deleting a run in Omniboard. Omniboard removes the run document, its metrics and artifact files, but not the
   `metric_points` documents that only this project writes. When the embedded store deletes a run document through
   findAndModify (Omniboard's way), the run's `metric_points` go with it. (On MongoDB, `tracker gc` removes them.)
8. Deleting GridFS files by several ids. Omniboard deletes a run's artifact files with one delete of
   {"$or": [{"_id": id}, ...]} from `fs.files` and {"$or": [{"files_id": id}, ...]} from `fs.chunks`; nx-27017's GridFS
   delete reads only a plain `_id` or `files_id` and keeps the files. Such a delete becomes one per id.
10. Projected finds. neosqlite decodes each whole document in Python and then projects it, so listing 10,000 runs
   with `tracker runs` took ~5 s, most of it in their captured output. A find with an empty filter and a plain
   inclusion projection (what runstore.query sends) is answered from SQLite's JSON text of the projected values
   (the top-level field, projected in Python, where a parent is not an object), parsed with orjson; a field
   holding null is then left out, as if missing. On `runs`, that text is read from an index of exactly those
   expressions, which SQLite keeps up to date on every write, so a listing parses no run document. The index is
   built at the first listing (~1 s per 10,000 runs), one per table and kind (finds; Omniboard's pages, 15.); each
   write of a run then parses its document a few more times (an update of a run holding 1 MB of captured output:
   ~28 ms instead of ~12 ms). Any other
   find goes to nx-27017 as before. Databases are read through memory mapping (PRAGMA mmap_size).
11. Reply encoding. nx-27017 copies every reply in Python to turn neosqlite's ObjectIds and Decimals into BSON's
    before encoding it (~0.8 s for a listing of 10,000 runs); bson's C encoder converts them itself instead, as a
    fallback for types it does not know. Only a cursor id of 0 is still made an Int64, as nx-27017 did.
12. Errors in one line. nx-27017 logs a failed request with its whole traceback; the client gets the error anyway,
    so `tracker db` prints one line per error instead. neosqlite's notes that an aggregation fell back to its Python
    engine are not errors and are not shown.
13. An answer to every request. nx-27017 never replies to a request whose handling raises StopIteration (asyncio
    cannot pass it on), and the client (Omniboard: one of its 10 connections) waits forever; nor to a failed legacy
    OP_QUERY. Every failure is replied as MongoDB's error document (a unique index that stored documents break, with
    MongoDB's DuplicateKey code, 11000). An aggregation stage outside SUPPORTED_STAGES,
    or an operator in UNSUPPORTED_OPERATORS, is refused before any work, so the error comes at once.
14. Joins neosqlite does not do. A `$lookup` from a GridFS collection (Omniboard's Compare -> Source Files joins
    `fs.files`, which nx-27017 serves apart from neosqlite's tables), and a `$lookup` whose `let`/`pipeline` is one
    `$match` of `$expr` equality to a `let` variable (possibly `$and` other conditions), are done here as equality
    joins; any other `pipeline` is refused (13).
15. Omniboard's runs page. Its aggregation projects the listed fields of every run, adds duration and status,
    sorts, and keeps a page of 50; neosqlite's engine copies every whole document first (~7 s for 10,000 runs).
    Here `$sort`, `$skip` and `$limit` go before `$addFields` that set no sorted field (the same documents in the
    same order); when a page is kept, it is chosen on documents holding only the fields that the stages before
    its `$limit` read (from a listing index of kind "page", 10.), and only that page is read whole (without an
    index); those stages then run again on it. A `$count` pipeline reads only the fields it needs.
16. Dates written by updates. neosqlite stores a date that an update sets or pushes as text ("2026-11-01
    12:00:00", `tracker sync`'s stop time; Sacred's heartbeats), and answers it as text, where an inserted date comes
    back as a date. The dates of an update are sent as neosqlite stores an inserted one, so they come back as dates.
    Sacred's run times (start_time, heartbeat, stop_time) that a store holds as such text are answered as dates. A
    `$push`ed date (Sacred's metric timestamps), which neosqlite keeps as the JSON text of {"$date": ...}, comes back
    as a date too (as adaptation 2 reads its markers).
17. `_id` order. neosqlite's SQL sorts `_id`s as text (run 9 after run 10); it sorts them as MongoDB does: numbers
    by value, then strings, then ObjectIds (compat/neosqlite.py), so the newest run is the first by `_id` descending.
18. A run's metric points. neosqlite's SQL for a field's equality also matches an array holding the value (an OR
    that keeps SQLite from every index), so a find of one run's points, and the uploader's upsert of each new chunk,
    read every `metric_points` document: 0.9 s each among 100,000 runs' (benchmarks/metric_find.py), at each zoom
    and live poll of a run page. `metric_points` is written by this project alone, its INDEXED_SCALARS never
    arrays, so there the equalities on them of a find, an update or a delete are sent as `$eq`, which neosqlite puts
    into SQL as a plain comparison that the uploader's index (run_id, name, chunk) serves (1 ms), and which an
    upsert copies into its new document as MongoDB does.
"""
import datetime
import decimal
import hashlib
import json
import logging
import math
import re
import sqlite3

import orjson
from bson import Decimal128, Int64, ObjectId
from bson import encode as bson_encode
from bson.codec_options import CodecOptions, TypeRegistry
from compat import neosqlite, nx27017

DOT_ESCAPE = "_dot_"
# Adaptation 18: fields of collections that this project alone writes, never as arrays, and that an index holds.
INDEXED_SCALARS = {"metric_points": {"run_id", "name", "chunk"}}
# Adaptation 10: the command keys of a find it answers, and the field paths it puts into SQL.
_PLAIN_FIND_KEYS = {"find", "filter", "projection", "batchSize", "$db", "lsid", "$clusterTime", "$readPreference"}
# Adaptation 10: the collection whose projected finds are answered from an index (what runstore.query lists).
LISTED_COLLECTION = "runs"
# Adaptation 10: who reads the listing index; each kind keeps one index of the columns it last asked for.
LISTING_KINDS = ("find", "page")
# SQLite reads the database file through memory mapping up to this size, without a copy per page.
MMAP_BYTES = 1 << 30
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
NON_FINITE_KEY = "__non_finite__"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# neosqlite's SQL for `$push` stores a pushed object as its JSON text, so markers come back in this form too.
_NON_FINITE_TEXT = {json.dumps({NON_FINITE_KEY: name}, separators=(",", ":")): value
                    for name, value in _NON_FINITE.items()}
# GridFS collections keep their names: nx-27017 serves them itself.
_GRIDFS_SUFFIXES = (".files", ".chunks")
# Adaptation 13: the aggregation stages answered (by neosqlite's Python engine, or here for joins); any other
# gets an error reply. Writing stages ($out, $merge) are left to MongoDB.
SUPPORTED_STAGES = {
    "$match", "$sort", "$skip", "$limit", "$project", "$replaceRoot", "$replaceWith", "$unset", "$group", "$unwind",
    "$lookup", "$addFields", "$sample", "$facet", "$count", "$bucket", "$bucketAuto", "$unionWith",
}
# Adaptation 13: operators that neosqlite's Python engine does not evaluate as MongoDB does.
UNSUPPORTED_OPERATORS = {
    "$where", "$function", "$accumulator", "$text", "$near", "$nearSphere", "$geoWithin", "$geoIntersects",
    "$jsonSchema",
}
# Omniboard's metric-column join ends with this stage (adaptation 4).
_METRIC_JOIN_END = {"$project": {"runs.metrics": 0}}
# Adaptation 14: where a $lookup's `let` variable is put on each document while it is computed.
_LET_FIELD = "__tracker_let__"
# Adaptation 16: how the JSON text of a `$push`ed date starts, as neosqlite keeps it.
_PUSHED_DATE_START = '{"$date":'
# Adaptation 16: the fields of a run document that Sacred writes as dates.
RUN_TIMES = ("start_time", "heartbeat", "stop_time")


def escape_name(name):
    """The table-safe spelling of a collection name (dots replaced), GridFS collections as they are."""
    if not isinstance(name, str) or "." not in name or name.endswith(_GRIDFS_SUFFIXES):
        return name
    return name.replace(".", DOT_ESCAPE)


def unescape_name(name):
    return name.replace(DOT_ESCAPE, ".") if isinstance(name, str) else name


def encode(value):
    """`value` with non-finite floats replaced by JSON-storable markers, and $lookup collections escaped."""
    if isinstance(value, float) and not math.isfinite(value):
        return {NON_FINITE_KEY: "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, dict):
        encoded = {key: encode(item) for key, item in value.items()}
        if "$lookup" in encoded and isinstance(encoded["$lookup"], dict):
            encoded["$lookup"]["from"] = escape_name(encoded["$lookup"].get("from"))
        return encoded
    if isinstance(value, list):
        return [encode(item) for item in value]
    return value


def decode(value):
    """`value` with the markers of `encode` turned back into floats."""
    if isinstance(value, dict):
        if len(value) == 1 and NON_FINITE_KEY in value:
            return _NON_FINITE.get(value[NON_FINITE_KEY], value)
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, str):
        return _pushed_date(value) if value.startswith(_PUSHED_DATE_START) else _NON_FINITE_TEXT.get(value, value)
    return value


def _pushed_date(text):
    """The date of the JSON text {"$date": ISO text}, as neosqlite keeps a `$push`ed date, else `text` (16.)."""
    try:
        date = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return (_date(date["$date"]) if isinstance(date, dict) and isinstance(date.get("$date"), str) else None) or text


def _encode_command(command):
    command = encode(command)
    first_key = next(iter(command), None)
    if first_key is not None:
        command[first_key] = escape_name(command[first_key])
    for stage in command.get("pipeline") or []:
        projection = stage.get("$project") if isinstance(stage, dict) else None
        if isinstance(projection, dict) and projection.get("_id") == "$_id":
            projection["_id"] = 1  # the same in MongoDB; neosqlite's Python engine drops "$_id"
    if "getMore" in command:
        command["collection"] = escape_name(command.get("collection"))
    return command


def _dates_as_stored(value):
    """`value` with each date as neosqlite stores an inserted one, {"$date": ISO text} (adaptation 16)."""
    if isinstance(value, datetime.datetime):
        return {"$date": value.isoformat()}
    if isinstance(value, dict):
        return {key: _dates_as_stored(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dates_as_stored(item) for item in value]
    return value


def _with_stored_dates(section):
    """A section of an update or findAndModify command (its body, or a payload of updates) with the dates of its
    update documents as neosqlite stores them (adaptation 16)."""
    if isinstance(section.get("updates"), list):
        section["updates"] = [{**update, "u": _dates_as_stored(update["u"])}
                              if isinstance(update, dict) and isinstance(update.get("u"), dict) else update
                              for update in section["updates"]]
    if "findAndModify" in section and isinstance(section.get("update"), dict):
        section["update"] = _dates_as_stored(section["update"])
    return section


def _run_times_as_dates(doc):
    """`doc` with Sacred's run times that a store holds as text (written by an update before adaptation 16) as
    dates."""
    for name in RUN_TIMES:
        if isinstance(doc.get(name), str):
            doc[name] = _date(doc[name]) or doc[name]
    return doc


def _decode_reply(reply):
    reply = decode(reply)
    cursor = reply.get("cursor") if isinstance(reply, dict) else None
    if isinstance(cursor, dict):
        cursor["ns"] = unescape_name(cursor.get("ns"))
        for batch in ("firstBatch", "nextBatch"):
            if isinstance(cursor.get(batch), list):
                cursor[batch] = [_fix_document(doc) for doc in cursor[batch]]
    return reply


def _fix_document(doc):
    """A document of a reply as MongoDB answers it (adaptations 1, 5 and 6)."""
    if not isinstance(doc, dict):
        return doc
    if doc.get("type") == "collection":  # listCollections
        doc["name"] = unescape_name(doc.get("name"))
    if isinstance(doc.get("uploadDate"), str):  # a GridFS file
        doc["uploadDate"] = datetime.datetime.fromisoformat(doc["uploadDate"])
    return _nest(_run_times_as_dates(doc))


def _nest(doc):
    """`doc` with top-level dotted keys ("experiment.sources", from a projection) as nested fields."""
    if not isinstance(doc, dict) or not any("." in key for key in doc):
        return doc
    nested = {}
    for key, value in doc.items():
        *parents, last = key.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return nested


def _split_or_deletes(deletes):
    """Each delete of {"$or": [query, ...]} as one delete per query."""
    split = []
    for delete in deletes:
        alternatives = (delete.get("q") or {}).get("$or") if isinstance(delete, dict) else None
        if isinstance(alternatives, list) and len(delete["q"]) == 1:
            split.extend({**delete, "q": query} for query in alternatives)
        else:
            split.append(delete)
    return split


def _encode_message(msg):
    sections = []
    body = _body(msg)
    gridfs_delete = isinstance(body.get("delete"), str) and body["delete"].endswith(_GRIDFS_SUFFIXES)
    scalars = next((INDEXED_SCALARS[name] for name in (body.get(key) for key in ("find", "update", "delete"))
                    if isinstance(name, str) and name in INDEXED_SCALARS), None)
    updates = "findAndModify" in body or (
        isinstance(body.get("update"), str) and not body["update"].endswith(_GRIDFS_SUFFIXES))
    for section_type, doc in msg["sections"]:
        doc = _encode_command(doc) if section_type == "body" and isinstance(doc, dict) else encode(doc)
        if scalars and isinstance(doc, dict):
            doc = _with_plain_equalities(doc, scalars)
        if gridfs_delete and isinstance(doc, dict) and isinstance(doc.get("deletes"), list):
            doc["deletes"] = _split_or_deletes(doc["deletes"])
        if updates and isinstance(doc, dict):
            doc = _with_stored_dates(doc)
        sections.append((section_type, doc))
    return {**msg, "sections": sections}


def _with_plain_equalities(doc, fields):
    """A section `doc` of a find, update or delete whose filters' equalities on `fields` are `$eq` conditions
    (adaptation 18): a find's "filter", each of "updates" and "deletes"' "q"."""
    def plain(wanted):
        if not isinstance(wanted, dict):
            return wanted
        return {key: {"$eq": value} if key in fields and _is_scalar(value) else value for key, value in wanted.items()}

    doc = {**doc, "filter": plain(doc["filter"])} if "filter" in doc else doc
    for key in ("updates", "deletes"):
        if isinstance(doc.get(key), list):
            doc = {**doc, key: [{**item, "q": plain(item["q"])} if isinstance(item, dict) and "q" in item else item
                                for item in doc[key]]}
    return doc


def _is_scalar(value):
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _body(msg):
    return next((doc for kind, doc in msg["sections"] if kind == "body" and isinstance(doc, dict)), {})


def _with_metrics(runs, metrics, names):
    """Each run with "metrics": {name with dots as _: its metric document}, as Omniboard's join gives it."""
    by_run = {}
    for metric in metrics:
        if metric.get("name") in names:
            by_run.setdefault(metric["run_id"], {})[metric["name"].replace(".", "_")] = metric
    return [{**run, "metrics": by_run.get(run["_id"], {})} for run in runs]


def _sql_projection(body):
    """The projected field paths of a find that SQL can answer (adaptation 10), or None."""
    if body.get("filter") or set(body) - _PLAIN_FIND_KEYS:
        return None
    return _inclusion_paths(body.get("projection"))


class TrackerHandler(nx27017.Handler):
    """nx-27017's request handler with the adaptations of this module's docstring."""

    def opened(self, connection):
        connection.db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")  # adaptation 10

    def handle_insert(self, msg):
        try:
            request_id, reply = super().handle_insert(_encode_message(msg))
        except Exception as error:  # noqa: BLE001 - adaptation 13: every request gets a reply
            return msg.get("request_id", 0), _error_reply(error)
        return request_id, _decode_reply(reply)

    def handle_query(self, msg):
        try:
            return super().handle_query(msg)
        except Exception as error:  # noqa: BLE001 - adaptation 13
            reply = _error_reply(error)
            return msg.get("request_id", 0), [{"$err": reply["errmsg"], **reply}]

    def handle_command(self, msg):
        try:
            return self._handle_command(_encode_message(msg))
        except Exception as error:  # noqa: BLE001 - adaptation 13: StopIteration too, which asyncio cannot pass on
            return msg.get("request_id", 0), _error_reply(error)

    def _handle_command(self, msg):
        body = _body(msg)
        if "aggregate" in body:
            return msg["request_id"], _decode_reply(self._aggregate(msg, body))
        if "find" in body and not self.is_gridfs_collection(body["find"]) and (paths := _sql_projection(body)):
            return msg["request_id"], self._find_projected(msg, body, paths)
        request_id, reply = super().handle_command(msg)
        deleted = reply.get("value") if body.get("findAndModify") == "runs" and body.get("remove") else None
        if isinstance(deleted, dict) and "_id" in deleted:
            db_name = body.get("$db", "test")
            with self.lock_for(db_name):
                self.get_database(db_name)["metric_points"].delete_many({"run_id": deleted["_id"]})
        return request_id, _decode_reply(reply)

    def _aggregate(self, msg, body):
        """An aggregation answered in Python (adaptations 3, 4, 14 and 15)."""
        db_name, name = body.get("$db", "test"), body["aggregate"]
        pipeline = body.get("pipeline")
        if not isinstance(name, str) or not isinstance(pipeline, list):
            raise UnsupportedQuery("an aggregation needs a collection name and a pipeline list")
        _check_supported(pipeline)
        with self.lock_for(db_name):
            db = self.get_database(db_name)
            docs = self._run_pipeline(db, name, pipeline)
            first, cursor_id = self.split_first_batch(
                docs, self.first_batch_size(body), f"{db_name}.{name}", db_name, owner=msg.get("_conn_id")
            )
        return {"ok": 1, "cursor": {"id": cursor_id, "ns": f"{db_name}.{name}", "firstBatch": first}}

    def _run_pipeline(self, db, name, pipeline):
        """The documents `pipeline` gives on collection `name`: read as the first stages allow (adaptation 15),
        joined here where neosqlite cannot (adaptations 4 and 14), and otherwise by neosqlite's Python engine."""
        collection = db[name]
        docs, stages = self._pipeline_input(db, name, pipeline)
        done = 0
        while (join := _next_join(stages, done)) is not None:
            start, end, kind = join
            docs = _python_stages(collection, docs, stages[done:start])
            if kind == "metrics":
                docs = _with_metrics(docs, db["metrics"].find({"run_id": {"$in": [doc["_id"] for doc in docs]}}),
                                     _metric_names(stages[start + 1]))
            else:
                docs = self._lookup(db, collection, docs, stages[start]["$lookup"])
            done = end
        return _python_stages(collection, docs, stages[done:])

    def _pipeline_input(self, db, name, pipeline):
        """(the documents the pipeline starts from, its stages still to run), read with as little decoding as the
        stages allow (adaptation 15)."""
        stages = _sorted_before_added(pipeline)
        if name not in db.list_collection_names():
            return [], stages
        collection = db[name]
        first = stages[0] if stages else {}
        if name == LISTED_COLLECTION and (paths := _inclusion_paths(first.get("$project"))):
            page = _page_end(stages)
            needed = _needed_paths(stages[1:page], paths) if page else None
            if needed is None:
                return self._projected_documents(db, name, paths), stages[1:]
            # The page is chosen on the fields it depends on; only its documents are read whole.
            rows = self._projected_rows(db, name, needed or ["_id"], kind="page")
            row_ids = {_join_key(doc["_id"]): row_id for row_id, doc in rows}
            chosen = [row_ids[_join_key(doc["_id"])]
                      for doc in _python_stages(collection, [doc for _, doc in rows], stages[1:page])]
            whole = dict(self._projected_rows(db, name, paths, row_ids=chosen))
            per_document = [stage for stage in stages[1:page] if "$addFields" in stage or "$match" in stage]
            return [whole[row_id] for row_id in chosen], per_document + stages[page:]
        if len(stages) == 1 and "$count" in stages[0]:  # Omniboard's count of all runs, from SQL
            count = collection.count_documents({})
            return ([{stages[0]["$count"]: count}] if count else []), []
        if stages and "$count" in stages[-1] and (needed := _needed_paths(stages[:-1], None)) is not None:
            return self._projected_documents(db, name, needed or ["_id"]), stages
        if _is_plain_match(first.get("$match")):
            return list(collection.find(first["$match"])), stages[1:]
        return list(collection.find()), stages

    def _lookup(self, db, collection, docs, lookup):
        """`docs` with the `$lookup` that neosqlite does not do: from a GridFS collection, or with `let` and a
        `pipeline` that is one `$match` of `$expr` equality to a `let` variable (Omniboard's joins)."""
        source = lookup["from"]
        if "pipeline" in lookup:
            field, variable, rest = _equality_join(lookup)
            values = _python_stages(collection, docs, [{"$addFields": {_LET_FIELD: lookup["let"][variable]}}])
            keys = [_join_key(doc.pop(_LET_FIELD, None)) for doc in values]
        else:
            field, rest = lookup["foreignField"], None
            keys = [_join_key(_get_path(doc, lookup["localField"])) for doc in docs]
            values = docs
        foreign = self._foreign_documents(db, source)
        if rest:
            foreign = _python_stages(collection, foreign, [{"$match": {"$expr": rest}}])
        by_key = {}
        for doc in foreign:
            by_key.setdefault(_join_key(_get_path(doc, field)), []).append(doc)
        return [{**doc, lookup["as"]: list(by_key.get(key, [])) if key is not None else []}
                for doc, key in zip(values, keys)]

    def _foreign_documents(self, db, name):
        if self.is_gridfs_collection(name):
            adapter = nx27017.gridfs_adapter(db.db, name)
            return [_fix_document(doc) for doc in adapter.handle_find({})] if adapter is not None else []
        return list(db[name].find()) if name in db.list_collection_names() else []

    def _find_projected(self, msg, body, paths):
        db_name, name = body.get("$db", "test"), body["find"]
        with self.lock_for(db_name):
            db = self.get_database(db_name)
            docs = self._projected_documents(db, name, paths, "find") if name in db.list_collection_names() else []
            first, cursor_id = self.split_first_batch(
                docs, self.first_batch_size(body), f"{db_name}.{name}", db_name, owner=msg.get("_conn_id")
            )
        return {"ok": 1, "cursor": {"id": cursor_id, "ns": f"{db_name}.{unescape_name(name)}", "firstBatch": first}}

    @classmethod
    def _projected_documents(cls, db, name, paths, kind=None):
        return [doc for _, doc in cls._projected_rows(db, name, paths, kind)]

    @staticmethod
    def _projected_rows(db, name, paths, kind=None, row_ids=None):
        """(row id, document) of each document of collection `name` (of the rows `row_ids` only, in row order,
        when given) with only `paths` and _id, read from SQLite's JSON text of those values (adaptation 10); with
        `kind` on LISTED_COLLECTION, from the listing index of that kind (one of LISTING_KINDS)."""
        paths = ["_id", *paths]  # two or more, so json_extract answers them as one JSON array (_path_columns)
        nested = [path for path in paths if "." in path]
        columns = _path_columns(paths, nested)
        collection = db[name]
        table = neosqlite.quote_table_name(collection.name)
        index = _listing_index(collection.db, collection.name, columns, kind) if kind and name == LISTED_COLLECTION \
            else None
        where, parameters = ("WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(row_ids),)) \
            if row_ids is not None else ("", ())
        rows = collection.db.execute(
            f"SELECT id, _id, {', '.join(columns)} FROM {table}{f' INDEXED BY {index}' if index else ''} {where} "
            f"ORDER BY id", parameters)
        # Each path's parts, and the position of its parent check among the row's columns (None: top level).
        fields = [(path.split("."), nested.index(path) if path in nested else None) for path in paths]
        projected, stored_id_of = [], neosqlite.stored_ids(collection)
        for row_id, stored_id, values, *parents in rows:
            doc = {"_id": stored_id_of(stored_id, row_id)}  # when not in the document
            for (parts, check), value in zip(fields, _loads_values(values)):
                parent = 1 if check is None else parents[check]
                if isinstance(parent, str):  # a parent is not an object: project from the top-level field
                    _include(doc, parts, _loads_values(f"[{parent}]")[0])
                elif parent is not None:
                    _include(doc, parts, value, direct=True)
            projected.append((row_id, _run_times_as_dates(doc)))
        return projected


class UnsupportedQuery(ValueError):
    """A request that the embedded store cannot answer as MongoDB would; its client gets this as an error."""


def _error_reply(error):
    """MongoDB's reply to a command that failed with `error` (adaptation 13)."""
    unsupported = isinstance(error, UnsupportedQuery)
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    logging.getLogger("nx_27017").error("request answered with an error: %s", text)
    if isinstance(error, sqlite3.IntegrityError) and "UNIQUE constraint" in str(error):  # e.g. a unique index
        return {"ok": 0, "errmsg": text, "code": 11000, "codeName": "DuplicateKey"}
    return {"ok": 0, "errmsg": f"tracker db (the embedded store) cannot answer this: {text}",
            "code": 2 if unsupported else 1, "codeName": "BadValue" if unsupported else "InternalError"}


def _check_supported(pipeline):
    """Raise UnsupportedQuery for a stage or operator that neosqlite would answer wrongly or not at all."""
    for stage in pipeline:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise UnsupportedQuery(f"a pipeline stage must be an object with one key, not {stage!r}")
        name = next(iter(stage))
        if name not in SUPPORTED_STAGES:
            raise UnsupportedQuery(f"the aggregation stage {name} is not supported; use MongoDB for it")
    for operator in _operators(pipeline):
        if operator in UNSUPPORTED_OPERATORS:
            raise UnsupportedQuery(f"the operator {operator} is not supported; use MongoDB for it")


def _operators(value):
    """Every key starting with $ anywhere in `value`."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("$"):
                yield key
            yield from _operators(item)
    elif isinstance(value, list):
        for item in value:
            yield from _operators(item)


def _next_join(stages, done):
    """(start, end, kind) of the first join after `done` that is done here: Omniboard's metric-column join
    (kind "metrics", from its `$unwind` of info.metrics to its `$project` of runs.metrics) or another `$lookup`
    that neosqlite does not do (kind "lookup"); None when there is none."""
    for index in range(done, len(stages)):
        lookup = stages[index].get("$lookup")
        if not isinstance(lookup, dict):
            continue
        if not isinstance(lookup.get("from"), str) or not isinstance(lookup.get("as"), str):
            raise UnsupportedQuery("a $lookup needs 'from' and 'as'")
        end = next((later for later in range(index, len(stages)) if stages[later] == _METRIC_JOIN_END), None)
        if (lookup["from"] == "metrics" and "pipeline" in lookup and index > done and end is not None
                and stages[index - 1].get("$unwind", {}).get("path") == "$info.metrics"):
            return index - 1, end + 1, "metrics"
        if "pipeline" in lookup or lookup["from"].endswith(_GRIDFS_SUFFIXES):
            return index, index + 1, "lookup"
    return None


def _equality_join(lookup):
    """(foreign field, let variable, the rest of the condition or None) of a `$lookup` whose pipeline is one
    `$match` of `$expr` {"$eq": ["$field", "$$variable"]}, alone or in an `$and`."""
    pipeline, let = lookup.get("pipeline"), lookup.get("let")
    match = pipeline[0].get("$match") if isinstance(pipeline, list) and len(pipeline) == 1 else None
    expr = match.get("$expr") if isinstance(match, dict) and len(match) == 1 else None
    conditions = expr["$and"] if isinstance(expr, dict) and isinstance(expr.get("$and"), list) else [expr]
    for position, condition in enumerate(conditions):
        operands = condition.get("$eq") if isinstance(condition, dict) and len(condition) == 1 else None
        if (isinstance(operands, list) and len(operands) == 2 and all(isinstance(o, str) for o in operands)
                and operands[0].startswith("$") and not operands[0].startswith("$$")
                and operands[1].startswith("$$") and isinstance(let, dict) and operands[1][2:] in let):
            rest = conditions[:position] + conditions[position + 1:]
            return operands[0][1:], operands[1][2:], (rest[0] if len(rest) == 1 else {"$and": rest}) if rest else None
    raise UnsupportedQuery(
        "a $lookup pipeline is supported only as one $match of $expr equality to a 'let' variable; use MongoDB for it")


def _metric_names(lookup_stage):
    """The metric names that Omniboard's metric-column join asks for."""
    _, _, rest = _equality_join(lookup_stage["$lookup"])
    operands = rest.get("$in") if isinstance(rest, dict) else None
    if not (isinstance(operands, list) and len(operands) == 2 and operands[0] == "$name"
            and isinstance(operands[1], list)):
        raise UnsupportedQuery("Omniboard's metric join is expected to ask for metric names with $in")
    return operands[1]


def _join_key(value):
    """`value` as a key that matches equal values: ObjectIds of bson and of neosqlite alike."""
    if isinstance(value, (ObjectId, neosqlite.ObjectId)):
        return ("ObjectId", str(value))
    try:
        hash(value)
    except TypeError:
        return ("unhashable", repr(value))
    return value


def _get_path(doc, path):
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _python_stages(collection, docs, stages):
    """What neosqlite's Python aggregation engine gives for `stages` over `docs` of `collection`."""
    if not stages:
        return docs
    return neosqlite.aggregate_in_python(collection, docs, [_as_unset(stage) for stage in stages])


def _as_unset(stage):
    """An exclusion `$project` as the `$unset` of its paths, the same in MongoDB: neosqlite's `$project` leaves a
    dotted path of a nested document ("host.hostname": 0) in place, its `$unset` removes it."""
    projection = stage.get("$project")
    if isinstance(projection, dict) and projection and all(value in (0, False) for value in projection.values()):
        return {"$unset": list(projection)}
    return stage


def _inclusion_paths(projection):
    """The field paths (without _id) of a projection that includes plain fields only, or None."""
    if not isinstance(projection, dict) or not projection:
        return None
    paths = [path for path in projection if path != "_id"]
    if not all(value in (1, True) for value in projection.values()) or not all(map(_FIELD_PATH.fullmatch, paths)):
        return None
    return paths


def _is_plain_match(query):
    """Whether `query` only compares top-level or dotted fields with plain values, as neosqlite's find does right."""
    return isinstance(query, dict) and bool(query) and all(
        isinstance(key, str) and _FIELD_PATH.fullmatch(key) and isinstance(value, (str, int, float))
        for key, value in query.items())


def _page_end(stages):
    """The position after the first `$limit` of `stages` (after their first, a `$project`) when only `$match`,
    `$addFields` that keep _id, `$sort` and `$skip` come before it, else None: such stages pick a page of documents
    by the fields they read."""
    for index in range(1, len(stages)):
        name = next(iter(stages[index]))
        if name == "$limit":
            return index + 1
        if name not in ("$match", "$addFields", "$sort", "$skip") or "_id" in (stages[index].get("$addFields") or {}):
            return None
    return None


def _needed_paths(stages, projected):
    """The field paths that `stages` read (a sorted list), restricted to those the inclusion projection
    `projected` keeps (all, when None); None when that is not known (a stage or variable that reads the whole
    document, or a path above a projected one)."""
    paths = set()
    for stage in stages:
        name, spec = next(iter(stage.items()))
        if name == "$match":
            found = _query_paths(spec)
        elif name == "$addFields":
            found = _expression_paths(spec)
        elif name == "$sort":
            found = set(spec) if isinstance(spec, dict) else None
        elif name in ("$skip", "$limit") or (name == "$project" and spec
                                             and all(v in (0, False) for v in spec.values())):
            found = set()
        else:
            return None
        if found is None or not all(isinstance(path, str) and _FIELD_PATH.fullmatch(path) for path in found):
            return None
        paths |= found
    if projected is None:
        return sorted(paths)
    if any(kept.startswith(path + ".") for path in paths for kept in projected):
        return None
    return sorted(path for path in paths if any(_paths_overlap(path, kept) for kept in [*projected, "_id"]))


def _query_paths(query):
    """The field paths a `$match` query reads, or None when unknown."""
    if not isinstance(query, dict):
        return None
    paths = set()
    for key, value in query.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            found = _union_of_paths(value, _query_paths)
        elif key == "$expr":
            found = _expression_paths(value)
        elif key.startswith("$"):
            return None
        else:
            found = {key}
        if found is None:
            return None
        paths |= found
    return paths


def _expression_paths(expression):
    """The field paths ("$field" strings) an aggregation expression reads, or None when it reads the whole
    document ($$ROOT, $$CURRENT)."""
    if isinstance(expression, str):
        if expression.startswith(("$$ROOT", "$$CURRENT")):
            return None
        return {expression[1:]} if expression.startswith("$") and not expression.startswith("$$") else set()
    items = expression.values() if isinstance(expression, dict) else expression if isinstance(expression, list) else ()
    return _union_of_paths(items, _expression_paths)


def _union_of_paths(parts, paths_of):
    """The field paths that `paths_of` finds in all `parts` together, or None when it cannot tell for one of them."""
    paths = set()
    for part in parts:
        found = paths_of(part)
        if found is None:
            return None
        paths |= found
    return paths


def _sorted_before_added(pipeline):
    """`pipeline` with each `$sort` (and the `$skip` and `$limit` right after it) that follows `$addFields` stages
    moved before them when it sorts by no field they set: the same documents in the same order, but the added
    fields are computed for the kept documents only."""
    stages = list(pipeline)
    index = 0
    while index < len(stages):
        added_end = index
        while added_end < len(stages) and "$addFields" in stages[added_end]:
            added_end += 1
        if added_end == index or added_end == len(stages) or "$sort" not in stages[added_end]:
            index = added_end + 1 if added_end > index else index + 1
            continue
        sort_end = added_end + 1
        while sort_end < len(stages) and ("$skip" in stages[sort_end] or "$limit" in stages[sort_end]):
            sort_end += 1
        added = [field for stage in stages[index:added_end] for field in stage["$addFields"]]
        sorted_by = list(stages[added_end]["$sort"]) if isinstance(stages[added_end]["$sort"], dict) else added
        if not any(_paths_overlap(key, field) for key in sorted_by for field in added):
            stages[index:sort_end] = stages[added_end:sort_end] + stages[index:added_end]
        index = sort_end
    return stages


def _paths_overlap(first, second):
    return first == second or first.startswith(second + ".") or second.startswith(first + ".")


def _path_columns(paths, nested):
    """SQL for the projected values: the JSON array of the values at `paths` (json_extract of several paths keeps
    every digit of a number; of one path, it would round to 15), then for each of the `nested` paths 1 when each of
    its parents is an object, else the JSON text of its top-level field (NULL when missing), to be projected through
    arrays in Python. Each JSON function call parses the whole document, so there are few of them."""
    values = "json_extract(data, " + ", ".join(f"'$.{path}'" for path in paths) + ")"
    columns = [values]
    for path in nested:
        parts = path.split(".")
        objects = " AND ".join(f"json_type(data, '$.{'.'.join(parts[:end])}') = 'object'"
                               for end in range(1, len(parts)))
        columns.append(f"(CASE WHEN {objects} THEN 1 ELSE data -> '$.{parts[0]}' END)")
    return columns


def _listing_index(connection, table, columns, kind):
    """The name of the index that holds `columns` of every row of `table`, created first if need be. Reading it
    skips parsing each whole document (captured output and all); SQLite keeps it up to date on every write. One
    per table and `kind` (finds, as runstore.query lists; aggregations, as Omniboard's runs page): an index of the
    same kind for other columns is dropped, so writes never maintain more than two."""
    name = f"tracker_listing_{kind}_" + hashlib.sha1(repr(columns).encode()).hexdigest()[:12]
    existing = [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name LIKE 'tracker_listing_%'",
        (table,))]
    if name not in existing:
        kept_kinds = tuple(f"tracker_listing_{other}_" for other in LISTING_KINDS if other != kind)
        for other in existing:
            if not other.startswith(kept_kinds):
                connection.execute(f'DROP INDEX "{other}"')
        connection.execute(
            f'CREATE INDEX "{name}" ON {neosqlite.quote_table_name(table)} (id, _id, {", ".join(columns)})')
    return f'"{name}"'


def _loads_values(text):
    """The list of values in stored JSON text (a JSON array). Dates that are whole values are read here; anything else
    beyond JSON
    (a nested date, neosqlite's ObjectIds and binaries, adaptation 2's markers) takes neosqlite's slower hooks."""
    values = orjson.loads(text)
    dates = 0
    for index, value in enumerate(values):
        if type(value) is dict and len(value) == 1 and type(value.get("$date")) is str:
            date = _date(value["$date"])
            if date is None:
                break
            values[index] = date
            dates += 1
    else:
        if text.count('"$date"') == dates and "__neosqlite_" not in text and NON_FINITE_KEY not in text:
            return values
    return decode(neosqlite.json_loads(text))


def _date(text):
    """An ISO date as neosqlite.json_loads reads it, or None when it is not one."""
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _include(target, parts, value, direct=False):
    """Put what an inclusion projection of the path `parts` keeps into `target`, as MongoDB does. `value` is the
    value at the path when `direct` (every parent an object), else the value of its first part, projected through
    arrays keeping only their subdocuments' fields. A missing or null value is left out."""
    if direct:
        for parent in parts[:-1]:
            target = target.setdefault(parent, {})
        if value is not None:
            target[parts[-1]] = value
    elif value is None:
        return
    elif len(parts) == 1:
        target[parts[0]] = value
    elif isinstance(value, dict):
        _include(target.setdefault(parts[0], {}), parts[1:], value.get(parts[1]))
    elif isinstance(value, list):
        items = [item for item in value if isinstance(item, dict)]
        kept = target.setdefault(parts[0], [{} for item in items])
        for index, item in enumerate(items):
            _include(kept[index], parts[1:], item.get(parts[1]))


def _bson_value(value):
    """BSON's type for a value of neosqlite's types (adaptation 11); bson refuses anything else, as before."""
    if isinstance(value, neosqlite.ObjectId):
        return ObjectId(value.binary)
    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    return value


_REPLY_CODEC = CodecOptions(type_registry=TypeRegistry(fallback_encoder=_bson_value))


def _encode_reply(document):
    return bson_encode(document, codec_options=_REPLY_CODEC)


def _cursor_id_as_int64(document):
    """`document` with a cursor id of 0 as an Int64, which drivers expect of a cursor id."""
    cursor = document.get("cursor") if isinstance(document, dict) else None
    if isinstance(cursor, dict) and cursor.get("id") == 0:
        return {**document, "cursor": {**cursor, "id": Int64(0)}}
    return document


class OneLineErrors(logging.Filter):
    """A failed request logged in one line: the message and the error, without the traceback."""

    def filter(self, record):
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()}: {type(error).__name__}: {error}", None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def install():
    """Adapt nx-27017 in this process; call before its server starts."""
    nx27017.accept_old_drivers()
    nx27017.serve_with_handler(TrackerHandler)
    nx27017.encode_replies_with(_encode_reply, _cursor_id_as_int64)
    neosqlite.subtract_dates_as_mongodb()
    neosqlite.sort_ids_as_mongodb()
    logging.getLogger("neosqlite").setLevel(logging.ERROR)
    for name in ("nx_27017", "asyncio"):  # asyncio: a connection that breaks off mid-request
        logging.getLogger(name).addFilter(OneLineErrors())
