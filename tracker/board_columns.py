"""Omniboard's first screen: columns for what differs between runs and for each experiment's score, stored where
Omniboard 2.16.1 keeps its own (`omniboard.custom.columns`: a config path per column; `omniboard.metric.columns`: a
metric and its extremum per column), written only while the database holds no column of the user's.

Omniboard keeps everything else about its table (which columns show, their order, filters, sorting) and its plots
(which metrics are drawn) in the browser's local storage, and shows numbers unrounded; docs/omniboard.md says what
that leaves out.
"""
import json
import math

from runstore.plain_json import dotted_values
from runstore.run_store import LISTED_FIELDS

CUSTOM_COLUMNS = "omniboard.custom.columns"
METRIC_COLUMNS = "omniboard.metric.columns"
MAX_CONFIG_COLUMNS = 8  # more would push the score column off the first screen
IGNORED_CONFIG_KEYS = {"seed"}  # differs between all runs and says nothing about them
SCORE_PREFIX = "val."  # the trainer's result is the best value of a validation metric (ingredients/task.py: score)


def write_first_screen(db):
    """Store the first screen's columns in `db` unless it has columns already; return a line saying what was done."""
    if db[CUSTOM_COLUMNS].count_documents({}) or db[METRIC_COLUMNS].count_documents({}):
        return "Omniboard's columns are the ones saved in the database (left as they are)"
    runs = list(db.runs.find({}, LISTED_FIELDS))  # what `tracker runs` lists: the store's listing index has it
    if not runs:
        return "no runs yet: Omniboard's columns are chosen at the first 'tracker board' with runs"
    config_keys = differing_config_keys(runs)[:MAX_CONFIG_COLUMNS]
    scores = score_metrics(runs)
    for key in config_keys:
        db[CUSTOM_COLUMNS].insert_one({"name": key, "config_path": f"config.{key}"})
    for metric, extremum in scores.items():
        db[METRIC_COLUMNS].insert_one({"name": score_column(metric, extremum), "metric_name": metric,
                                       "extrema": extremum})
    columns = config_keys + [score_column(metric, extremum) for metric, extremum in scores.items()]
    return f"Omniboard's first screen shows the columns {', '.join(columns) or '(none found)'}"


def score_column(metric, extremum):
    return f"{'best' if extremum == 'max' else 'lowest'}_{metric.replace('.', '_')}"


def differing_config_keys(runs):
    """The dotted config keys (trainer.steps, model.arch) whose values differ between `runs`, in config order."""
    values = {}
    for run in runs:
        for key, value in dotted_values(run.get("config") or {}).items():
            if key.split(".")[-1] not in IGNORED_CONFIG_KEYS:
                values.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
    return [key for key, seen in values.items() if len(seen) > 1]


def score_metrics(runs):
    """{metric: "max" or "min"}: the validation metrics whose best value is a run's result, in that direction."""
    found = {}
    for run in runs:
        result = run.get("result")
        if not isinstance(result, (int, float)) or isinstance(result, bool):
            continue
        for summary in run.get("metric_summaries") or []:
            if not str(summary.get("name", "")).startswith(SCORE_PREFIX):
                continue
            for extremum in ("max", "min"):
                value = summary.get(extremum)
                if isinstance(value, float) and math.isclose(value, result) and summary["max"] != summary["min"]:
                    found.setdefault(summary["name"], extremum)
    return found
