"""`tracker report`: one picture of a sweep (or any selection of runs) as one self-contained HTML file.

The file holds plotly's figures with plotly.js inline (no script, style or font from the network, so it opens
offline and can be mailed or archived with a paper's data): a parallel-coordinates plot of the varied parameters
and the result, the result against each parameter (log axis for loguniform ones), the learning curves of the best
runs, the parameters' importance (tracker.importance), the grouped statistics (runstore.groups) and every run with
its status. Failed runs are marked (they have no result); so are pruned ones: a run whose info holds
`pruned_at_step` (docs/answers.md). --png writes a static summary with matplotlib.
"""
import contextlib
import html
import importlib
import json
import math
import threading
from pathlib import Path

from observers.startup import imports_done, quick_start
from runstore.atomic_file import write_atomically
from runstore.errors import UserError
from runstore.groups import completed, group_rows, is_number, stat_columns
from runstore.query import higher_is_better, plotted_metric
from tracker.importance import importances
from tracker.runs import cell
from tracker.selection import add_selection_arguments, selected

TOP_K = 5  # learning curves of this many best runs, by default
PRUNED, FAILED = "PRUNED", "FAILED"
MARKERS = {"COMPLETED": ("circle", "#1f77b4"), PRUNED: ("diamond-open", "#ff7f0e"), FAILED: ("x", "#d62728")}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report of a sweep: parameters, results, curves, importance, groups",
        description=(
            "Write the selected runs (--sweep ID, or --where/--experiment/--tag) as one HTML file that works offline: "
            "parallel coordinates of the varied parameters and the result, the result against each parameter, the "
            "learning curves of the best runs, the importance of each parameter, the statistics of each group of "
            "runs that differ only in their seed, and every run with its status (failed and pruned runs marked)."
        ),
    )
    add_selection_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write, e.g. report.html")
    parser.add_argument("--png", metavar="FILE", help="also write a static summary figure, e.g. report.png")
    parser.add_argument("--top", type=int, default=TOP_K, metavar="K",
                        help=f"learning curves of the K best runs (default: {TOP_K})")
    parser.set_defaults(func=run)


def run(args):
    if args.top < 1:
        raise UserError(f"--top {args.top} must be at least 1, e.g. --top 5")
    for option, path in (("--out", args.out), ("--png", args.png)):
        if path and not Path(path).resolve().parent.is_dir():
            raise UserError(f"{option} {path}: the folder {Path(path).parent} does not exist; create it first")
    # fANOVA's scikit-learn takes ~1.3 s to import: import it while the runs are read from the database
    threading.Thread(target=_import_quietly, args=("optuna.importance",)).start()
    rows, parameters, log_keys = selected(args)
    content = gather(rows, parameters, log_keys, args.top, title=_title(args))
    print(f"report: {len(rows)} runs, {len(content['done'])} completed; writing {args.out}", flush=True)
    write_atomically(Path(args.out), html_report(content).encode())
    if args.png:
        write_atomically(Path(args.png), png_summary(content))
    print(f"report: wrote {args.out}" + (f" and {args.png}" if args.png else ""))
    return 0


def _import_quietly(name):
    """Import module `name`, collecting rarely meanwhile (observers.startup: ~0.15 s of scikit-learn's import); a
    failure shows where it is imported for use."""
    quick_start(git=False)
    try:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    finally:
        imports_done()


def _title(args):
    chosen = [f"experiment={args.experiment}" if args.experiment else "", f"tag={args.tag}" if args.tag else "",
              *args.where]
    return f"Sweep {args.sweep}" if args.sweep else "Runs " + ", ".join(filter(None, chosen))


def gather(rows, parameters, log_keys, top, title):
    """What the report shows, computed once for the HTML file and the PNG."""
    done = completed(rows)
    higher = all(higher_is_better(row) for row in done)
    best = sorted(done, key=lambda row: -row["result"] if higher else row["result"])[:top]
    curves = [(row, _curve(row)) for row in best if row.get("result_metric")]
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


# ---- figures ------------------------------------------------------------------------------------------------
# Figures are plotly's JSON (dicts), written with validate=False: plotly.graph_objects would validate and copy every
# point, 10 s for a sweep of 1,000 runs.
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
            "text": "importance (fANOVA share of the result's variance)"}}}}))
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
            texts = [_axis_value(value) for value in values]
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
            "x": [_axis_value(row.get(key)) for row in rows],
            "y": [row["result"] if is_number(row.get("result")) else floor for row in rows],
            "marker": {"symbol": symbol, "color": color, "size": 9},
            "text": [f"run {row['id']}: {_status(row)}" for row in rows], "hovertemplate": "%{text}<br>%{x}: %{y}"})
    xaxis = {"title": {"text": key}, **({"type": "log"} if key in content["log_keys"] else {})}
    return {"data": traces, "layout": {"xaxis": xaxis, "yaxis": {"title": {"text": result_label}}}}


