"""Long series drawn at full fidelity: per pixel column, the points with the smallest and the largest value. The
uploader samples Omniboard's copy of a metric so, and `tracker ui` draws every plot so."""
from __future__ import annotations

from typing import Any

import numpy as np

PLOT_COLUMNS = 1000  # pixel columns of a plot, about; zooming in asks for the finer points of the shown range


def min_max(steps: Any, values: Any, columns: int = PLOT_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) with at most 2 * `columns` + 2 points (extreme_indices), in step order. Shorter series come back
    whole."""
    step_array, value_array = np.asarray(steps), np.asarray(values, dtype=float)
    if len(step_array) <= 2 * columns + 2:
        return step_array, value_array
    shown = extreme_indices(step_array, value_array, columns)
    return step_array[shown], value_array[shown]


def extreme_indices(steps: np.ndarray, values: np.ndarray, columns: int) -> np.ndarray:
    """The indices of the points to draw of a series, in step order: its first and last point and, with the step
    range cut into `columns` equal columns, each column's lowest and highest point, so that no spike disappears (a NaN
    counts as the highest: a diverged run stays visible)."""
    order = np.argsort(steps, kind="stable") if np.any(steps[1:] < steps[:-1]) else None  # logged out of order
    ordered_steps, ordered_values = (steps, values) if order is None else (steps[order], values[order])
    edges = np.linspace(ordered_steps[0], ordered_steps[-1], columns + 1)
    keep = np.union1d(_column_extremes(ordered_steps, ordered_values, edges), [0, len(steps) - 1])
    return keep if order is None else order[keep]


def _column_extremes(steps: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The indices of each column's lowest and highest point, in order, for steps in ascending order: a few passes
    over the points, no sort (a 1,000,000-point series in about 20 ms)."""
    starts = np.r_[0, np.searchsorted(steps, edges[1:-1], side="left")]
    ends = np.r_[starts[1:], len(steps)]
    starts, ends = starts[starts < ends], ends[starts < ends]  # columns holding points
    column = np.repeat(np.arange(len(starts)), ends - starts)
    ranked = np.where(np.isnan(values), np.inf, values)  # a NaN is the highest; the lowest only of a column of NaNs
    keep = []
    for extreme in (np.minimum.reduceat(ranked, starts), np.maximum.reduceat(ranked, starts)):
        hits = np.flatnonzero(ranked == extreme[column])
        keep.append(hits[np.r_[True, column[hits][1:] != column[hits][:-1]]])  # each column's first hit
    return np.unique(np.concatenate(keep))
