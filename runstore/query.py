"""Recorded runs as rows, for `tracker runs`, `tracker compare` and notebooks:

    from runstore.query import runs, metric_history
    table = runs(where=["config.lr>=0.01", "status=COMPLETED"], sort="-result")   # a pandas DataFrame
    history = metric_history(table.id[0], "val.acc")                              # step, value, timestamp

A row holds id, experiment, status, start, stop, duration_s, result, host, commit, tags, local (True for a run still
waiting in RUNS_DIR for `tracker sync`; an unreadable folder there is a row with status UNREADABLE and a warning), the
config flattened with dots (config.model.arch), the data fingerprint (info.data.digest, info.data.splits.val,
info.data.counts.train: ingredients/fingerprint.py), a classification's per-class test metrics
(info.per_class.test.cat.recall, .precision, .f1) and five summaries of
every metric (val.acc.first/last/min/max, and val.acc.argmax: the step of the max). The summaries come from the run
documents (observers.upload stores them), so listing 10,000 runs reads no metric points.

Filters are KEY OP VALUE with OP one of = != < <= > >= ~ (regex search); they compare numbers as numbers, times as
times (status, start>=2026-11-01) and anything else as text. This module is their one home.
"""
from __future__ import annotations

import datetime
import difflib
import functools
import math
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runstore.collector import collector_paused
from runstore.direction import higher_is_better, mixed_directions
from runstore.errors import UserError
from runstore.groups import group_rows
from runstore.layout import PRUNED_TAG
from runstore.liveness import seems_dead
from runstore.run_store import FolderStore, MongoStore, open_run
from runstore.settings import load_settings

if TYPE_CHECKING:
    import pandas as pd

    from runstore.run_store import Listing, Points, StoredRun
    from runstore.settings import Settings

STATS = ("first", "last", "min", "max", "argmax")
RUN_COLUMNS = ("id", "experiment", "status", "start", "stop", "duration_s", "result", "higher_is_better", "host",
               "commit", "tags", "local", "result_metric", "pruned_at_step", "continued_by")
UNREADABLE = "UNREADABLE"  # the status of a run folder whose run.json or config.json cannot be read
DEAD = "INTERRUPTED?"  # the status of a RUNNING run whose process is gone, until `tracker sync` marks it INTERRUPTED
BEST = "best"  # the sort that ranks each experiment's runs best first, by its own direction (higher_is_better)
CONDITION = re.compile(r"\s*([A-Za-z_][\w.\-/]*)\s*(>=|<=|!=|=|<|>|~)\s*(.*?)\s*")
OPERATORS = "= != < <= > >= ~"
WHERE_HELP = f"KEY OP VALUE, OP one of {OPERATORS} (regex), e.g. 'config.lr>=0.01', status=COMPLETED"


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    text: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.text}"

    def matches(self, row: dict[str, Any]) -> bool:
        return _matches(row.get(self.key), self.op, self.text, self)


def parse_condition(text: str) -> Condition:
    """'config.lr>=0.01' as a Condition; UserError for anything else."""
    match = CONDITION.fullmatch(text)
    if match is None:
        raise UserError(f"--where {text!r} is not a condition; write {WHERE_HELP}")
    condition = Condition(*match.groups())
    more = re.match(r"[<>=!~]+", condition.text)  # 'lr>>1', 'lr=<1': one operator, mistyped
    if more:
        raise UserError(f"--where {text!r}: {condition.op + more.group()!r} is not an operator; "
                        f"use one of {OPERATORS}, e.g. {condition.key}>=1")
    if condition.op == "~":
        try:
            re.compile(condition.text)
        except re.error as error:
            raise UserError(f"--where {text!r}: {condition.text!r} is not a regular expression ({error})") from None
    return condition


