"""neosqlite's private parts that this project uses, written for neosqlite 1.17.2 (nx-27017's storage). Why each
is needed:

- subtract_dates_as_mongodb: neosqlite's Python engine answers `$subtract` of dates with 0 (Omniboard's Duration of
  every run); MongoDB answers date - date in milliseconds, date - number as a date. Its evaluator is a private method.
- sort_ids_as_mongodb: neosqlite's SQL sorts by its text column of `_id`s (run 9 after run 10); MongoDB sorts numbers
  by value, before strings, before ObjectIds. Its ORDER BY is built by a private method.
- aggregate_in_python: neosqlite's SQL translation of an aggregation turns numeric `_id`s into strings; its Python
  engine, an internal function, answers as MongoDB, and is called here directly on given documents, never through
  neosqlite's process-wide switch to it (query_helper.set_force_fallback), which other requests would see.
- stored_ids: the `_id` of a stored row whose document holds none, which only a private method of a collection reads.
- json_loads: the JSON text that neosqlite stores a document as, with its own types (dates, ObjectIds), is read back
  by a function of an internal module (localdb.nx_adapter reads listings from that text, without a row's decoding).
- quote_table_name: the table that holds a collection, quoted as neosqlite quotes it, from an internal module.
- ObjectId: the type of the `_id`s that neosqlite gives (not bson's) is a class of a module its package does not
  export.
"""
import datetime

import neosqlite.objectid
import neosqlite.sql_utils
from neosqlite.collection import json_helpers
from neosqlite.collection.expr_evaluator.python_evaluators.math_ops import MathPythonMixin
from neosqlite.collection.query_engine import python_aggregation_engine
from neosqlite.collection.query_helper._sql_query_builder import SqlQueryBuilderMixin

from compat import Package

NEOSQLITE = Package("neosqlite", ("1.17.2",), "compat/neosqlite.py")
ObjectId = neosqlite.objectid.ObjectId


def subtract_dates_as_mongodb():
    """Give neosqlite's Python engine MongoDB's `$subtract` of dates, in this process."""
    arithmetic = NEOSQLITE.target(MathPythonMixin, "_evaluate_arithmetic_python")
    NEOSQLITE.target(MathPythonMixin, "_evaluate_operand_python")
    if getattr(arithmetic, "subtracts_dates", False):
        return

    def arithmetic_with_dates(self, operator, operands, document):
        if operator == "$subtract" and isinstance(operands, list) and len(operands) == 2:
            left, right = (self._evaluate_operand_python(operand, document) for operand in operands)
            if isinstance(left, datetime.datetime) and isinstance(right, datetime.datetime):
                return int((_as_utc(left) - _as_utc(right)).total_seconds() * 1000)
            if isinstance(left, datetime.datetime) and isinstance(right, (int, float)):
                return left - datetime.timedelta(milliseconds=right)
        return arithmetic(self, operator, operands, document)

    arithmetic_with_dates.subtracts_dates = True
    MathPythonMixin._evaluate_arithmetic_python = arithmetic_with_dates


def _as_utc(value):
    return value.replace(tzinfo=datetime.timezone.utc) if value.tzinfo is None else value


# MongoDB's order of `_id` types: numbers (by value), then strings, then the rest (ObjectIds, by the text column).
_ID_TYPE_ORDER = "CASE json_type(data, '$._id') WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1 ELSE 2 END"


def sort_ids_as_mongodb():
    """Make neosqlite's SQL sort `_id`s in MongoDB's order, in this process."""
    build = NEOSQLITE.target(SqlQueryBuilderMixin, "_build_sort_clause")
    if getattr(build, "sorts_ids", False):
        return

    def build_sort_clause(self, sort, collation=None):
        if not sort or "_id" not in sort:
            return build(self, sort, collation)
        clauses = []
        for field, direction in sort.items():
            clause = build(self, {field: direction}, collation).removeprefix(" ORDER BY ")
            if field == "_id":
                order = "ASC" if direction == 1 else "DESC"
                clause = f"{_ID_TYPE_ORDER} {order}, json_extract(data, '$._id') {order}, {clause}"
            clauses.append(clause)
        return " ORDER BY " + ", ".join(clauses)

    build_sort_clause.sorts_ids = True
    SqlQueryBuilderMixin._build_sort_clause = build_sort_clause


def aggregate_in_python(collection, docs, stages):
    """What neosqlite's Python aggregation engine gives for `stages` over `docs` (documents of `collection`)."""
    execute = NEOSQLITE.target(python_aggregation_engine, "execute_python_aggregation")
    return execute(_Documents(collection.query_engine, docs), stages)


class _Documents:
    """A collection's query engine that finds `docs`: neosqlite's Python aggregation engine runs over them."""

    def __init__(self, engine, docs):
        self._engine, self._docs = engine, docs

    def find(self, *args, **kwargs):
        return self._docs

    def __getattr__(self, name):
        return getattr(self._engine, name)


def stored_ids(collection):
    """The function (what the `_id` column of a row of `collection` holds, the row's id) -> the row's `_id`."""
    return NEOSQLITE.target(collection, "_resolve_stored_id")


def json_loads(text):
    """The document whose JSON text, as neosqlite stores it, is `text`, with dates as datetimes."""
    return NEOSQLITE.target(json_helpers, "neosqlite_json_loads")(text)


def quote_table_name(name):
    """The SQL name of the table that holds the collection `name`."""
    return NEOSQLITE.target(neosqlite.sql_utils, "quote_table_name")(name)
