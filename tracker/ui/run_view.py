"""A run's page: its config (what it set first), plots per metric family, output tailing live, info, host, git
commit and diff, artifacts with previews, the commands to rerun or resume it, editable tags and note. Also the
endpoints that its page polls while the run runs, which send only what is new."""
from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ingredients.checkpoint import load_tensors
from observers.git_state import DIFF_ARTIFACT
from runstore.direction import higher_is_better
from runstore.errors import UserError
from runstore.plain_json import dotted_values
from runstore.shell import shell_command
from runstore.downsample import min_max
from tracker.ui.render import page, short_id

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch
    from starlette.requests import Request

    from runstore.run_store import StoredRun
    from tracker.ui.store import Board

FOLDED = ("sys.", "time.")  # families folded away: the machine's and the clock's, not the model's
SPLITS = ("train", "val", "test")  # train.loss, val.loss and test.loss are one family: loss
IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}
TEXTS = (".txt", ".log", ".patch", ".diff", ".md", ".py", ".yaml", ".yml", ".out", ".err")
PREVIEW_BYTES = 50_000
PREVIEW_ROWS = 50
CHECKPOINTS = (".pt", ".pth")  # torch.save files: summarised, never unpickled beyond tensors and numbers
CHECKPOINT_PREVIEW_BYTES = 200_000_000  # larger ones only as a download: loading takes their size in memory
CHECKPOINT_TENSORS = 20  # rows of a checkpoint's tensor table
# Artifacts are data: a browser must run none of them, whatever they hold (HTML and SVG come as text).
ARTIFACT_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


def run_page(request: Request, board: Board) -> HTMLResponse:
    run = _open(board, request)
    row = board.row(run)
    tags, note = run.store.annotations(run)
    meta = run.doc.get("meta", {})
    updates = dotted_values(meta.get("config_updates") or {})
    config = dotted_values(run.config)
    diff = run.artifact(DIFF_ARTIFACT) if DIFF_ARTIFACT in run.artifact_names else None
    info = {key: value for key, value in run.info.items() if key != "metrics"}
    return page("run.html", title=f"run {short_id(row['id'])}: {row['experiment']}", run=run, row=row, tags=tags,
                note=note,
                named_configs=meta.get("named_configs") or [], set_keys=updates,
                other_keys={key: value for key, value in config.items() if key not in updates},
                families=metric_families(run.metric_names()), output=run.store.captured_out(run),
                info=json.dumps(info, indent=1, default=str), host=json.dumps(run.doc.get("host", {}), indent=1),
                repositories=_distinct(run.doc.get("experiment", {}).get("repositories", [])),
                diff=diff.decode(errors="replace") if diff else None, error=None,
                artifacts=[(name, _suffix(name) in IMAGES) for name in run.artifact_names if name != DIFF_ARTIFACT],
                higher=higher_is_better(row),
                commands=[shell_command("tracker", command, str(row["id"])) for command in ("rerun", "resume")])


def metric_families(names: list[str]) -> list[tuple[str, list[str], bool]]:
    """[(family, [metric names], folded)]: metrics that measure one thing on different splits share a plot
    (train.loss with val.loss); sys.* and time.* are folded away, each alone."""
    families: dict[str, list[str]] = {}
    for name in sorted(names):
        split, _, rest = name.partition(".")
        family = rest if split in SPLITS and rest else name
        families.setdefault(family, []).append(name)
    return sorted(((family, members, members[0].startswith(FOLDED)) for family, members in families.items()),
                  key=lambda item: (item[2], item[0]))


def metric_points(request: Request, board: Board) -> JSONResponse:
    """{steps, values, status} of one metric: those after step `since` (a live run's new points), else every point
    between `start` and `end`, downsampled per pixel column (runstore.downsample). The whole series is drawn from the
    points Omniboard plots, which keep each spike of a long one in a few thousand points; a zoom reads every point."""
    run = _open(board, request)
    params = request.query_params
    if "since" in params:
        steps, values = (np.asarray(series) for series in run.metric(params["name"])[:2])
        new = steps > float(params["since"])
        steps, values = steps[new], values[new]
    elif "start" in params or "end" in params:
        steps, values = (np.asarray(series) for series in run.metric(params["name"])[:2])
        inside = (steps >= float(params.get("start", "-inf"))) & (steps <= float(params.get("end", "inf")))
        steps, values = min_max(steps[inside], values[inside])
    else:
        steps, values = min_max(*run.plotted_metric(params["name"]))
    return JSONResponse({"steps": steps.tolist(),
                         "values": [None if math.isnan(value) else value for value in values.tolist()],
                         "status": _status(run)})


def output_tail(request: Request, board: Board) -> JSONResponse:
    """{text, offset, status}: the captured output after character `offset`."""
    run = _open(board, request)
    output = run.store.captured_out(run)
    offset = int(request.query_params.get("offset", "0"))
    return JSONResponse({"text": output[offset:], "offset": len(output), "status": _status(run)})


def preview(request: Request, board: Board) -> HTMLResponse:
    """What the run page shows of an artifact (text, JSON, a CSV table, a checkpoint's summary), as a part of a page:
    asked for once the page is drawn, so a large checkpoint never holds the page back."""
    run = _open(board, request)
    name = request.query_params["name"]
    if name not in run.artifact_names:
        return HTMLResponse(f"{run.label} has no artifact {name!r}", status_code=404)
    return page("preview.html", item=_preview(run, name))


