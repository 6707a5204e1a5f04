"""Pages from templates/ (Jinja2, every value escaped), and what several views show alike."""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import markupsafe
from starlette.responses import HTMLResponse

from tracker.runs import HEADERS, cell

TEMPLATES = Path(__file__).with_name("templates")
SPARK_WIDTH, SPARK_HEIGHT = 100, 20


def _url(path: str, **params: Any) -> str:
    """`path` with `params` as its query (lists as repeated keys; None and '' left out)."""
    pairs = [(key, item) for key, value in params.items()
             for item in (value if isinstance(value, (list, tuple)) else [value]) if item not in (None, "")]
    return path + (f"?{urlencode(pairs)}" if pairs else "")


@functools.cache  # made on first use: importing this module creates nothing
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    environment.globals.update(url=_url, cell=cell, sparkline=sparkline, short_id=short_id,
                               header=lambda column: HEADERS.get(column, column))
    environment.filters["json"] = script_json
    return environment


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_environment().get_template(template).render(**context), status_code=status_code)


def short_id(run_id: object) -> str:
    """A run's id as a page shows it: a database id, or a run folder as its store's folder and its own name (runs/3):
    the folders of one store are siblings, so their names tell them apart."""
    parts = Path(str(run_id)).parts
    return "/".join(parts[-2:])


def script_json(value: Any) -> markupsafe.Markup:
    """`value` as JSON to put inside <script type="application/json">: no '<', so no '</script>' can end it."""
    return markupsafe.Markup(json.dumps(_finite(value), default=str).replace("<", "\\u003c"))


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as None (JSON has no such numbers), numpy arrays as lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def sparkline(values: Iterable[float]) -> str:
    """An inline SVG polyline of `values` (finite ones), as points of a SPARK_WIDTH x SPARK_HEIGHT box; '' if none."""
    finite = [value for value in values if value == value and abs(value) != float("inf")]
    if len(finite) < 2:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step = SPARK_WIDTH / (len(finite) - 1)
    points = " ".join(f"{index * step:.1f},{SPARK_HEIGHT - (value - low) / span * SPARK_HEIGHT:.1f}"
                      for index, value in enumerate(finite))
    return markupsafe.Markup(
        f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" viewBox="-1 -1 {SPARK_WIDTH + 2} '
        f'{SPARK_HEIGHT + 2}"><polyline fill="none" stroke="#1f77b4" points="{points}"/></svg>')