def conditions(where: Iterable[str] = (), experiment: str | None = None, tag: str | None = None,
               since: str | None = None) -> list[Condition]:
    """The conditions of `tracker runs`' options: --where (each), --experiment, --tag and --since."""
    found = [parse_condition(text) for text in where]
    found += [Condition("experiment", "=", experiment)] if experiment else []
    found += [Condition("tags", "=", tag)] if tag else []
    found += [Condition("start", ">=", since)] if since else []
    return found


def runs(where: Iterable[str] = (), experiment: str | None = None, tag: str | None = None, since: str | None = None,
         sort: str | None = "-start", limit: int | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """A pandas DataFrame with one row per run (MongoDB and RUNS_DIR) that meets every condition, sorted and limited.

    `where`: conditions such as "config.lr>=0.01" (see the module docstring); `sort`: a column, '-' for descending.
    """
    wanted = conditions(where, experiment, tag, since)  # a malformed one fails before any database wait
    return to_frame(selected_rows(wanted, sort, limit, settings))


def groups(by: Sequence[str] | None = None, where: Iterable[str] = (), experiment: str | None = None,
           tag: str | None = None, since: str | None = None, metrics: Sequence[str] = (),
           settings: Settings | None = None) -> pd.DataFrame:
    """A pandas DataFrame with one row per group of the matching runs with equal values of `by` (a list of keys such as
    "config.lr"; None: every config key except the seed), best group first: n, the mean, standard deviation and 95 %
    confidence interval of the result and of each of `metrics` (e.g. "val.loss.min"), and p_vs_best (runstore.groups).
    """
    import pandas as pd  # here, not at the top: `tracker runs` starts faster without it

    wanted = conditions(where, experiment, tag, since)
    return pd.DataFrame(group_selection(list_rows(settings), wanted, by, metrics))


def group_selection(rows: list[dict[str, Any]], wanted: Collection[Condition], by: Sequence[str] | None,
                    metrics: Sequence[str]) -> list[dict[str, Any]]:
    """The groups (runstore.groups.group_rows) of the rows meeting `wanted`; UserError for an unknown key."""
    check_keys(rows, by or [], "--group-by")
    check_keys(rows, metrics, "--metrics")
    matching = select(rows, wanted)
    # Without `by`, the keys whose values differ: grouping by the others, equal in every run, would change nothing.
    return group_rows(matching, by or differing_keys(matching), metrics)


def metric_history(run: object, name: str, settings: Settings | None = None) -> pd.DataFrame:
    """Every point of metric `name` of `run` (an id or a run folder such as runs/3): step, value, timestamp."""
    stored = open_run(str(run), settings)
    steps, values, stamps = _known_metric(stored, name, stored.metric(name))
    import pandas as pd  # here, not at the top: `tracker runs` starts faster without it

    return pd.DataFrame({"step": steps, "value": values, "timestamp": pd.to_datetime(stamps)})


def plotted_metric(run: object, name: str, settings: Settings | None = None) -> Points:
    """(steps, values) of metric `name` of `run` as Omniboard plots it: every point up to runstore.layout.PLOT_POINTS,
    else an even sample. One lookup by the metric's id, whose cost does not grow with the stored runs as
    metric_history's search of the points does on `tracker db` (nx-27017 matches each stored document there)."""
    stored = open_run(str(run), settings)
    return _known_metric(stored, name, stored.plotted_metric(name))


def _known_metric(stored: StoredRun, name: str, series: Points) -> Points:
    """`series` (a metric's arrays, read from `stored`); UserError naming the closest metrics when they are empty."""
    if len(series[0]) == 0:
        raise UserError(f"{stored.label} has no metric {name!r}{_did_you_mean(name, stored.metric_names())}")
    return series


# ---- rows -------------------------------------------------------------------------------------------
def list_rows(settings: Settings | None = None) -> list[dict[str, Any]]:
    """A row (dict) per run in MongoDB, then per run in RUNS_DIR not yet uploaded; only RUNS_DIR when MongoDB is
    down."""
    return selected_rows([], None, None, settings)


def selected_rows(wanted: Collection[Condition], sort: str | None, limit: int | None,
                  settings: Settings | None = None, columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    """select(list_rows(settings), wanted, sort, limit), after check_keys of `columns` (--metrics), as
    stored_selection reads them."""
    settings = settings or load_settings()
    folders = FolderStore(settings.runs_dir)
    mongo = MongoStore.connect(settings)
    if mongo is None:
        print(f"WARNING: MongoDB at {settings.safe_url} is unreachable; listing only the runs in {settings.runs_dir}/",
              file=sys.stderr)
        return stored_selection(None, folders, wanted, sort, limit, columns)
    with mongo:
        return stored_selection(mongo, folders, wanted, sort, limit, columns)


def stored_selection(mongo: MongoStore | None, folders: FolderStore, wanted: Collection[Condition],
                     sort: str | None, limit: int | None, columns: Iterable[str] = (),
                     option: str = "--metrics") -> list[dict[str, Any]]:
    """select(stored_rows(mongo, folders), wanted, sort, limit), after check_keys of `columns` (named by `option` in
    an error). With a limit and a sort by a stored column, MongoDB filters, sorts and cuts (top_rows), so the first
    rows of 100,000 runs cost what they show; otherwise, or when the store's order cannot give them exactly, every
    run is listed."""
    top = top_rows(mongo, wanted, sort, limit) if mongo is not None and limit and sort and sort != BEST else None
    if top is not None:
        local = [row for row in waiting_rows(mongo, folders) if all(condition.matches(row) for condition in wanted)]
        shown = select(top + local, [], sort, limit)
        if set(columns) <= set().union(*shown):  # else every run is read, to know whether any has them
            return shown
    rows = stored_rows(mongo, folders)
    check_keys(rows, columns, option)
    return select(rows, wanted, sort, limit)


# The run document's path of each row column that the store can filter and sort on (the others are derived: _row).
STORED_PATHS = {"experiment": "experiment.name", "start": "start_time", "stop": "stop_time",
                "result": "result", "host": "host.hostname", "tags": "omniboard.tags",
                "result_metric": "info.result_metric", "pruned_at_step": "info.pruned_at_step",
                "continued_by": "info.continued_by"}
STORED_PREFIXES = ("config.", "info.data.", "info.per_class.")  # stored under the same path
STORED_STATUS = {"PRUNED": "COMPLETED", DEAD: "RUNNING"}  # statuses that _row derives from a stored one
FIRST_PAGE = 50  # runs read by top_rows' first query; each further one reads twice as many
PAGES = 3  # queries before top_rows gives up on a filter that few runs meet: listing them all costs less then


def top_rows(mongo: MongoStore, wanted: Collection[Condition], sort: str, limit: int) -> list[dict[str, Any]] | None:
    """At least the first `limit` rows of `mongo` that meet `wanted` in `sort`'s order, as select() orders them,
    read page by page in that order from the store, which filters (store_query: a superset that select() narrows),
    sorts and cuts. None when the store cannot give them exactly: an unstored column, fewer runs holding a value
    than `limit` (select() puts missing and NaN values last), or values of several kinds (numbers, text, times),
    which MongoDB and select() order differently."""
    key = sort.lstrip("-")
    path = _stored_path(key)
    if path is None:
        return None
    query, found, skip, count = store_query(wanted), [], 0, max(limit, FIRST_PAGE)
    for _ in range(PAGES):
        page = _rows(mongo.ranked_listings(query, path, sort.startswith("-"), skip, count))
        found += [row for row in page if _ranked(row.get(key)) and all(c.matches(row) for c in wanted)]
        if len(found) >= limit:
            kinds = {_kind(row[key]) for row in found}
            exact = kinds in ({"number"}, {"text"}) or (kinds == {"time"} and key in ("start", "stop"))
            return found if exact else None
        if len(page) < count:
            return None
        skip, count = skip + count, count * 2
    return None


def store_query(wanted: Iterable[Condition]) -> dict[str, Any]:
    """A MongoDB filter that every run meeting `wanted` meets: their `=` conditions on stored text (a number, a time
    or true/false also match values of other types: select() compares those)."""
    query: dict[str, Any] = {}
    for condition in wanted:
        plain = all(_same_type(value, condition.text) is None for value in (0.0, True, datetime.datetime.min))
        if condition.op != "=" or not plain:
            continue
        if condition.key == "status":
            query.setdefault("status", STORED_STATUS.get(condition.text, condition.text))
        elif path := _stored_path(condition.key):
            query.setdefault(path, condition.text)
    return query


def _stored_path(key: str) -> str | None:
    """The run document's path of row column `key`, or None for a column that _row derives."""
    return STORED_PATHS.get(key) or (key if key.startswith(STORED_PREFIXES) else None)


def _ranked(value: object) -> bool:
    """Whether select() ranks `value` before the missing and NaN ones."""
    return value is not None and not _is_nan(value)


def _kind(value: object) -> str:
    """How MongoDB orders `value` among others: 'number', 'text', 'time', or 'other' (true/false, lists)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number"
    return {str: "text", datetime.datetime: "time"}.get(type(value), "other")


def stored_rows(mongo: MongoStore | None, folders: FolderStore) -> list[dict[str, Any]]:
    """A row per run of the MongoStore `mongo` (None: no database), then per run of the FolderStore `folders` that
    `mongo` does not hold."""
    if mongo is None:
        return _rows(folders.listings())
    listed = mongo.listings()
    uploaded = {listing.uploaded_from for listing in listed if listing.uploaded_from is not None}
    return _rows(listed) + _rows(folders.listings(skip_keys=uploaded))


def matching_rows(mongo: MongoStore | None, folders: FolderStore, wanted: Collection[Condition]
                  ) -> list[dict[str, Any]]:
    """select(stored_rows(mongo, folders), wanted), with MongoDB filtering first on what it can (store_query): a
    sweep's 50 runs among 100,000 are read alone."""
    listed = _rows(mongo.listings(query=store_query(wanted))) if mongo is not None else []
    return select(listed + waiting_rows(mongo, folders), wanted)


def waiting_rows(mongo: MongoStore | None, folders: FolderStore) -> list[dict[str, Any]]:
    """A row per run of `folders` that `mongo` does not hold: those waiting for `tracker sync` (all without one)."""
    return _rows(waiting_listings(mongo, folders))


def waiting_listings(mongo: MongoStore | None, folders: FolderStore) -> list[Listing]:
    """The Listings of waiting_rows."""
    listings = folders.listings()
    held = mongo.copies_held([listing.uploaded_from for listing in listings if listing.uploaded_from is not None]
                             ) if mongo is not None else set()
    return [listing for listing in listings if listing.uploaded_from not in held]


def rows_of(references: Iterable[str], settings: Settings | None = None) -> list[dict[str, Any]]:
    """The rows of the runs named by `references` (ids or run folders), in that order; UserError for unknown ones."""
    settings = settings or load_settings()
    return _rows(open_run(reference, settings).listing() for reference in references)


def listing_row(listing: Listing) -> dict[str, Any]:
    """The row of one runstore.run_store.Listing."""
    return _rows([listing])[0]


def _rows(listings: Iterable[Listing]) -> list[dict[str, Any]]:
    """A row per runstore.run_store.Listing; a run folder that cannot be read is a row with status UNREADABLE."""
    with collector_paused():
        return [_listed_row(listing) for listing in listings]


def _listed_row(listing: Listing) -> dict[str, Any]:
    if listing.problem is not None:
        print(f"WARNING: {listing.problem}; listed as {UNREADABLE}", file=sys.stderr)
        return {**dict.fromkeys(RUN_COLUMNS), "id": listing.id, "status": UNREADABLE, "local": True}
    if listing.row is not None:
        return dict(listing.row)  # a copy: callers may change their rows
    row = _row(listing)
    # A FolderStore may list the folder again; a running run's row changes with the clock (seems_dead).
    if listing.local and row["status"] not in ("RUNNING", DEAD):
        listing.row = dict(row)
    return row


def _row(listing: Listing) -> dict[str, Any]:
    doc, info, config, summaries = listing.doc, listing.info, listing.config, listing.summaries
    assert doc is not None and info is not None and config is not None and summaries is not None  # no `problem`
    start, stop = doc.get("start_time"), doc.get("stop_time")
    end = stop or doc.get("heartbeat")
    repositories = doc.get("experiment", {}).get("repositories") or [{}]
    tags = doc.get("omniboard", {}).get("tags", [])
    status = doc.get("status")
    if status == "RUNNING" and seems_dead(doc, info):
        status = DEAD
    row = {
        "id": listing.id,
        "experiment": doc.get("experiment", {}).get("name"),
        # Sacred records a pruned trial as COMPLETED: it ended normally, early (ingredients.pruning).
        "status": "PRUNED" if status == "COMPLETED" and PRUNED_TAG in tags else status,
        "start": start,
        "stop": stop,
        "duration_s": (end - start).total_seconds() if start and end else None,
        "result": doc.get("result"),
        "higher_is_better": info.get("higher_is_better"),
        "host": doc.get("host", {}).get("hostname"),
        "commit": repositories[0].get("commit"),
        "tags": tags,
        "local": listing.local,
        "result_metric": info.get("result_metric"),
        "pruned_at_step": info.get("pruned_at_step"),
        "continued_by": info.get("continued_by"),  # the run that continued this one (tracker resume, sweep --continue)
    }
    _flatten_into(row, config, "config.")
    _flatten_into(row, info.get("data", {}), "info.data.")  # what it trained on (ingredients.fingerprint)
    _flatten_into(row, info.get("per_class", {}), "info.per_class.")  # e.g. info.per_class.test.cat.recall
    for name, summary in summaries.items():
        row.update(zip(_summary_columns(name), map(summary.get, STATS)))
    return row


@functools.cache
def _summary_columns(metric: str) -> tuple[str, ...]:
    """The column of each of STATS of `metric`: named once, not for every run."""
    return tuple(f"{metric}.{stat}" for stat in STATS)


def _flatten_into(row: dict[str, Any], config: dict[str, Any], prefix: str) -> None:
    """Each value of the nested dict `config` into `row` under its dotted key."""
    for key, value in config.items():
        if isinstance(value, dict):
            _flatten_into(row, value, f"{prefix}{key}.")
        else:
            row[prefix + key] = value


# ---- selecting ---------------------------------------------------------------------------------------
def select(rows: list[dict[str, Any]], conditions: Collection[Condition] = (), sort: str | None = None,
           limit: int | None = None) -> list[dict[str, Any]]:
    """The rows meeting every condition, sorted by `sort` ('-' first for descending; missing and NaN values last),
    at most `limit` of them; sort="best" ranks each experiment's runs best first (rank_best). UserError for a key
    that no row has, naming the closest ones."""
    for condition in conditions:
        check_keys(rows, [condition.key], "--where")
    if sort and sort != BEST:
        check_keys(rows, [sort.lstrip("-")], "--sort")
    rows = [row for row in rows if all(condition.matches(row) for condition in conditions)]
    if sort in (BEST, "result", "-result"):
        note = mixed_directions(rows)
        if note:
            ranking = "each experiment is ranked by its own" if sort == BEST else "--sort best ranks each by its own"
            print(f"NOTE: {note}; {ranking}", file=sys.stderr)
    if sort == BEST:
        rows = rank_best(rows)
    elif sort:
        key = sort.lstrip("-")
        # A diverged run's NaN follows the numbers either way: never the top of a ranking
        nan = [row for row in rows if _is_nan(row.get(key))]
        missing = [row for row in rows if row.get(key) is None]
        present = [row for row in rows if row.get(key) is not None and not _is_nan(row[key])]
        present.sort(key=lambda row: _sort_key(row[key]), reverse=sort.startswith("-"))
        rows = present + nan + missing
    return rows if limit is None else rows[:limit]


def rank_best(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each experiment's runs (experiments by name) best first by its own direction, runs without a result last."""
    def key(row: dict[str, Any]) -> tuple[str, bool, Any]:
        result: Any = row.get("result")
        ranked = isinstance(result, (int, float)) and not isinstance(result, bool) and not math.isnan(result)
        return (str(row.get("experiment")), not ranked, (-result if higher_is_better(row) else result) if ranked else 0)

    return sorted(rows, key=key)


def check_keys(rows: list[dict[str, Any]], keys: Iterable[str], option: str) -> None:
    known = set(RUN_COLUMNS).union(*rows) if rows else set(RUN_COLUMNS)
    for key in keys:
        if key not in known:
            raise UserError(f"{option}: no run has {key!r}{_did_you_mean(key, known)}")


def differing_keys(rows: list[dict[str, Any]], prefix: str = "config.") -> list[str]:
    """The keys starting with `prefix` whose values are not the same in all `rows` (config.seed aside: every run
    draws its own)."""
    keys = sorted(key for key in set().union(*rows) if key.startswith(prefix) and key != "config.seed")
    return [key for key in keys if any(row.get(key) != rows[0].get(key) for row in rows[1:])]


def differing_keys_within_experiments(rows: list[dict[str, Any]], prefix: str = "config.") -> list[str]:
    """The keys that differ between runs of one experiment, of any experiment among `rows`: a key that only one
    experiment has is part of that experiment, not a difference between runs."""
    return sorted(set().union(*(differing_keys(group, prefix) for group in by_experiment(rows).values())))


def by_experiment(rows: Iterable[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    """{experiment name: its rows}, in the order the experiments first appear in `rows`."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["experiment"], []).append(row)
    return groups


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame: the run columns, then config.* and the metric summaries, each sorted by name."""
    import pandas as pd  # here, not at the top: `tracker runs` starts faster without it

    extra = sorted({key for row in rows for key in row} - set(RUN_COLUMNS),
                   key=lambda k: (not k.startswith("config."), k))
    frame = pd.DataFrame.from_records(rows, columns=[*RUN_COLUMNS, *extra])
    for column in ("start", "stop"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _matches(value: Any, op: str, text: str, condition: Condition) -> bool:
    if isinstance(value, list):  # tags: any of them
        return any(_matches(item, op, text, condition) for item in value)
    if value is None:
        return False
    if op == "~":
        return re.search(text, str(value)) is not None
    target = _same_type(value, text)
    if target is None:
        if op in ("=", "!="):
            return (str(value) == text) == (op == "=")
        kind, example = _KINDS.get(type(value), ("text", "abc"))
        raise UserError(f"--where {condition}: {condition.key} holds {kind} values, and {text!r} is not one; "
                        f"compare it with a {kind}, e.g. {condition.key}{op}{example}")
    return {"=": value == target, "!=": value != target, "<": value < target, "<=": value <= target,
            ">": value > target, ">=": value >= target}[op]


_KINDS = {bool: ("true or false", "true"), int: ("number", "0.5"), float: ("number", "0.5"),
          datetime.datetime: ("time", "2026-11-01T14:30")}


def _same_type(value: object, text: str) -> Any:
    """`text` as a value of the type of `value`, or None when it cannot be one."""
    try:
        if isinstance(value, bool):
            return {"true": True, "false": False}[text.lower()]
        if isinstance(value, (int, float)):
            return float(text)
        if isinstance(value, datetime.datetime):
            return datetime.datetime.fromisoformat(text)
    except (KeyError, ValueError):
        return None
    return text if isinstance(value, str) else None


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _sort_key(value: Any) -> tuple[int, Any, str]:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else "; `tracker runs --format csv` shows every column"
