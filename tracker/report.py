"""`tracker report`: one picture of a sweep (or any selection of runs) as one self-contained HTML file.

The file holds plotly's figures with plotly.js inline (no script, style or font from the network, so it opens
offline and can be mailed or archived with a paper's data): a parallel-coordinates plot of the varied parameters
and the result, the result against each parameter (log axis for loguniform ones), the learning curves of the best
runs, the parameters' importance (tracker.importance), the grouped statistics (runstore.groups), the paired verdict
of a selection that varies one key over two values (docs/paired.md) and every run with its status. Failed runs are
marked (they have no result); so are pruned ones: a run whose info holds `pruned_at_step` (docs/answers.md). --png
writes a static summary with matplotlib.
"""
from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstore.atomic_file import write_atomically
from runstore.errors import UserError
from runstore.groups import completed, is_number, stat_columns
from runstore.paired import seed_comparison
from runstore.predictions import SPLIT
from runstore.run_store import open_run
from tracker.figures import FAILED, MARKERS, PRUNED, ReportContent, axis_value, figures, gather, outcome, status_text
from tracker.runs import cell
from tracker.search_space import split_arguments
from tracker.selection import add_selection_arguments, selected, sweep_record
from tracker.verdict_html import run_thumbnails, seed_verdict_html

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

    from tracker.sweep import SweepRecord

TOP_K = 5  # learning curves of this many best runs, by default


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
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


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UserError(f"--top {args.top} must be at least 1, e.g. --top 5")
    for option, path in (("--out", args.out), ("--png", args.png)):
        if path and not Path(path).resolve().parent.is_dir():
            raise UserError(f"{option} {path}: the folder {Path(path).parent} does not exist; create it first")
    rows, parameters, log_keys = selected(args)
    content = dataclasses.replace(gather(rows, parameters, log_keys, args.top, title=_title(args)),
                                  ran=what_ran(sweep_record(args.sweep) if args.sweep else None, rows),
                                  verdict=grouped_verdict(rows, parameters))
    print(f"report: {len(rows)} runs, {len(content.done)} completed; writing {args.out}", flush=True)
    write_atomically(Path(args.out), html_report(content).encode())
    if args.png:
        write_atomically(Path(args.png), png_summary(content))
    print(f"report: wrote {args.out}" + (f" and {args.png}" if args.png else ""))
    return 0


def _title(args: argparse.Namespace) -> str:
    chosen = [f"experiment={args.experiment}" if args.experiment else "", f"tag={args.tag}" if args.tag else "",
              *args.where]
    return f"Sweep {args.sweep}" if args.sweep else "Runs " + ", ".join(filter(None, chosen))