def _axis_value(value):
    return value if is_number(value) or isinstance(value, str) else json.dumps(value)


def _status(row):
    return f"PRUNED at step {row['pruned_at_step']}" if row.get("pruned_at_step") is not None else row.get("status")


# ---- the HTML file ------------------------------------------------------------------------------------------
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 90%; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
tr.FAILED td {{ color: #d62728; }} tr.PRUNED td {{ color: #ff7f0e; }}
.note {{ color: #555; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
{sections}
</body></html>
"""


def html_report(content):
    import plotly.io

    sections = []
    for index, (heading, figure) in enumerate(figures(content)):
        plot = plotly.io.to_html(figure, full_html=False, include_plotlyjs=index == 0, validate=False,
                                 config={"displaylogo": False}, div_id=f"plot-{index}")
        sections.append(f"<h2>{html.escape(heading)}</h2>\n<div class=\"plot\">{plot}</div>")
    if content["importance_note"]:
        sections.append(f"<h2>Importance</h2>\n<p class=\"note\">{html.escape(content['importance_note'])}</p>")
    sections.append("<h2>Groups (runs that differ only in their seed)</h2>\n" + _groups_table(content))
    sections.append("<h2>Runs</h2>\n" + _runs_table(content))
    rows = content["rows"]
    counts = {kind: sum(outcome(row) == kind for row in rows) for kind in MARKERS}
    summary = (f"{len(rows)} runs: {counts['COMPLETED']} completed, {counts[PRUNED]} pruned, {counts[FAILED]} failed "
               f"or unfinished. The result is {'higher' if content['higher'] else 'lower'} is better.")
    return PAGE.format(title=html.escape(content["title"]), summary=html.escape(summary), sections="\n".join(sections))


def _groups_table(content):
    columns = [*content["parameters"], "n", "not_completed", *stat_columns("result"), "p_vs_best"]
    return _table(columns, [[cell(group.get(column), column) for column in columns] for group in content["groups"]])


def _runs_table(content):
    columns = ["id", "status", "result", *content["parameters"]]
    lines = [[str(row["id"]), _status(row), *(cell(row.get(column), column) for column in columns[2:])]
             for row in content["rows"]]
    return _table(columns, lines, [outcome(row) for row in content["rows"]])


def _table(columns, lines, classes=None):
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        f"<tr class=\"{kind}\">" + "".join(f"<td>{html.escape(text)}</td>" for text in line) + "</tr>"
        for line, kind in zip(lines, classes or [""] * len(lines)))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---- the PNG summary ----------------------------------------------------------------------------------------
def png_summary(content):
    """A static figure (matplotlib, PNG bytes): the result against each parameter, the curves, the importance."""
    import io

    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    panels = len(content["parameters"]) + bool(content["curves"]) + bool(content["importance"])
    figure = Figure(figsize=(4.5 * max(panels, 1), 4), layout="constrained")
    axes = figure.subplots(1, max(panels, 1), squeeze=False)[0]
    for ax, key in zip(axes, content["parameters"]):
        for kind, (_, color) in MARKERS.items():
            rows = [row for row in content["rows"] if outcome(row) == kind and is_number(row.get("result"))]
            ax.scatter([_axis_value(row.get(key)) for row in rows], [row["result"] for row in rows], color=color,
                       label=kind.lower(), marker="o" if kind == "COMPLETED" else "x")
        ax.set(xlabel=key, ylabel="result", xscale="log" if key in content["log_keys"] else "linear")
    panel = len(content["parameters"])
    if content["curves"]:
        for row, curve in content["curves"]:
            if curve is not None:
                axes[panel].plot(*curve, label=f"run {row['id']}")
        axes[panel].set(xlabel="step", ylabel=content["curves"][0][0]["result_metric"], title="best runs")
        axes[panel].legend(fontsize="small")
        panel += 1
    if content["importance"]:
        items = content["importance"][::-1]
        axes[panel].barh([item["parameter"] for item in items], [item["importance"] for item in items])
        axes[panel].set(xlabel="importance (fANOVA)")
    figure.suptitle(content["title"])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
