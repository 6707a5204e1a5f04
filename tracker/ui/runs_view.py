"""The first screen: every run as a row, filtered (`tracker runs --where` syntax), sorted, paged, columns chosen;
the whole state is in the URL, so a link reproduces the view."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runstore.direction import higher_is_better
from runstore.errors import UserError
from runstore.query import BEST, differing_keys_within_experiments, parse_condition
from tracker.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

    from tracker.ui.store import Board

PAGE_SIZE = 50
RUN_COLUMNS = ["id", "experiment", "status", "start", "duration_s", "tags"]
SPARK_POINTS = 60  # points of a sparkline: its shape, not its detail


def runs_page(request: Request, board: Board) -> HTMLResponse:
    params = request.query_params
    where = [text for text in params.getlist("where") if text.strip()]
    sort = params.get("sort") or "-start"
    chosen = [key for key in params.get("cols", "").split(",") if key]
    number = max(int(params.get("page", "0")) if params.get("page", "0").isdigit() else 0, 0)
    end = (number + 1) * PAGE_SIZE
    try:
        wanted = [parse_condition(text) for text in where]
        # The runs up to this page's end, and one more that says whether a next page exists, from the store's first
        # ones when it can: a page of 100,000 runs reads what it shows.
        read = board.selection(wanted, sort, end + 1, chosen)
        error = None
    except UserError as problem:
        wanted, read, error = [], [], str(problem)
    # The keys that differ among the runs read, and the filtered ones, which a filter keeps in view.
    filtered = [condition.key for condition in wanted if condition.key not in (*RUN_COLUMNS, "result")]
    differing = differing_keys_within_experiments(read[:end])
    columns = chosen or [*RUN_COLUMNS, *differing, *(key for key in filtered if key not in differing), "result"]
    shown = read[number * PAGE_SIZE:end]
    more = len(read) > end
    state = {"where": where, "sort": sort, "cols": ",".join(chosen)}
    known = sorted(set().union(*read) - {"local", "higher_is_better"}) if read else []
    return page("runs.html", title="Runs", rows=shown, columns=columns, state=state, error=error,
                total=f"more than {end}" if more else len(read), stored=board.count(), number=number, more=more,
                sparks=_result_curves(board, shown), known=known, best=BEST,
                direction={row["id"]: "↑" if higher_is_better(row) else "↓" for row in shown},
                status_code=400 if error else 200)


def _result_curves(board: Board, rows: list[dict[str, Any]]) -> dict[Any, list[Any]]:
    """{row id: about SPARK_POINTS values of its result metric, or [] when it has none}."""
    plotted = board.plotted_metrics(rows)
    curves = {}
    for row in rows:
        values = plotted.get(str(row["id"]), ([], []))[1]
        curves[row["id"]] = list(values[::max(len(values) // SPARK_POINTS, 1)])
    return curves
