"""Compare two or more runs: the config keys that differ, the result, and each metric family's curves overlaid."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup, escape

from runstore.errors import UserError
from runstore.paired import compare_stored
from runstore.predictions import ARTIFACT, SPLIT
from runstore.query import by_experiment, differing_keys, differing_keys_within_experiments
from tracker.compare import DATA_KEYS, data_warning, legend_label
from runstore.downsample import min_max
from tracker.ui.groups_view import COLORS
from tracker.ui.render import page, short_id
from tracker.ui.run_view import metric_families
from tracker.verdict_html import pair_verdict_html, run_thumbnails

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

    from runstore.run_store import StoredRun
    from tracker.ui.store import Board

DASHES = ["solid", "dash", "dot", "dashdot"]  # train, val, test of one run: one colour, a dash each
ROW_KEYS = ["experiment", "status", "start", "duration_s", "commit", "result", "result_metric"]


def compare_page(request: Request, board: Board) -> HTMLResponse:
    ids = request.query_params.getlist("id")
    if len(ids) < 2:
        raise UserError("select two runs or more in the runs table to compare them")
    runs = [board.open(reference) for reference in ids]
    rows = [board.row(run) for run in runs]
    keys = ROW_KEYS + [key for key in DATA_KEYS if any(key in row for row in rows)] + differing_keys(rows)
    names = sorted(set().union(*(run.metric_names() for run in runs)))
    by_time = request.query_params.get("x") == "time"
    figures = [_overlaid(runs, rows, family, members, by_time) for family, members, folded
               in metric_families(names) if not folded]
    return page("compare.html", title=f"Compare runs {', '.join(map(short_id, ids))}", error=None, rows=rows, keys=keys,
                figures=figures, warning=data_warning(rows), ids=ids, by_time=by_time, verdict=_verdict(runs, ids))


def _verdict(runs: list[StoredRun], ids: list[str]) -> Markup | None:
    """Two runs that stored predictions: `tracker compare --paired`'s verdict as HTML (with thumbnails of the examples
    they disagree on most, for image data), or its one-line refusal; None for other runs."""
    if len(runs) != 2 or not all(ARTIFACT.format(split=SPLIT) in run.artifact_names for run in runs):
        return None
    try:
        verdict = compare_stored(runs[0], runs[1], SPLIT)
    except UserError as error:
        return Markup(f"<p class=\"error\">{escape(str(error))}</p>")
    return Markup(pair_verdict_html(verdict, short_id(ids[0]), short_id(ids[1]), SPLIT,
                                    *run_thumbnails(runs[0], verdict)))


def _overlaid(runs: list[StoredRun], rows: list[dict[str, Any]], family: str, members: list[str],
              by_time: bool) -> tuple[str, dict[str, Any]]:
    """(family, plotly figure): every run's curve of each metric of `family` against its step, or against the seconds
    since the run's first point (`by_time`), downsampled per pixel column; a colour per run, a dash per metric."""
    label_keys = differing_keys_within_experiments(rows)
    several_experiments = len(by_experiment(rows)) > 1
    traces: list[dict[str, Any]] = []
    for index, (run, row) in enumerate(zip(runs, rows)):
        for dash, name in zip(DASHES, members):
            steps, values, stamps = run.metric(name)
            if len(steps):
                if by_time:
                    stamps = np.asarray(stamps, dtype="datetime64[us]")
                    steps = (stamps - stamps[0]) / np.timedelta64(1, "s")
                steps, values = min_max(steps, values)
                label = legend_label({**row, "id": short_id(row["id"])}, label_keys, several_experiments)
                color = COLORS[index % len(COLORS)]
                traces.append({"x": steps, "y": values, "type": "scattergl", "mode": "lines+markers",
                               "name": f"{label} {name}", "line": {"color": color, "dash": dash},
                               "marker": {"size": 4, "color": color}})
    layout = {"title": {"text": family}, "height": 420,
              "xaxis": {"title": {"text": "seconds since the run's first point" if by_time else "step"}},
              "margin": {"l": 50, "r": 20, "t": 40, "b": 40}}
    return family, {"data": traces, "layout": layout}