def artifact(request: Request, board: Board) -> Response:
    """An artifact's bytes, as an image or as text: never as a page, a script or a style that would run."""
    run = _open(board, request)
    name = request.query_params["name"]
    content = run.artifact(name) if name in run.artifact_names else None
    if content is None:
        return Response(f"{run.label} has no artifact {name!r}", status_code=404, media_type="text/plain")
    media_type = IMAGES.get(_suffix(name)) or ("text/plain; charset=utf-8" if _is_text(content)
                                                 else "application/octet-stream")
    headers = dict(ARTIFACT_HEADERS)
    if media_type == "application/octet-stream":
        headers["Content-Disposition"] = "attachment"
    return Response(content, media_type=media_type, headers=headers)


async def annotate(request: Request, board: Board) -> RedirectResponse:
    """Store the tags (comma-separated) and the note of the form; back to the run's page."""
    # An urlencoded form, parsed here: Starlette's parser needs python-multipart for what one line does.
    form = dict(parse_qsl((await request.body()).decode()))
    tags = list(dict.fromkeys(tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()))
    await run_in_threadpool(_annotate, board, form["id"], tags, form.get("note", "").strip())
    return RedirectResponse(f"/run?{urlencode({'id': form['id']})}", status_code=303)


def _annotate(board: Board, reference: str, tags: list[str], note: str) -> None:
    run = board.open(reference)
    run.store.annotate(run, tags, note)


def _distinct(repositories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sacred lists a repository once per source file in it: each (url, commit, dirty) once."""
    return list({(item.get("url"), item.get("commit"), item.get("dirty")): item for item in repositories}.values())


def _open(board: Board, request: Request) -> StoredRun:
    reference = request.query_params.get("id", "")
    if not reference:
        raise UserError("give a run, e.g. /run?id=3")
    return board.open(reference)


def _status(run: StoredRun) -> str | None:
    return run.doc.get("status")


def _suffix(name: str) -> str:
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _is_text(content: bytes) -> bool:
    try:
        content[:PREVIEW_BYTES].decode()
        return True
    except UnicodeDecodeError as error:
        return error.start > PREVIEW_BYTES - 4  # cut inside a character


def _preview(run: StoredRun, name: str) -> dict[str, Any]:
    """{name, kind, ...}: what the run page shows of artifact `name` (not an image): text, JSON, a CSV table, a
    checkpoint's summary, or a note."""
    suffix = _suffix(name)
    if suffix not in (".json", ".csv", *TEXTS, *CHECKPOINTS):
        return {"name": name, "kind": "file"}
    stored = run.artifact(name)
    if stored is None:
        return {"name": name, "kind": "file", "note": "the store holds no file of this artifact"}
    if suffix in CHECKPOINTS:
        return checkpoint_preview(name, stored)
    content = stored[:PREVIEW_BYTES].decode(errors="replace")
    if suffix == ".json":
        try:
            return {"name": name, "kind": "text", "text": json.dumps(json.loads(content), indent=1)}
        except ValueError:
            pass  # cut at PREVIEW_BYTES, or not JSON: shown as text
    if suffix == ".csv":
        lines = list(csv.reader(io.StringIO(content)))[:PREVIEW_ROWS + 1]
        return {"name": name, "kind": "table", "header": lines[0] if lines else [], "lines": lines[1:]}
    return {"name": name, "kind": "text", "text": content}


def checkpoint_preview(name: str, content: bytes) -> dict[str, Any]:
    """{name, kind: "checkpoint", key_names, groups, scalars, tensors, more}: what a torch.save file holds, loaded with
    weights_only (ingredients.checkpoint.load_tensors): its top-level keys (none for a state dict, whose keys are its
    tensors' names); per top-level entry that holds tensors (a state dict: model, optimizer...), (key, tensors,
    elements, bytes); its top-level numbers and strings (step, epoch...); the first CHECKPOINT_TENSORS tensors as
    (name, shape, dtype) and how many more there are. {name, kind: "file", note} for a file too large to summarise
    or that does not load that way."""
    if len(content) > CHECKPOINT_PREVIEW_BYTES:
        return {"name": name, "kind": "file", "note": f"{len(content) / 1e6:.0f} MB, over the "
                f"{CHECKPOINT_PREVIEW_BYTES / 1e6:.0f} MB that the run page summarises: download it to look inside"}
    try:
        state = load_tensors(io.BytesIO(content), name)
    except UserError as error:
        return {"name": name, "kind": "file", "note": str(error)}
    import torch  # here: the tracker command imports this module, and torch takes seconds to load

    entries = state if isinstance(state, dict) else {"": state}
    tensors: list[tuple[str, torch.Tensor]] = []
    groups: dict[str, list[torch.Tensor]] = {}
    for key, value in entries.items():
        found = list(_tensors(value, str(key)))
        tensors += found
        if found:  # a flat state dict's tensors are all at the top level: one group
            group = "(top level)" if isinstance(value, torch.Tensor) or key == "" else str(key)
            groups.setdefault(group, []).extend(tensor for _, tensor in found)
    state_dict = all(isinstance(value, torch.Tensor) for value in entries.values())  # keys: the tensors' names
    return {"name": name, "kind": "checkpoint",
            "key_names": [] if state_dict else [str(key) for key in entries if key != ""],
            "groups": [(group, len(items), sum(item.numel() for item in items),
                        sum(item.numel() * item.element_size() for item in items)) for group, items in groups.items()],
            "scalars": [(str(key), value) for key, value in entries.items()
                        if isinstance(value, (bool, int, float, str)) or value is None],
            "tensors": [(key, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))
                        for key, tensor in tensors[:CHECKPOINT_TENSORS]],
            "more": max(0, len(tensors) - CHECKPOINT_TENSORS)}


def _tensors(value: Any, name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every tensor in `value` and its nested dicts, lists and tuples, named by their path
    (model.fc.weight, optimizer.state.0.momentum_buffer)."""
    import torch  # here: the tracker command imports this module, and torch takes seconds to load

    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, (dict, list, tuple)):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _tensors(item, f"{name}.{key}" if name else str(key))
