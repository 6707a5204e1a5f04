"""The runs that `tracker importance` and `tracker report` analyse: a sweep's (--sweep ID), or any selection
(--where, --experiment, --tag), and the parameters they vary."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runstore.database import connect
from runstore.errors import UserError
from runstore.groups import is_number
from runstore.query import conditions, differing_keys, list_rows, select
from runstore.settings import load_settings
from tracker.options import add_filters
from tracker.search_space import split_arguments
from tracker.trial import sweep_tag

if TYPE_CHECKING:
    import argparse

    from tracker.sweep import SweepRecord

LOG_SPAN = 100  # a positive parameter whose largest value is this many times its smallest is shown on a log axis


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweep", metavar="ID", help="the runs of sweep ID (those tagged sweep-ID)")
    add_filters(parser)


def selected(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(rows, parameters, log_keys): the selected runs, the config keys they vary (seed aside), and those of them
    to show on a log axis (a sweep's loguniform parameters; otherwise positive ones spanning LOG_SPAN or more)."""
    if not (args.sweep or args.where or args.experiment or args.tag):
        raise UserError("choose the runs, e.g. --sweep 3 (the id `tracker sweep` printed), --experiment cifar or "
                        "--where config.lr>0")
    if args.sweep is not None and not args.sweep.isdigit():
        raise UserError(f"--sweep {args.sweep!r} is not a sweep id; give the number `tracker sweep` printed, e.g. 3")
    tag = sweep_tag(args.sweep) if args.sweep else args.tag
    if args.sweep and args.tag:
        raise UserError("--sweep selects the sweep's tag; give --sweep or --tag, not both")
    wanted = conditions(args.where, args.experiment, tag)
    rows = select(list_rows(), wanted)
    if not rows:
        raise UserError(f"no run matches {' and '.join(map(str, wanted))}; `tracker runs` lists the runs")
    parameters = differing_keys(rows)
    return rows, parameters, log_keys(rows, parameters, args.sweep)


def log_keys(rows: list[dict[str, Any]], parameters: list[str], sweep_id: str | None = None) -> list[str]:
    """The `parameters` to show on a log axis: sweep `sweep_id`'s loguniform ones; otherwise positive ones spanning
    LOG_SPAN or more."""
    swept = sweep_kinds(sweep_id) if sweep_id else {}
    return [key for key in parameters
            if swept.get(key) == "loguniform" or key not in swept and _spans_decades([r.get(key) for r in rows])]


def sweep_kinds(sweep_id: str) -> dict[str, str]:
    """{config key: its kind (grid, loguniform, ...)} of sweep `sweep_id`'s record, {} when there is none here."""
    record = sweep_record(sweep_id)
    if record is None:
        return {}
    _, parameters = split_arguments(record["arguments"])
    return {f"config.{parameter.key}": parameter.kind for parameter in parameters}


def sweep_record(sweep_id: str) -> SweepRecord | None:
    """Sweep `sweep_id`'s record (tracker.sweep), None when there is none here."""
    from tracker.sweep import load_record  # here: submitit and Optuna load only for a sweep

    settings = load_settings()
    client = connect(settings)
    try:
        return load_record(sweep_id, settings, client[settings.db_name] if client is not None else None)
    except UserError:
        return None  # runs synced from elsewhere: their tag alone selects them
    finally:
        if client is not None:
            client.close()


def _spans_decades(values: list[Any]) -> bool:
    numbers = [v for v in values if is_number(v)]
    return bool(numbers) and min(numbers) > 0 and max(numbers) >= LOG_SPAN * min(numbers)
