import numpy as np

from tracker.ui.downsample import min_max


def test_a_single_point_spike_survives_a_million_points():
    steps = np.arange(1_000_000)
    values = np.sin(steps / 1000.0)
    values[654_321] = 50.0
    shown_steps, shown_values = min_max(steps, values, columns=500)
    assert len(shown_steps) <= 1000
    assert 654_321 in shown_steps and shown_values.max() == 50.0
    assert shown_values.min() == values.min()
    assert list(shown_steps) == sorted(shown_steps)


def test_each_column_keeps_its_lowest_and_highest_point():
    steps = np.arange(40)
    values = np.array([3, 1, 4, 1.5] * 10)
    shown_steps, shown_values = min_max(steps, values, columns=10)  # 4 points per column
    assert list(shown_steps) == [step for start in range(0, 40, 4) for step in (start + 1, start + 2)]
    assert set(shown_values) == {1, 4}


def test_a_nan_stays_visible_and_short_series_come_back_whole():
    values = np.ones(5000)
    values[4000] = np.nan
    shown_steps, shown_values = min_max(np.arange(5000), values, columns=100)
    assert 4000 in shown_steps and np.isnan(shown_values).sum() == 1
    steps, values = min_max([1, 2, 3], [0.5, 0.2, 0.9])
    assert list(steps) == [1, 2, 3] and list(values) == [0.5, 0.2, 0.9]
