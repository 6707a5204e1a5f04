"""Omniboard's first screen: columns for what differs between runs and for each experiment's score, and the
browser's defaults that show them.

The columns are stored where Omniboard 2.16.1 keeps its own (`omniboard.custom.columns`: a config path per column;
`omniboard.metric.columns`: a metric and its extremum per column), marked as the project's so that each start follows
the runs without touching the user's. Everything else about its table (which columns show, their order and width)
and its plots (which metrics are drawn) Omniboard keeps in the browser's local storage: `browser_defaults` gives what
a browser without its own settings starts with (tracker/omniboard.js writes it there). Omniboard has no setting for
rounding numbers; docs/omniboard.md says what that leaves out.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
import math

from runstore.plain_json import dotted_values
from runstore.run_store import LISTED_FIELDS

if TYPE_CHECKING:
    from pymongo.database import Database

CUSTOM_COLUMNS = "omniboard.custom.columns"
METRIC_COLUMNS = "omniboard.metric.columns"
MADE_BY = {"made_by": "tracker board"}  # marks the project's columns; the rest are the user's
MAX_CONFIG_COLUMNS = 8  # more would push the score column off the first screen
IGNORED_CONFIG_KEYS = {"seed"}  # differs between all runs and says nothing about them
SCORE_PREFIX = "val."  # the trainer's result is the best value of a validation metric (ingredients/task.py: score)
LOSS = "loss"  # metrics whose name holds it are drawn by default, beside the score
# Omniboard's local storage keys (web/src/components): the runs table's state, and the metric plot's default
# selection, whose key Omniboard builds from a property it is never given, hence "undefined".
TABLE_KEY = "default|RunsTable|1"
PLOT_KEY = "undefined|MetricsPlotView|default"
FIRST_COLUMNS = ["_id", "experiment_name", "status", "start_time", "duration"]
LAST_COLUMNS = ["tags"]  # a sweep's trials carry its tag there
# Omniboard's other columns, hidden: `result` repeats the score column.
HIDDEN_COLUMNS = ["result", "heartbeat", "stop_time", "hostname", "command", "resources", "format", "notes"]
COLUMN_PATHS = {"experiment_name": "experiment.name", "hostname": "host.hostname", "tags": "omniboard.tags",
                "notes": "omniboard.notes"}
COLUMN_WIDTHS = {"_id": 70, "tags": 250, "notes": 250}  # Omniboard's own; the rest 150 px
DEFAULT_WIDTH = 150


def listed_runs(db: Database[Any]) -> list[dict[str, Any]]:
    """What `tracker runs` lists of each run (the store's listing index has it), its config and metric summaries as
    the columns read them: a stored value of another type counts as none, so no run keeps the board from starting."""
    runs = list(db.runs.find({}, LISTED_FIELDS))
    for run in runs:
        summaries = run.get("metric_summaries")
        run["config"] = run["config"] if isinstance(run.get("config"), dict) else {}
        run["metric_summaries"] = [summary for summary in summaries if isinstance(summary, dict)] \
            if isinstance(summaries, list) else []
    return runs


def write_first_screen(db: Database[Any], runs: list[dict[str, Any]]) -> str:
    """Store the columns that `runs` call for in `db`, in place of the project's earlier ones and beside the user's;
    return a line saying what the first screen shows."""
    config_keys = differing_config_keys(runs)[:MAX_CONFIG_COLUMNS]
    wanted = {
        CUSTOM_COLUMNS: [{"name": key, "config_path": f"config.{key}"} for key in config_keys],
        METRIC_COLUMNS: [{"name": score_column(metric, extremum), "metric_name": metric, "extrema": extremum}
                         for metric, extremum in score_metrics(runs).items()],
    }
    users: list[str] = []
    for collection, columns in wanted.items():
        existing = list(db[collection].find())
        ours = [column for column in existing if is_ours(column)]
        users += [column["name"] for column in existing if not is_ours(column)]
        stale = [column["_id"] for column in ours if strip(column) not in columns]
        if stale:
            db[collection].delete_many({"_id": {"$in": stale}})
        kept = [column for column in existing if column["_id"] not in stale]
        taken = {column["name"] for column in kept} | {source(column) for column in kept}
        for column in columns:
            if column["name"] not in taken and source(column) not in taken:  # a user's column may show it already
                db[collection].insert_one({**column, **MADE_BY})
    custom_columns, metric_columns = stored_columns(db)
    shown = [column["name"] for column in custom_columns + metric_columns if is_ours(column)]
    if not runs:
        note = "no runs yet: Omniboard's columns follow the runs from the next 'tracker board'"
    else:
        note = f"Omniboard's first screen shows the columns {', '.join(shown) or '(none found)'}"
    return note + (f", beside your own: {', '.join(users)}" if users else "")


def is_ours(column: dict[str, Any]) -> bool:
    """A column the project stored and the user left as it was (renamed, it is the user's)."""
    if column.get("made_by") != MADE_BY["made_by"]:
        return False
    if "config_path" in column:
        return column["config_path"] == f"config.{column['name']}"
    return column.get("name") == score_column(column.get("metric_name", ""), column.get("extrema"))


def source(column: dict[str, Any]) -> Any:
    """What a column shows: its config path, or its metric and extremum."""
    return column.get("config_path") or (column.get("metric_name"), column.get("extrema"))


def strip(column: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in column.items() if key not in ("_id", *MADE_BY)}


def stored_columns(db: Database[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(custom columns, metric columns) as Omniboard reads them."""
    return list(db[CUSTOM_COLUMNS].find()), list(db[METRIC_COLUMNS].find())


def browser_defaults(runs: list[dict[str, Any]], custom_columns: list[dict[str, Any]],
                     metric_columns: list[dict[str, Any]]) -> dict[str, Any]:
    """{local storage key: value}: Omniboard's table showing id, experiment, status, start, duration, the stored
    columns and tags, with its other columns hidden but listed; its metric plot drawing the scores and the losses."""
    custom_names = [column["name"] for column in custom_columns]
    metric_names = [column["name"] for column in metric_columns]
    config_columns = sorted({f"c_{key}" for run in runs for key in (run.get("config") or {})})
    shown = [*FIRST_COLUMNS, *custom_names, *metric_names, *LAST_COLUMNS]
    hidden = [key for key in [*HIDDEN_COLUMNS, *config_columns] if key not in shown]
    paths = {**COLUMN_PATHS, **{key: f"config.{key[2:]}" for key in config_columns},
             **{column["name"]: column["config_path"] for column in custom_columns}}
    defaults: dict[str, Any] = {TABLE_KEY: {
        "columnOrder": shown,
        "dropdownOptions": [{"label": header_text(key), "value": key, "selected": key in shown}
                            for key in shown + hidden],
        "columnWidths": {key: COLUMN_WIDTHS.get(key, DEFAULT_WIDTH) for key in shown + hidden},
        "columnNameMap": paths,
        "metricAndCustomColumns": [{"name": name, "value": name} for name in metric_names] + [
            {"name": column["name"], "value": column["config_path"]} for column in custom_columns],
    }}
    metrics = sorted({summary["name"] for run in runs for summary in run.get("metric_summaries") or []
                      if isinstance(summary.get("name"), str)})
    drawn = [name for name in metrics if name in score_metrics(runs) or LOSS in name]
    if drawn:
        defaults[PLOT_KEY] = {"metricNameOptions": [{"label": name, "value": name, "selected": name in drawn}
                                                    for name in metrics]}
    return defaults


def header_text(key: str) -> str:
    """A column's header as Omniboard writes it (web/src/components/Helpers/utils.js: capitalize)."""
    return " ".join(word[:1].upper() + word[1:] for word in key.split("_"))


def score_column(metric: str, extremum: str | None) -> str:
    return f"{'best' if extremum == 'max' else 'lowest'}_{metric.replace('.', '_')}"


def differing_config_keys(runs: list[dict[str, Any]]) -> list[str]:
    """The dotted config keys (trainer.steps, model.arch) whose values differ between `runs`, in config order."""
    values: dict[str, set[str]] = {}
    for run in runs:
        for key, value in dotted_values(run.get("config") or {}).items():
            if key.split(".")[-1] not in IGNORED_CONFIG_KEYS:
                values.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
    return [key for key, seen in values.items() if len(seen) > 1]


def score_metrics(runs: list[dict[str, Any]]) -> dict[str, str]:
    """{metric: "max" or "min"}: the validation metrics whose best value is a run's result, in that direction."""
    found: dict[str, str] = {}
    for run in runs:
        result = run.get("result")
        if not isinstance(result, (int, float)) or isinstance(result, bool):
            continue
        for summary in run.get("metric_summaries") or []:
            if not str(summary.get("name", "")).startswith(SCORE_PREFIX):
                continue
            for extremum in ("max", "min"):
                value = summary.get(extremum)
                constant = summary.get("max") == summary.get("min")
                if isinstance(value, float) and math.isclose(value, result) and not constant:
                    found.setdefault(summary["name"], extremum)
    return found
