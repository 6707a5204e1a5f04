"""A sweep's page: progress (done, running, failed, pruned), the best run so far, and the figures that
`tracker report` draws (tracker.figures): parallel coordinates, the result against each parameter, the best runs'
learning curves, importance; then the groups of runs that differ only in their seed."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runstore.errors import UserError
from runstore.query import Condition, differing_keys
from tracker.figures import MARKERS, figures, gather, outcome
from tracker.selection import log_keys
from tracker.trial import sweep_tag
from tracker.ui.groups_view import group_table
from tracker.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

    from runstore.run_store import Points
    from tracker.ui.store import Board

TOP_K = 5  # learning curves of this many best runs


def sweep_page(request: Request, board: Board) -> HTMLResponse:
    sweep = request.query_params.get("id", "")
    if not sweep.isdigit():
        raise UserError(f"sweep {sweep!r} is not a sweep id; give the number `tracker sweep` printed, e.g. /sweep?id=3")
    rows = board.matching([Condition("tags", "=", sweep_tag(sweep))])
    if not rows:
        raise UserError(f"no run is tagged {sweep_tag(sweep)}; the runs table lists the runs")
    parameters = differing_keys(rows)

    def curve(row: dict[str, Any]) -> Points | None:
        try:
            return board.open(str(row["id"])).plotted_metric(row["result_metric"])
        except UserError:
            return None  # a run that logged no score metric: it has no curve

    content = gather(rows, parameters, log_keys(rows, parameters, sweep), TOP_K, f"Sweep {sweep}", curve)
    counts = {kind: sum(outcome(row) == kind for row in rows) for kind in MARKERS}
    counts["RUNNING"] = sum(row.get("status") == "RUNNING" for row in rows)
    counts["FAILED"] -= counts["RUNNING"]  # outcome() counts a run without a result yet as failed
    return page("sweep.html", title=f"Sweep {sweep}", error=None, sweep=sweep, counts=counts, total=len(rows),
                best=content.best[0] if content.best else None, higher=content.higher,
                figures=figures(content), importance_note=content.importance_note,
                table=group_table(content.groups, parameters))
