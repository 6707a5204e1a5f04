"""`tracker runs`: the recorded runs as a table (or CSV, JSON), filtered, sorted and with chosen metric summaries."""
from __future__ import annotations

import csv
import datetime
import json
import os
import shutil
import sys
from collections.abc import Collection, Sequence
from typing import IO, TYPE_CHECKING, Any

from compat.argparse import values_may_start_with_dash
from runstore.errors import UserError
from runstore.groups import P_COLUMN, p_legend, stat_columns
from runstore.query import (BEST, STATS, by_experiment, conditions, differing_keys, group_selection, list_rows,
                             selected_rows)
from runstore.settings import shown_path
from runstore.shell import printable, shell_command
from tracker.options import add_filters

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

FORMATS = ("table", "csv", "json")
MAX_CELL = 40  # characters of a table cell; CSV and JSON hold every value whole
COLUMN_GAP = "  "
RUN_COLUMNS = ["id", "experiment", "status", "start", "duration_s", "result"]  # always shown
HEADERS = {"duration_s": "duration"}  # a table's headers for its cells (1h02m03s); CSV and JSON give seconds


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list recorded runs: filter, sort, compare configs and metrics",
        description=(
            "List the runs in MONGO_URL/SACRED_DB and those still waiting in RUNS_DIR for 'tracker sync' (local=True): "
            "id, experiment, status, start, duration, result, the config keys that differ between the matching runs "
            "of each experiment (a table per experiment), and the metric summaries asked for. Filters are ANDed. "
            "The same from Python: runstore.query.runs()."
        ),
    )
    values_may_start_with_dash(parser)  # `--sort -result`
    add_filters(parser)
    parser.add_argument("--since", metavar="DATE", help="keep runs started at or after DATE (UTC), e.g. 2026-11-01")
    parser.add_argument("--sort", default="-start", metavar="KEY",
                        help=f"sort by a column, '-KEY' for descending, e.g. -result; '{BEST}': each experiment's runs "
                             f"best first by its own direction (default: -start, newest first)")
    parser.add_argument("--limit", type=int, metavar="N", help="show at most N runs (after sorting)")
    parser.add_argument("--metrics", default="", metavar="M.STAT,...",
                        help=f"metric summaries to show, STAT one of {', '.join(STATS)} (argmax: the step of the max), "
                             f"e.g. val.acc.max,train.loss.last")
    grouping = parser.add_mutually_exclusive_group()
    grouping.add_argument("--group-by", metavar="KEY,...",
                          help="one row per group of runs with equal KEYS (e.g. config.lr,config.model.arch), best "
                               "first: n, mean, std and 95%% CI (Student's t) of the result and of each --metrics "
                               "summary, and Welch's t-test p-value against the best group, Holm-adjusted across the "
                               "groups")
    grouping.add_argument("--group", action="store_true",
                          help="--group-by every config key except seed: runs that differ only in their seed")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit} must be at least 1")
    wanted = conditions(args.where, args.experiment, args.tag, args.since)  # malformed ones fail before any wait
    metrics = [name for name in args.metrics.split(",") if name]
    if args.group or args.group_by is not None:
        by = [key.strip() for key in (args.group_by or "").split(",") if key.strip()]
        if args.group_by is not None and not by:
            raise UserError("--group-by needs keys, e.g. --group-by config.lr; --group groups by every config key")
        write_groups(group_selection(list_rows(), wanted, by, metrics)[:args.limit], metrics, args.format)
        return 0
    shown = selected_rows(wanted, args.sort, args.limit, columns=metrics)
    if args.format != "table":
        write(shown, columns_of(shown, metrics), args.format)
        return 0
    blocks = by_experiment(shown)
    for number, (experiment, rows) in enumerate(blocks.items()):
        if len(blocks) > 1:
            print(f"\nexperiment {experiment}:" if number else f"experiment {experiment}:")
        write(rows, columns_of(rows, metrics), "table", width=terminal_width(),
              keep=[*RUN_COLUMNS, "local", *metrics])
    return 0


