"""runstore/groups.py: the statistics of groups of runs, checked against scipy.stats, and how groups are formed."""
import math

import numpy as np
import pytest
from scipy import stats

from runstore.errors import UserError
from statsmodels.stats.multitest import multipletests

from runstore.groups import TOO_SMALL, completed, describe, group_rows, holm, p_legend, welch_p_value

SAMPLES = [
    [0.91, 0.93, 0.92],
    [0.5, 0.7],
    [1.0, 2.0, 3.0, 4.0, 100.0],
    list(np.random.default_rng(0).normal(3.0, 0.1, 30)),
    [1e-9, 2e-9, 4e-9],
]


@pytest.mark.parametrize("values", SAMPLES)
def test_mean_deviation_and_interval_are_scipys(values):
    mean, std, (low, high) = describe(values)
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert std == pytest.approx(stats.tstd(values), rel=1e-12)  # ddof=1
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(expected, rel=1e-10)


def test_too_few_values_give_what_they_can():
    assert describe([]) == (None, None, None)
    assert describe([0.25]) == (0.25, None, None)
    assert describe([2.0, 2.0]) == (2.0, 0.0, [2.0, 2.0])


@pytest.mark.parametrize("first, second", [
    (SAMPLES[0], [0.89, 0.90, 0.88, 0.905]),
    (SAMPLES[1], SAMPLES[2]),
    (SAMPLES[3], list(np.random.default_rng(1).normal(3.05, 0.3, 7))),
    ([1.0, 1.0, 1.0], [1.0, 2.0]),  # one sample without spread
    ([5.0, 6.0], [5.0, 6.0]),  # the same samples: p = 1
])
@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy's, on the sample without spread
def test_welch_p_values_are_scipys(first, second):
    expected = stats.ttest_ind(first, second, equal_var=False).pvalue
    assert welch_p_value(first, second) == pytest.approx(expected, rel=1e-9)
    assert welch_p_value(second, first) == pytest.approx(expected, rel=1e-9)  # two-sided


def test_no_welch_test_between_samples_without_spread():
    assert math.isnan(welch_p_value([1.0, 1.0], [2.0, 2.0, 2.0]))


def run(id, lr, result, status="COMPLETED", **more):
    return {"id": id, "config.lr": lr, "config.seed": id, "status": status, "result": result, **more}


def test_groups_are_best_first_with_p_values_against_the_best():
    rows = [run(1, 0.1, 0.80), run(2, 0.1, 0.82), run(3, 0.01, 0.90), run(4, 0.01, 0.91), run(5, 0.01, 0.93),
            run(6, 0.01, None, "FAILED"), run(7, 1.0, 0.5)]
    groups = group_rows(rows, ["config.lr"])
    assert [(g["config.lr"], g["n"], g["not_completed"], g["runs"]) for g in groups] == [
        (0.01, 3, 1, [3, 4, 5, 6]), (0.1, 2, 0, [1, 2]), (1.0, 1, 0, [7])]
    assert groups[0]["p_vs_best"] == "best"
    assert groups[1]["p_vs_best"] == pytest.approx(stats.ttest_ind([0.90, 0.91, 0.93], [0.80, 0.82],
                                                                   equal_var=False).pvalue)
    assert groups[2]["p_vs_best"] == TOO_SMALL
    assert groups[2]["result_mean"] == 0.5 and groups[2]["result_std"] is None and groups[2]["result_ci95"] is None
    assert "_results" not in groups[0]


def test_holm_is_statsmodels():
    p_values = [0.01, 0.04, 0.03, 0.005, 0.5, 0.04, 1.0, 0.0001]
    assert list(holm(p_values)) == pytest.approx(multipletests(p_values, method="holm")[1], rel=1e-12)
    assert len(holm([])) == 0


def test_p_values_against_the_best_are_holm_adjusted_over_the_groups():
    results = {0.01: [0.90, 0.91, 0.93], 0.1: [0.85, 0.88, 0.86], 0.2: [0.89, 0.90, 0.92], 1.0: [0.5, 0.6, 0.55]}
    rows = [run(10 * index + i, lr, result) for index, (lr, values) in enumerate(results.items())
            for i, result in enumerate(values)]
    groups = group_rows(rows, ["config.lr"])
    raw = [stats.ttest_ind(results[0.01], results[group["config.lr"]], equal_var=False).pvalue for group in groups[1:]]
    assert [group["p_vs_best"] for group in groups[1:]] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert p_legend(groups) == ("p_vs_best: Welch's t-test against the best group, Holm-adjusted over the 3 groups "
                                "tested (runstore.groups)")


def test_lower_is_better_puts_the_smallest_mean_first():
    rows = [run(i, lr, result, higher_is_better=False) for i, (lr, result) in enumerate(
        [(0.1, 2.0), (0.1, 2.2), (0.2, 1.0), (0.2, 1.1)])]
    assert [group["config.lr"] for group in group_rows(rows, ["config.lr"])] == [0.2, 0.1]


def test_groups_without_completed_runs_come_last_without_statistics():
    rows = [run(1, 0.1, None, "RUNNING"), run(2, 0.2, 0.5), run(3, 0.2, 0.6), run(4, 0.3, math.inf)]
    groups = group_rows(rows, ["config.lr"])
    assert [(group["config.lr"], group["n"]) for group in groups] == [(0.2, 2), (0.1, 0), (0.3, 0)]
    assert groups[1]["result_mean"] is None and groups[1]["p_vs_best"] is None


def test_equal_groups_without_spread_have_no_p_value():
    rows = [run(1, 0.1, 0.5), run(2, 0.1, 0.5), run(3, 0.2, 0.5), run(4, 0.2, 0.5)]
    assert [group["p_vs_best"] for group in group_rows(rows, ["config.lr"])] == ["best", None]


def test_metric_statistics_use_the_runs_that_have_the_metric():
    rows = [run(1, 0.1, 0.5, **{"val.loss.min": 1.0}), run(2, 0.1, 0.6, **{"val.loss.min": 3.0}),
            run(3, 0.1, 0.7, **{"val.loss.min": math.nan}), run(4, 0.1, 0.8)]
    (group,) = group_rows(rows, ["config.lr"], metrics=["val.loss.min"])
    assert (group["n"], group["val.loss.min_mean"], group["val.loss.min_std"]) == (4, 2.0, pytest.approx(math.sqrt(2)))


def test_groups_by_unhashable_values_and_by_several_keys():
    rows = [{**run(1, 0.1, 0.5), "config.widths": [8, 16]}, {**run(2, 0.1, 0.6), "config.widths": [8, 16]},
            {**run(3, 0.1, 0.7), "config.widths": [16]}]
    groups = group_rows(rows, ["config.lr", "config.widths"])
    assert [(g["config.widths"], g["n"]) for g in groups] == [([16], 1), ([8, 16], 2)]


def test_runs_of_both_directions_cannot_be_grouped():
    rows = [run(1, 0.1, 0.5, experiment="acc"), run(2, 0.1, 0.5, experiment="loss", higher_is_better=False)]
    with pytest.raises(UserError) as refused:
        group_rows(rows, ["config.lr"])
    assert str(refused.value) == ("these runs mix results where higher is better (acc) and where lower is better "
                                  "(loss); group one experiment's runs, e.g. with --experiment NAME")


def test_only_completed_runs_with_a_finite_numeric_result_count():
    rows = [run(1, 0, 0.5), run(2, 0, True), run(3, 0, math.nan), run(4, 0, "0.5"), run(5, 0, 1, "FAILED"),
            run(6, 0, 2)]
    assert [row["id"] for row in completed(rows)] == [1, 6]
