import numpy as np

from runstore.downsample import min_max


def test_a_single_point_spike_survives_a_million_points():
    steps = np.arange(1_000_000)
    values = np.sin(steps / 1000.0)
    values[654_321] = 50.0
    shown_steps, shown_values = min_max(steps, values, columns=500)
    assert len(shown_steps) <= 2 * 500 + 2  # each column's lowest and highest, and the first and last points
    assert 654_321 in shown_steps and shown_values.max() == 50.0
    assert shown_values.min() == values.min()
    assert list(shown_steps) == sorted(shown_steps)


def test_each_column_keeps_its_lowest_and_highest_point():
    steps = np.arange(40)
    values = np.array([3, 1, 4, 1.5] * 10)
    shown_steps, shown_values = min_max(steps, values, columns=10)  # 4 points per column
    assert list(shown_steps) == [0, *(step for start in range(0, 40, 4) for step in (start + 1, start + 2)), 39]
    assert set(shown_values[1:-1]) == {1, 4}


def test_a_nan_stays_visible_and_short_series_come_back_whole():
    values = np.ones(5000)
    values[4000] = np.nan
    shown_steps, shown_values = min_max(np.arange(5000), values, columns=100)
    assert 4000 in shown_steps and np.isnan(shown_values).sum() == 1
    steps, values = min_max([1, 2, 3], [0.5, 0.2, 0.9])
    assert list(steps) == [1, 2, 3] and list(values) == [0.5, 0.2, 0.9]


def test_steps_out_of_order_give_the_same_points_as_in_order():
    rng = np.random.default_rng(0)
    steps, values = np.arange(20_000), rng.normal(size=20_000)
    values[[17, 9_000]] = [np.nan, 40.0]
    in_order = min_max(steps, values, columns=300)
    shuffled = rng.permutation(len(steps))
    out_of_order = min_max(steps[shuffled], values[shuffled], columns=300)
    assert np.array_equal(in_order[0], np.sort(out_of_order[0]))
    assert np.array_equal(in_order[1], values[in_order[0]], equal_nan=True)
    assert 17 in in_order[0] and 9_000 in in_order[0]