def terminal_width() -> int | None:
    """The width a table must fit: COLUMNS, else the terminal's; None (any width) when the output is no terminal."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def columns_of(shown: list[dict[str, Any]], metrics: list[str]) -> list[str]:
    """The run columns, then the config keys differing within an experiment among the `shown` runs (all of a run's
    config when it is its experiment's only one: what the best run chose, with --limit 1), then `metrics`."""
    columns = list(RUN_COLUMNS)
    columns += ["local"] if any(row["local"] for row in shown) else []
    columns += ["continued_by"] if any(row["continued_by"] is not None for row in shown) else []
    keys = set()
    for rows in by_experiment(shown).values():
        # An experiment's only run: every key it set, as if compared with no run.
        keys.update(differing_keys(rows) if len(rows) > 1 else differing_keys([*rows, {}]))
    return columns + sorted(keys) + metrics


def write_groups(groups: list[dict[str, Any]], metrics: Sequence[str], output_format: str,
                 out: IO[str] | None = None) -> None:
    """The groups (runstore.groups) with their keys, n and statistics; JSON adds each group's run ids."""
    keys = list(groups[0])[:list(groups[0]).index("n")] if groups else []  # a group starts with its keys' values
    columns = [*keys, "n", "not_completed", *stat_columns("result"), *(c for m in metrics for c in stat_columns(m)),
               P_COLUMN]
    write(groups, columns + ["runs"] if output_format == "json" else columns, output_format, out)
    if output_format == "table" and groups:
        (sys.stdout if out is None else out).write(p_legend(groups) + "\n")


def write(rows: list[dict[str, Any]], columns: list[str], output_format: str, out: IO[str] | None = None,
          width: int | None = None, keep: Collection[str] = ()) -> None:
    """`rows` (dicts) as a text table, CSV or a JSON list of objects, with `columns` in that order, to `out` (the
    standard output as it is when called, which `tracker` escapes: runstore.shell.PrintableStream).

    A table wider than `width` characters leaves out columns from the right, but those in `keep`, and one line
    names them.
    """
    out = sys.stdout if out is None else out
    if output_format == "json":
        json.dump([{key: _plain(row.get(key)) for key in columns} for row in rows], out, indent=1)
        out.write("\n")
    elif output_format == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_plain(row.get(key)) for key in columns] for row in rows)
    else:
        cells = {key: [cell(row.get(key), key) for row in rows] for key in columns}
        shown, left_out = fitting(columns, cells, width, keep)
        out.write(render_table([[HEADERS.get(key, key) for key in shown]] + [list(line) for line in
                                                                            zip(*(cells[key] for key in shown))]))
        if left_out:
            out.write(f"({len(left_out)} columns left out to fit {width} characters: {', '.join(left_out)}; "
                      f"--format csv shows all)\n")


def fitting(columns: list[str], cells: dict[str, list[str]], width: int | None,
            keep: Collection[str]) -> tuple[list[str], list[str]]:
    """The columns that fit `width` (those in `keep` always, the others from the left) and those left out."""
    if width is None:
        return columns, []
    needed = {key: max([len(HEADERS.get(key, key)), *map(len, cells[key])]) + len(COLUMN_GAP) for key in columns}
    room = width + len(COLUMN_GAP) - sum(needed[key] for key in columns if key in keep)
    shown: list[str] = []
    for key in columns:
        if key in keep or needed[key] <= room:
            shown.append(key)
            room -= 0 if key in keep else needed[key]
    return shown, [key for key in columns if key not in shown]


def render_table(lines: list[list[str]]) -> str:
    """Lists of strings as aligned columns, the first list being the header; numbers right-aligned. Control
    characters are escaped (runstore.shell.printable), so a stored name or value neither drives the terminal nor
    breaks the alignment."""
    escaped = [[printable(text) for text in line] for line in lines]
    widths = [max(len(line[i]) for line in escaped) for i in range(len(escaped[0]))]
    numeric = [all(_looks_numeric(line[i]) for line in escaped[1:]) for i in range(len(widths))]
    return "".join(
        COLUMN_GAP.join(text.rjust(w) if right else text.ljust(w) for text, w, right in zip(line, widths, numeric))
        .rstrip()
        + "\n"
        for line in escaped
    )


def cell(value: Any, key: str = "") -> str:
    """A value as the table shows it: 4 significant digits, times to the second, durations as 1h02m03s."""
    if value is None:
        return "-"
    if key == "duration_s":
        return _duration(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):  # a confidence interval
        return "[" + ", ".join(cell(item) for item in value) + "]"
    text = str(value)
    if key == "id":  # a local run's folder, given whole (and quoted) to `tracker compare` or `rerun` from here
        return shell_command(shown_path(text))
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def _plain(value: Any) -> Any:
    """A value for CSV and JSON: times in ISO format, the rest as stored."""
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text == "-"
