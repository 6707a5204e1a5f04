"""Groups: the selected runs grouped by keys (default: every config key but the seed), each group's mean curve of
the result metric with its 95 % confidence band, and the table of `tracker runs --group` (runstore.groups): n, mean,
CI and Welch's p against the best group."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from runstore.errors import UserError
from runstore.groups import P_COLUMN, stat_columns
from runstore.query import group_selection, parse_condition
from tracker.runs import cell
from tracker.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

    from tracker.ui.store import Board

MAX_CURVE_GROUPS = 20  # groups drawn; the table lists all of them
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def groups_page(request: Request, board: Board) -> HTMLResponse:
    params = request.query_params
    ids = params.getlist("id")
    where = [text for text in params.getlist("where") if text.strip()]
    by = [key.strip() for key in params.get("by", "").split(",") if key.strip()]
    try:
        wanted = [parse_condition(text) for text in where]
        rows = board.rows_of(ids) if ids else board.matching(wanted)
        groups = group_selection(rows, wanted, by or None, ())
        error = None
    except UserError as problem:
        rows, groups, error = [], [], str(problem)
    keys = list(groups[0])[:list(groups[0]).index("n")] if groups else by
    by_id = {str(row["id"]): row for row in rows}
    figure = _band_figure(board, groups[:MAX_CURVE_GROUPS], keys, by_id)
    return page("groups.html", title="Groups", error=error, ids=ids, where=where, by=",".join(by), keys=keys,
                table=group_table(groups, keys), figure=figure, status_code=400 if error else 200)


def group_table(groups: list[dict[str, Any]], keys: list[str]) -> tuple[list[str], list[list[str]], list[Any]]:
    """(columns, lines of cell texts, [run ids of each group]) of the groups, as `tracker runs --group` shows them."""
    columns = [*keys, "n", "not_completed", *stat_columns("result"), P_COLUMN]
    return columns, [[cell(group.get(column), column) for column in columns] for group in groups], \
        [group["runs"] for group in groups]


def mean_band(curves: list[tuple[np.ndarray, np.ndarray]],
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(steps, mean, low, high): the mean of `curves` ((steps, values) each) and its 95 % confidence band (Student's
    t, as runstore.groups.describe), on the steps where every curve has points (interpolated between its own);
    low and high are None for a single curve."""
    from scipy import stats

    start = max(steps[0] for steps, _ in curves)
    end = min(steps[-1] for steps, _ in curves)
    grid = np.unique(np.concatenate([np.asarray(steps) for steps, _ in curves]))
    grid = grid[(grid >= start) & (grid <= end)]
    values = np.array([np.interp(grid, steps, curve) for steps, curve in curves])
    mean = values.mean(axis=0)
    if len(curves) < 2:
        return grid, mean, None, None
    half = stats.t.ppf(0.975, len(curves) - 1) * values.std(axis=0, ddof=1) / math.sqrt(len(curves))
    return grid, mean, mean - half, mean + half


def _band_figure(board: Board, groups: list[dict[str, Any]], keys: list[str],
                 by_id: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """A plotly figure: each group's mean curve of the result metric, with its band; None without curves."""
    traces: list[dict[str, Any]] = []
    completed = [by_id[str(run_id)] for group in groups for run_id in group["runs"]
                 if by_id[str(run_id)].get("status") == "COMPLETED"]
    plotted = board.plotted_metrics(completed)
    metric = next((row["result_metric"] for row in completed if str(row["id"]) in plotted), None)
    for index, group in enumerate(groups):
        curves: list[tuple[np.ndarray, np.ndarray]] = []
        for run_id in group["runs"]:
            steps, values = plotted.get(str(run_id), ([], []))
            if len(steps) > 1:
                curves.append((np.asarray(steps, dtype=float), np.asarray(values, dtype=float)))
        if not curves:
            continue
        steps, mean, low, high = mean_band(curves)
        color = COLORS[index % len(COLORS)]
        name = ", ".join(f"{key.removeprefix('config.')}={group.get(key)}" for key in keys) or "all"
        name += f" (n={len(curves)})"
        if low is not None and high is not None:
            traces.append({"x": [*steps, *steps[::-1]], "y": [*high, *low[::-1]], "fill": "toself", "opacity": 0.2,
                           "line": {"width": 0}, "fillcolor": color, "hoverinfo": "skip", "showlegend": False,
                           "type": "scatter", "legendgroup": name})
        traces.append({"x": steps, "y": mean, "name": name, "type": "scatter", "mode": "lines",
                       "line": {"color": color}, "legendgroup": name})
    if not traces:
        return None
    layout = {"title": {"text": f"{metric}: mean of each group, 95 % confidence band"}, "height": 420,
              "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": metric}}}
    return {"data": traces, "layout": layout}
