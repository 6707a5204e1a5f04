"""The figures of a sweep (or any selection of runs), shared by `tracker report` and `tracker ui`'s sweep page:
parallel coordinates of the varied parameters and the result, the result against each parameter (log axis for
loguniform ones), the learning curves of the best runs and the parameters' importance. Failed and pruned runs are
marked.

Figures are plotly's JSON (dicts), made with validate=False: plotly.graph_objects would validate and copy every
point, 10 s for a sweep of 1,000 runs.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runstore.direction import higher_is_better
from runstore.errors import UserError
from runstore.groups import completed, group_rows, is_number
from runstore.query import plotted_metric
from tracker.importance import Importance, importances

if TYPE_CHECKING:
    from runstore.run_store import Points

PRUNED, FAILED = "PRUNED", "FAILED"
MARKERS = {"COMPLETED": ("circle", "#1f77b4"), PRUNED: ("diamond-open", "#ff7f0e"), FAILED: ("x", "#d62728")}
Figure = dict[str, Any]  # plotly's JSON of a figure: data and layout


@dataclass(frozen=True)
class ReportContent:
    """What a report of runs shows (gather), computed once for its figures, tables and PNG."""

    title: str
    rows: list[dict[str, Any]]  # the runs, as runstore.query rows
    done: list[dict[str, Any]]  # the completed ones with a result (runstore.groups.completed)
    parameters: list[str]  # the config keys the runs vary
    log_keys: list[str]  # those of them shown on a log axis
    higher: bool  # whether a higher result is better
    best: list[dict[str, Any]]  # the best completed runs, best first
    curves: list[tuple[dict[str, Any], Points | None]]  # each of `best` with a result metric: (steps, values) of it
    importance: list[Importance]  # most important first
    importance_note: str | None  # why there is no importance
    groups: list[dict[str, Any]]  # runstore.groups.group_rows of the runs by `parameters`
    ran: str = ""  # what ran: the script, its fixed arguments, the commits (tracker.report.what_ran)
    verdict: str | None = None  # the HTML of the paired verdict (tracker.report.grouped_verdict)


def gather(rows: list[dict[str, Any]], parameters: list[str], log_keys: list[str], top: int, title: str,
           curve: Callable[[dict[str, Any]], Points | None] | None = None) -> ReportContent:
    """What a report shows, computed once for its figures, tables and PNG; `curve(row)`: (steps, values) of the
    row's result metric, or None (default: read with runstore.query.plotted_metric)."""
    done = completed(rows)
    higher = all(higher_is_better(row) for row in done)
    best = sorted(done, key=lambda row: -row["result"] if higher else row["result"])[:top]
    curves = [(row, (curve or _curve)(row)) for row in best if row.get("result_metric")]
    try:
        importance, importance_note = importances(rows, parameters, log_keys), None
    except UserError as error:
        importance, importance_note = [], str(error)
    return ReportContent(title, rows, done, parameters, log_keys, higher, best, curves, importance, importance_note,
                         group_rows(rows, parameters))


def _curve(row: dict[str, Any]) -> Points | None:
    """(steps, values) of `row`'s score metric, or None."""
    try:
        return plotted_metric(row["id"], row["result_metric"])
    except UserError:
        return None  # a run that logged no score metric: it has no curve


def outcome(row: dict[str, Any]) -> str:
    """COMPLETED, PRUNED or FAILED (anything else that has no result: interrupted, still running, failed)."""
    if row.get("pruned_at_step") is not None:
        return PRUNED
    return "COMPLETED" if row.get("status") == "COMPLETED" and is_number(row.get("result")) else FAILED


def figures(content: ReportContent) -> list[tuple[str, Figure]]:
    """(heading, plotly figure as a dict) of each plot in the report."""
    result_label = f"result ({'higher' if content.higher else 'lower'} is better)"
    shown: list[tuple[str, Figure]] = []
    if content.parameters and content.done:
        shown.append(("Parameters and result", _parallel_coordinates(content, result_label)))
    for key in content.parameters:
        shown.append((f"Result against {key}", _result_against(content, key, result_label)))
    if content.curves:
        metric = content.curves[0][0]["result_metric"]
        traces = [{"type": "scatter", "x": curve[0], "y": curve[1],
                   "mode": "lines+markers", "name": f"run {row['id']} ({row['result']:.4g})"}
                  for row, curve in content.curves if curve is not None]
        shown.append((f"Learning curves ({metric}) of the {len(content.curves)} best runs",
                      {"data": traces, "layout": {"xaxis": {"title": {"text": "step"}},
                                                  "yaxis": {"title": {"text": metric}}}}))
    if content.importance:
        items = content.importance[::-1]
        bars = {"type": "bar", "orientation": "h", "x": [item["importance"] for item in items],
                "y": [item["parameter"] for item in items], "text": [item["better_with"] for item in items]}
        shown.append(("Importance", {"data": [bars], "layout": {"xaxis": {"title": {
            "text": "importance (fANOVA share of the result's variance)"}}, "yaxis": {"automargin": True}}}))
    for _, figure in shown:
        figure["layout"].update(height=420, margin={"l": 60, "r": 30, "t": 40, "b": 50})
    return shown


def _parallel_coordinates(content: ReportContent, result_label: str) -> Figure:
    done = content.done
    dimensions: list[dict[str, Any]] = []
    for key in content.parameters:
        values: list[Any] = [row.get(key) for row in done]
        if all(is_number(value) for value in values):
            log = key in content.log_keys
            dimensions.append({"label": f"log10({key})" if log else key,
                               "values": [math.log10(value) if log else value for value in values]})
        else:
            texts = [axis_value(value) for value in values]
            labels = sorted(set(texts), key=str)
            dimensions.append({"label": key, "values": [labels.index(text) for text in texts],
                               "tickvals": list(range(len(labels))), "ticktext": [str(label) for label in labels]})
    results = [row["result"] for row in done]
    dimensions.append({"label": result_label, "values": results})
    line = {"color": results, "colorscale": "Viridis", "reversescale": not content.higher, "showscale": True}
    return {"data": [{"type": "parcoords", "dimensions": dimensions, "line": line}], "layout": {}}


def _result_against(content: ReportContent, key: str, result_label: str) -> Figure:
    done = content.done
    floor = (min if content.higher else max)(row["result"] for row in done) if done else 0
    traces = []
    for kind, (symbol, color) in MARKERS.items():
        rows = [row for row in content.rows if outcome(row) == kind and row.get(key) is not None]
        if not rows:
            continue
        # Runs without a result are drawn at the worst result, so that their parameter values show.
        label = {"COMPLETED": "completed", PRUNED: "pruned", FAILED: "failed (no result: drawn at the worst)"}[kind]
        traces.append({
            "type": "scatter", "mode": "markers", "name": label,
            "x": [axis_value(row.get(key)) for row in rows],
            "y": [row["result"] if is_number(row.get("result")) else floor for row in rows],
            "marker": {"symbol": symbol, "color": color, "size": 9},
            "text": [f"run {row['id']}: {status_text(row)}" for row in rows], "hovertemplate": "%{text}<br>%{x}: %{y}"})
    xaxis = {"title": {"text": key}, **({"type": "log"} if key in content.log_keys else {})}
    return {"data": traces, "layout": {"xaxis": xaxis, "yaxis": {"title": {"text": result_label}}}}


def axis_value(value: Any) -> Any:
    return value if is_number(value) or isinstance(value, str) else json.dumps(value)


def status_text(row: dict[str, Any]) -> str:
    return f"PRUNED at step {row['pruned_at_step']}" if row.get("pruned_at_step") is not None else row["status"]
