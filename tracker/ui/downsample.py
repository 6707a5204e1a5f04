"""Long series drawn at full fidelity: per pixel column, the points with the smallest and the largest value."""
import numpy as np

PLOT_COLUMNS = 1000  # pixel columns of a plot, about; zooming in asks for the finer points of the shown range


def min_max(steps, values, columns=PLOT_COLUMNS):
    """(steps, values) with at most 2 * `columns` points: the series' step range cut into `columns` equal columns,
    each keeping its lowest and its highest point, in step order, so that no spike disappears (a NaN counts as the
    highest: a diverged run stays visible). Shorter series come back whole."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    if len(steps) <= 2 * columns:
        return steps, values
    edges = np.linspace(steps[0], steps[-1], columns + 1)
    column = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, columns - 1)
    order = np.lexsort((values, column))  # by column, then by value (NaN last)
    ordered = column[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    last = np.r_[ordered[1:] != ordered[:-1], True]
    keep = np.unique(np.concatenate([order[first], order[last]]))
    return steps[keep], values[keep]
