"""Runs that differ only in their seed as one group, with the statistics a paper reports of a result.

`tracker runs --group-by KEYS` shows them and runstore.query.groups() returns them as a DataFrame. A group holds the
runs with equal values of KEYS (every config key except `seed` when KEYS is not given); its statistics are over its
COMPLETED runs with a numeric result. A run that another one continued (info.continued_by: `tracker resume`, `tracker
sweep --continue`) counts once, as the run that continued it:

    n                 how many such runs (not_completed: how many others, failed, interrupted or still running)
    result_mean       the mean result
    result_std        the standard deviation, ddof=1 (None for n=1)
    result_ci95       [low, high]: the 95 % confidence interval of the mean, from Student's t with n-1 degrees of
                      freedom
    METRIC_mean, ...  the same for every metric summary asked for (e.g. val.loss.min_mean)
    p_vs_best         Welch's t-test p-value of this group's results against the best group's, Holm-adjusted over
                      the groups so compared (the best is picked after the fact, and with 10 groups some unadjusted
                      p-values fall below 0.05 by chance); "best" for the best group, "n too small" when either has a
                      single run

Groups are sorted best first by the experiment's direction (the runs' higher_is_better); a selection that mixes
directions cannot be grouped. Student's t distribution is scipy.special's (stdtr, stdtrit): importing scipy.stats
would add 0.4 to 0.6 s to the 1.3 s of `tracker runs --group` on 8 runs (`python benchmarks/startup_tricks.py`);
tests/unit/test_group_statistics.py and tests/test_answers.py check every figure against scipy.stats.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from runstore.direction import higher_is_better, mixed_directions
from runstore.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

P_COLUMN = "p_vs_best"
TOO_SMALL = "n too small"


def stat_columns(name: str) -> list[str]:
    return [f"{name}_mean", f"{name}_std", f"{name}_ci95"]


def group_rows(rows: list[dict[str, Any]], keys: Sequence[str],
               metrics: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One dict per group of `rows` (run rows of runstore.query) with equal values of `keys`, best first:
    the keys' values, n, not_completed, the statistics of the result and of each of `metrics`, p_vs_best and the
    runs' ids."""
    higher = _direction(rows)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("continued_by") is not None:
            continue
        identity = tuple(json.dumps(row.get(key), sort_keys=True, default=str) for key in keys)
        groups.setdefault(identity, []).append(row)
    summaries = [_summarize(members, keys, metrics) for members in groups.values()]
    sign = -1 if higher else 1
    summaries.sort(key=lambda group: (group["n"] == 0, sign * group["result_mean"] if group["n"] else 0))
    _compare_with_best(summaries)
    return summaries


def _direction(rows: list[dict[str, Any]]) -> bool:
    note = mixed_directions(rows)
    if note:
        raise UserError(f"{note}; group one experiment's runs, e.g. with --experiment NAME")
    return all(higher_is_better(row) for row in rows)


def _summarize(members: list[dict[str, Any]], keys: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    done = completed(members)
    group = {key: members[0].get(key) for key in keys}
    group.update(n=len(done), not_completed=len(members) - len(done))
    for name, values in [("result", [row["result"] for row in done])] + [
            (metric, [row[metric] for row in done if is_number(row.get(metric))]) for metric in metrics]:
        group.update(zip(stat_columns(name), describe(values)))
    group["runs"] = [row["id"] for row in members]
    group["_results"] = [row["result"] for row in done]
    return group


def describe(values: Sequence[float]) -> tuple[float | None, float | None, list[float] | None]:
    """(mean, standard deviation with ddof=1, [low, high] 95 % confidence interval of the mean from Student's t);
    None for what `values` are too few for."""
    import numpy as np
    from scipy.special import stdtrit

    if not values:
        return None, None, None
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, None, None
    std = float(array.std(ddof=1))
    sem = std / math.sqrt(len(array))
    half_width = float(stdtrit(len(array) - 1, 0.975)) * sem
    return mean, std, [mean - half_width, mean + half_width]


def welch_p_value(first: Sequence[float], second: Sequence[float]) -> float:
    """The two-sided p-value of Welch's t-test (unequal variances) of two samples of at least 2 values each; NaN when
    neither varies. As scipy.stats.ttest_ind(first, second, equal_var=False).pvalue."""
    import numpy as np
    from scipy.special import stdtr

    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    share1, share2 = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if share1 + share2 == 0:
        return math.nan
    t = (a.mean() - b.mean()) / math.sqrt(share1 + share2)
    freedom = (share1 + share2) ** 2 / (share1 ** 2 / (len(a) - 1) + share2 ** 2 / (len(b) - 1))
    return float(2 * stdtr(freedom, -abs(t)))


def _compare_with_best(groups: list[dict[str, Any]]) -> None:
    best = groups[0]["_results"] if groups and groups[0]["n"] else None
    tested: list[dict[str, Any]] = []
    for index, group in enumerate(groups):
        results = group.pop("_results")
        if best is None or not results:
            group[P_COLUMN] = None
        elif index == 0:
            group[P_COLUMN] = "best"
        elif len(results) < 2 or len(best) < 2:
            group[P_COLUMN] = TOO_SMALL
        else:
            p_value = welch_p_value(best, results)
            group[P_COLUMN] = None if math.isnan(p_value) else p_value  # both without any spread: no test
            tested += [group] if group[P_COLUMN] is not None else []
    for group, adjusted in zip(tested, holm([group[P_COLUMN] for group in tested])):
        group[P_COLUMN] = float(adjusted)


def p_legend(groups: Iterable[dict[str, Any]]) -> str:
    """The line under a table of `groups` that says what p_vs_best is."""
    tested = sum(isinstance(group[P_COLUMN], float) for group in groups)
    return (f"{P_COLUMN}: Welch's t-test against the best group, Holm-adjusted over the {tested} "
            f"group{'s' * (tested != 1)} tested (runstore.groups)")


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment of `p_values` (as statsmodels' multipletests(method='holm')), written here:
    statsmodels takes seconds to import, and `tracker runs --group` uses it."""
    import numpy as np

    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled)) if len(p) else scaled
    return adjusted


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def completed(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The COMPLETED runs with a numeric result: those that statistics of the result use."""
    return [row for row in rows if row.get("status") == "COMPLETED" and is_number(row.get("result"))]
