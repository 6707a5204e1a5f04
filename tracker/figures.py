"""The figures of a sweep (or any selection of runs), shared by `tracker report` and `tracker ui`'s sweep page:
parallel coordinates of the varied parameters and the result, the result against each parameter (log axis for
loguniform ones), the learning curves of the best runs and the parameters' importance. Failed and pruned runs are
marked.

Figures are plotly's JSON (dicts), made with validate=False: plotly.graph_objects would validate and copy every
point, 10 s for a sweep of 1,000 runs.
"""
import json
import math

from runstore.errors import UserError
from runstore.groups import completed, group_rows, is_number
from runstore.query import higher_is_better, plotted_metric
from tracker.importance import importances

PRUNED, FAILED = "PRUNED", "FAILED"
MARKERS = {"COMPLETED": ("circle", "#1f77b4"), PRUNED: ("diamond-open", "#ff7f0e"), FAILED: ("x", "#d62728")}


def gather(rows, parameters, log_keys, top, title, curve=None):
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
    return {"title": title, "rows": rows, "done": done, "parameters": parameters, "log_keys": log_keys,
            "higher": higher, "best": best, "curves": curves, "importance": importance,
            "importance_note": importance_note, "groups": group_rows(rows, parameters)}


def _curve(row):
    """(steps, values) of `row`'s score metric, or None."""
    try:
        return plotted_metric(row["id"], row["result_metric"])
    except UserError:
        return None  # a run that logged no score metric: it has no curve


def outcome(row):
    """COMPLETED, PRUNED or FAILED (anything else that has no result: interrupted, still running, failed)."""
    if row.get("pruned_at_step") is not None:
        return PRUNED
    return "COMPLETED" if row.get("status") == "COMPLETED" and is_number(row.get("result")) else FAILED


def figures(content):
    """(heading, plotly figure as a dict) of each plot in the report."""
    result_label = f"result ({'higher' if content['higher'] else 'lower'} is better)"
    shown = []
    if content["parameters"] and content["done"]:
        shown.append(("Parameters and result", _parallel_coordinates(content, result_label)))
    for key in content["parameters"]:
        shown.append((f"Result against {key}", _result_against(content, key, result_label)))
    if content["curves"]:
        metric = content["curves"][0][0]["result_metric"]
        traces = [{"type": "scatter", "x": curve[0], "y": curve[1],
                   "mode": "lines+markers", "name": f"run {row['id']} ({row['result']:.4g})"}
                  for row, curve in content["curves"] if curve is not None]
        shown.append((f"Learning curves ({metric}) of the {len(content['curves'])} best runs",
                      {"data": traces, "layout": {"xaxis": {"title": {"text": "step"}},
                                                  "yaxis": {"title": {"text": metric}}}}))
    if content["importance"]:
        items = content["importance"][::-1]
        bars = {"type": "bar", "orientation": "h", "x": [item["importance"] for item in items],
                "y": [item["parameter"] for item in items], "text": [item["better_with"] for item in items]}
        shown.append(("Importance", {"data": [bars], "layout": {"xaxis": {"title": {
            "text": "importance (fANOVA share of the result's variance)"}}, "yaxis": {"automargin": True}}}))
    for _, figure in shown:
        figure["layout"].update(height=420, margin={"l": 60, "r": 30, "t": 40, "b": 50})
    return shown


def _parallel_coordinates(content, result_label):
    done = content["done"]
    dimensions = []
    for key in content["parameters"]:
        values = [row.get(key) for row in done]
        if all(is_number(value) for value in values):
            log = key in content["log_keys"]
            dimensions.append({"label": f"log10({key})" if log else key,
                               "values": [math.log10(value) if log else value for value in values]})
        else:
            texts = [axis_value(value) for value in values]
            labels = sorted(set(texts), key=str)
            dimensions.append({"label": key, "values": [labels.index(text) for text in texts],
                               "tickvals": list(range(len(labels))), "ticktext": [str(label) for label in labels]})
    results = [row["result"] for row in done]
    dimensions.append({"label": result_label, "values": results})
    line = {"color": results, "colorscale": "Viridis", "reversescale": not content["higher"], "showscale": True}
    return {"data": [{"type": "parcoords", "dimensions": dimensions, "line": line}], "layout": {}}


def _result_against(content, key, result_label):
    done = content["done"]
    floor = (min if content["higher"] else max)(row["result"] for row in done) if done else 0
    traces = []
    for kind, (symbol, color) in MARKERS.items():
        rows = [row for row in content["rows"] if outcome(row) == kind and row.get(key) is not None]
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
    xaxis = {"title": {"text": key}, **({"type": "log"} if key in content["log_keys"] else {})}
    return {"data": traces, "layout": {"xaxis": xaxis, "yaxis": {"title": {"text": result_label}}}}


def axis_value(value):
    return value if is_number(value) or isinstance(value, str) else json.dumps(value)


def status_text(row):
    return f"PRUNED at step {row['pruned_at_step']}" if row.get("pruned_at_step") is not None else row.get("status")
