"""Long series drawn at full fidelity: per pixel column, the points with the smallest and the largest value."""
from __future__ import annotations

from typing import Any

import numpy as np

PLOT_COLUMNS = 1000  # pixel columns of a plot, about; zooming in asks for the finer points of the shown range


def min_max(steps: Any, values: Any, columns: int = PLOT_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) with at most 2 * `columns` points: the series' step range cut into `columns` equal columns,
    each keeping its lowest and its highest point, in step order, so that no spike disappears (a NaN counts as the
    highest: a diverged run stays visible). Shorter series come back whole."""
    step_array, value_array = np.asarray(steps), np.asarray(values, dtype=float)
    if len(step_array) <= 2 * columns:
        return step_array, value_array
    edges = np.linspace(step_array[0], step_array[-1], columns + 1)
    column = np.clip(np.searchsorted(edges, step_array, side="right") - 1, 0, columns - 1)
    order = np.lexsort((value_array, column))  # by column, then by value (NaN last)
    ordered = column[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    last = np.r_[ordered[1:] != ordered[:-1], True]
    keep = np.unique(np.concatenate([order[first], order[last]]))
    return step_array[keep], value_array[keep]