# ---- the HTML file ------------------------------------------------------------------------------------------
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 90%; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
tr.FAILED td {{ color: #d62728; }} tr.PRUNED td {{ color: #ff7f0e; }}
.note {{ color: #555; }}
p.verdict {{ margin: 0.2em 0; font-family: monospace; }}
img.thumbnail {{ width: 48px; height: 48px; image-rendering: pixelated; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<p class="note">{ran}</p>
{sections}
</body></html>
"""


def what_ran(record: SweepRecord | None, rows: list[dict[str, Any]]) -> str:
    """One sentence: the script and fixed arguments of the sweep's `record` (None: not a sweep's runs), and the
    commits of its runs."""
    commits = sorted({row["commit"][:12] for row in rows if isinstance(row.get("commit"), str)})
    at = f" at commit {', '.join(commits)}" if commits else " (no git commit recorded)"
    if record is None:
        return f"The runs ran{at}."
    fixed, _ = split_arguments(record["arguments"])
    script = Path(record["script"])
    shown = script.relative_to(Path.cwd()) if script.is_relative_to(Path.cwd()) else script
    return (f"The sweep ran {shown}{at}, with " + (f"the fixed arguments {' '.join(fixed)}" if fixed else
                                                    "no fixed arguments") + " besides the swept parameters.")


def html_report(content: ReportContent) -> str:
    import plotly.io

    sections = []
    for index, (heading, figure) in enumerate(figures(content)):
        plot = plotly.io.to_html(figure, full_html=False, include_plotlyjs=index == 0, validate=False,
                                 config={"displaylogo": False}, div_id=f"plot-{index}")
        sections.append(f"<h2>{html.escape(heading)}</h2>\n<div class=\"plot\">{plot}</div>")
    if content.importance_note:
        sections.append(f"<h2>Importance</h2>\n<p class=\"note\">{html.escape(content.importance_note)}</p>")
    if content.verdict:
        sections.append("<h2>Paired verdict (runs paired by seed, on their stored predictions)</h2>\n"
                        + content.verdict)
    sections.append("<h2>Groups (runs that differ only in their seed)</h2>\n" + _groups_table(content))
    sections.append("<h2>Runs</h2>\n" + _runs_table(content))
    rows = content.rows
    counts = {kind: sum(outcome(row) == kind for row in rows) for kind in MARKERS}
    summary = (f"{len(rows)} runs: {counts['COMPLETED']} completed, {counts[PRUNED]} pruned, {counts[FAILED]} failed "
               f"or unfinished. The result is {'higher' if content.higher else 'lower'} is better.")
    return PAGE.format(title=html.escape(content.title), summary=html.escape(summary),
                       ran=html.escape(content.ran), sections="\n".join(sections))


def grouped_verdict(rows: list[dict[str, Any]], parameters: list[str]) -> str | None:
    """The HTML of `tracker compare --group-by KEY`'s verdict when the runs vary one config key (seed aside) and it
    takes two values among the completed runs, e.g. a `--seeds` sweep of data.stream over two streams; a note when
    their predictions cannot be paired (not stored, different data); None for any other selection."""
    values = {row.get(parameters[0]) for row in completed(rows)} if len(parameters) == 1 else set()
    if len(values) != 2:
        return None
    try:
        value_a, value_b, runs, verdict = seed_comparison(rows, parameters[0])
    except UserError as error:
        return f"<p class=\"note\">{html.escape(str(error))}</p>"
    first_run = open_run(str(runs[verdict.seeds[0]][0]))
    return seed_verdict_html(verdict, parameters[0], value_a, value_b, runs, SPLIT, *run_thumbnails(first_run, verdict))


def _groups_table(content: ReportContent) -> str:
    columns = [*content.parameters, "n", "not_completed", *stat_columns("result"), "p_vs_best"]
    return _table(columns, [[cell(group.get(column), column) for column in columns] for group in content.groups])


def _runs_table(content: ReportContent) -> str:
    columns = ["id", "status", "result", *content.parameters]
    lines = [[str(row["id"]), status_text(row), *(cell(row.get(column), column) for column in columns[2:])]
             for row in content.rows]
    return _table(columns, lines, [outcome(row) for row in content.rows])


def _table(columns: list[str], lines: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        f"<tr class=\"{kind}\">" + "".join(f"<td>{html.escape(text)}</td>" for text in line) + "</tr>"
        for line, kind in zip(lines, classes or [""] * len(lines)))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---- the PNG summary ----------------------------------------------------------------------------------------
def png_summary(content: ReportContent) -> bytes:
    """A static figure (matplotlib, PNG bytes): the result against each parameter, the curves, the importance."""
    import io

    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    panels = len(content.parameters) + bool(content.curves) + bool(content.importance)
    figure = Figure(figsize=(4.5 * max(panels, 1), 4), layout="constrained")
    axes = figure.subplots(1, max(panels, 1), squeeze=False)[0]
    for ax, key in zip(axes, content.parameters):
        for kind, (_, color) in MARKERS.items():
            rows = [row for row in content.rows if outcome(row) == kind and is_number(row.get("result"))]
            ax.scatter([axis_value(row.get(key)) for row in rows], [row["result"] for row in rows], color=color,
                       label=kind.lower(), marker="o" if kind == "COMPLETED" else "x")
        ax.set(xlabel=key, ylabel="result", xscale="log" if key in content.log_keys else "linear")
    panel = len(content.parameters)
    if content.curves:
        for row, curve in content.curves:
            if curve is not None:
                axes[panel].plot(*curve, label=f"run {row['id']}")
        axes[panel].set(xlabel="step", ylabel=content.curves[0][0]["result_metric"], title="best runs")
        axes[panel].legend(fontsize="small")
        panel += 1
    if content.importance:
        items = content.importance[::-1]
        axes[panel].barh([item["parameter"] for item in items], [item["importance"] for item in items])
        axes[panel].set(xlabel="importance (fANOVA)")
    figure.suptitle(content.title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
