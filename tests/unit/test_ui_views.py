"""The pure parts of `tracker ui`'s views: metric families and the groups' confidence band."""
import numpy as np
import pytest
from scipy import stats

from tracker.ui.groups_view import mean_band
from tracker.ui.run_view import metric_families


def test_a_metric_family_shares_a_plot_and_system_metrics_are_folded_away():
    names = ["train.loss", "val.loss", "val.acc", "lr", "sys.cpu_percent", "time.step_ms", "examples_per_s"]
    assert metric_families(names) == [
        ("acc", ["val.acc"], False), ("examples_per_s", ["examples_per_s"], False),
        ("loss", ["train.loss", "val.loss"], False), ("lr", ["lr"], False),
        ("sys.cpu_percent", ["sys.cpu_percent"], True), ("time.step_ms", ["time.step_ms"], True)]


def test_the_band_is_students_95_percent_interval_of_the_mean_at_each_step():
    curves = [(np.array([0, 10, 20]), np.array([1.0, 0.5, 0.25])), (np.array([0, 10, 20]), np.array([2.0, 0.7, 0.2])),
              (np.array([0, 5, 10, 20, 30]), np.array([1.5, 1.0, 0.6, 0.3, 0.1]))]
    steps, mean, low, high = mean_band(curves)
    assert steps.tolist() == [0, 5, 10, 20]  # where every curve has points; the third's step 5 interpolated
    at_ten = [0.5, 0.7, 0.6]
    expected = stats.t.interval(0.95, 2, loc=np.mean(at_ten), scale=stats.sem(at_ten))
    assert mean[2] == pytest.approx(np.mean(at_ten)) and (low[2], high[2]) == pytest.approx(expected)
    assert mean_band(curves[:1])[2] is None
