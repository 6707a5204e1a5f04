"""The paired verdicts of runstore.paired as HTML, shared by `tracker report` (two groups of seeds) and `tracker ui`'s
compare view (two runs): the same lines and tables that `tracker compare --group-by` and `--paired` print
(tracker.compare), escaped, with each most-disagreeing example's thumbnail where there is one."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from ingredients.examples import thumbnails
from runstore.predictions import SPLIT
from tracker.compare import pair_verdict_parts, seed_verdict_parts

if TYPE_CHECKING:
    from runstore.paired import PairVerdict, SeedVerdict
    from runstore.run_store import StoredRun


def run_thumbnails(run: StoredRun, verdict: PairVerdict | SeedVerdict) -> tuple[dict[int, str], str | None]:
    """(thumbnails, note) of the examples `verdict` lists (ingredients.examples), from the data of the test split that
    the StoredRun `run` evaluated on, when it is on disk with the digest the run recorded."""
    digest = ((run.info.get("data") or {}).get("splits") or {}).get(SPLIT)
    return thumbnails(run.config, digest, [item.id for item in verdict.disagreements])


def pair_verdict_html(verdict: PairVerdict, first: object, second: object, split: str,
                      pictures: dict[int, str] | None = None, note: str | None = None) -> str:
    """A PairVerdict of runs `first` (A) and `second` (B); `pictures`: {example id: data: URI of a PNG}, added as a
    column of the most-disagreeing table; `note`: a line saying why there are none."""
    lines, classes, disagreements = pair_verdict_parts(verdict, first, second, split)
    return "\n".join([_lines(lines), *_section(*classes), *_examples(disagreements, pictures, note)])


def seed_verdict_html(verdict: SeedVerdict, key: str, value_a: Any, value_b: Any, runs: dict[Any, tuple[Any, Any]],
                      split: str, pictures: dict[int, str] | None = None, note: str | None = None) -> str:
    """A SeedVerdict of `key`'s `value_a` against `value_b`, runs paired by seed; `pictures` and `note` as above."""
    lines, seeds, classes, disagreements = seed_verdict_parts(verdict, key, value_a, value_b, runs, split)
    return "\n".join([_lines(lines[:1]), table_html(seeds), _lines(lines[1:]), *_section(*classes),
                      *_examples(disagreements, pictures, note)])


def _examples(disagreements: tuple[str, list[list[str]]], pictures: dict[int, str] | None,
              note: str | None) -> list[str]:
    heading, table = disagreements
    images: list[str | None] | None = None
    if table and pictures:
        images = ["", *(pictures.get(int(line[0])) for line in table[1:])]
    return [*_section(heading, table, images), _lines([note]) if note else ""]


def _lines(lines: list[str]) -> str:
    return "".join(f"<p class=\"verdict\">{html.escape(line)}</p>" for line in lines)


def _section(heading: str, table: list[list[str]], images: list[str | None] | None = None) -> list[str]:
    return [f"<p class=\"note\">{html.escape(heading)}</p>", table_html(table, images)] if table else []


def table_html(table: list[list[str]], images: list[str | None] | None = None) -> str:
    """Rows of text (the first the header) as an HTML table; `images`: a data: URI (or None) per row, shown first."""
    head, *body = table
    pictures = images or [None] * len(table)
    first = "<th></th>" if images else ""
    cells = [first + "".join(f"<th>{html.escape(text)}</th>" for text in head)]
    for line, picture in zip(body, pictures[1:]):
        shown = f"<td><img class=\"thumbnail\" alt=\"example {html.escape(line[0])}\" " \
            f"src=\"{html.escape(picture)}\"></td>" \
            if picture else "<td></td>" if images else ""
        cells.append(shown + "".join(f"<td>{html.escape(text)}</td>" for text in line))
    rows = "".join(f"<tr>{line}</tr>" for line in cells)
    return f"<table class=\"verdict\">{rows}</table>"
