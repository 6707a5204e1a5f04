"""The Starlette app of `tracker ui`: its routes, behind the safeguards of tracker.ui.guard."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from runstore.errors import UserError
from tracker.ui import compare_view, groups_view, run_view, runs_view, sweep_view
from tracker.ui.guard import Guard
from tracker.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request

    from tracker.ui.store import Board

STATIC = Path(__file__).with_name("static")
# plotly.js as the installed plotly package ships it: the board needs no CDN and no npm.
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
STATIC_FILES = {"plotly.min.js": PLOTLY_JS, "board.js": STATIC / "board.js", "board.css": STATIC / "board.css"}


def build_app(board: Board, token: str, user: str = "", password: str = "", any_host: bool = False) -> Guard:
    """The board's ASGI app over `board` (tracker.ui.store.Board)."""
    def view(function: Callable[..., Any], methods: Sequence[str] = ("GET",)) -> dict[str, Any]:
        return dict(endpoint=partial(function, board=board), methods=list(methods))

    routes = [
        Route("/", **view(runs_view.runs_page)),
        Route("/run", **view(run_view.run_page)),
        Route("/run/annotate", **view(run_view.annotate, ["POST"])),
        Route("/api/metric", **view(run_view.metric_points)),
        Route("/api/output", **view(run_view.output_tail)),
        Route("/artifact", **view(run_view.artifact)),
        Route("/api/preview", **view(run_view.preview)),
        Route("/compare", **view(compare_view.compare_page)),
        Route("/groups", **view(groups_view.groups_page)),
        Route("/sweep", **view(sweep_view.sweep_page)),
        Route("/static/{name}", endpoint=static_file),
    ]
    app = Starlette(routes=routes, exception_handlers={UserError: user_error, KeyError: missing_parameter})
    return Guard(app, token, user, password, any_host)


def static_file(request: Request) -> FileResponse:
    path = STATIC_FILES.get(request.path_params["name"])
    if path is None:
        raise HTTPException(404)
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


def user_error(request: Request, error: Exception) -> Response:
    """A UserError (an unknown run, key or condition): its one line, on a page of the board."""
    return page("base.html", status_code=400, title="Not shown", error=str(error))


def missing_parameter(request: Request, error: Exception) -> Response:
    return PlainTextResponse(f"missing parameter {error}", status_code=400)
