"""The first screen: every run as a row, filtered (`tracker runs --where` syntax), sorted, paged, columns chosen;
the whole state is in the URL, so a link reproduces the view."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runstore.direction import higher_is_better
from runstore.errors import UserError
from runstore.query import BEST, check_keys, differing_keys_within_experiments, parse_condition, select
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
    rows = board.rows()
    try:
        matching = select(rows, [parse_condition(text) for text in where], sort)
        check_keys(rows, chosen, "columns")
        error = None
    except UserError as problem:
        matching, error = [], str(problem)
    # The keys differing among all runs, not only the matching ones: a filter keeps the columns it filtered on.
    columns = chosen or [*RUN_COLUMNS, *differing_keys_within_experiments(rows), "result"]
    shown = matching[number * PAGE_SIZE:(number + 1) * PAGE_SIZE]
    state = {"where": where, "sort": sort, "cols": ",".join(chosen)}
    known = sorted(set().union(*rows) - {"local", "higher_is_better"}) if rows else []
    return page("runs.html", title="Runs", rows=shown, columns=columns, state=state, error=error,
                total=len(matching), stored=len(rows), number=number, pages=-(-len(matching) // PAGE_SIZE),
                sparks={row["id"]: _result_curve(board, row) for row in shown}, known=known, best=BEST,
                direction={row["id"]: "↑" if higher_is_better(row) else "↓" for row in shown},
                status_code=400 if error else 200)


def _result_curve(board: Board, row: dict[str, Any]) -> list[Any]:
    """The values of `row`'s result metric, about SPARK_POINTS of them, or [] when it has none."""
    if not row.get("result_metric") or row.get("status") == "UNREADABLE":
        return []
    try:
        values = board.open(str(row["id"])).plotted_metric(row["result_metric"])[1]
    except UserError:
        return []
    stride = max(len(values) // SPARK_POINTS, 1)
    return list(values[::stride])
