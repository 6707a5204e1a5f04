"""runstore/layout.py's pure part: metric summaries, and points packed into metric_points documents."""
import math
import zlib

import numpy as np
import pytest

from runstore.layout import EPOCH, pack_points, series_arrays, summarize, unpack_points


def test_summary_of_a_series():
    assert summarize([0, 10, 20, 30], [0.5, 0.9, 0.2, 0.9]) == {
        "first": 0.5, "last": 0.9, "min": 0.2, "max": 0.9, "argmax": 10, "points": 4}  # the first step of the max


def test_summary_of_no_points_is_empty():
    assert summarize([], []) == {"first": None, "last": None, "min": None, "max": None, "argmax": None, "points": 0}


def test_summary_values_are_python_numbers_whatever_was_stored():
    summary = summarize(np.array([5, 6], dtype=np.int64), np.array([1, 3], dtype=np.int32))
    assert summary == {"first": 1.0, "last": 3.0, "min": 1.0, "max": 3.0, "argmax": 6, "points": 2}
    assert all(type(summary[key]) is float for key in ("first", "last", "min", "max"))
    assert type(summary["argmax"]) is int


def test_a_nan_stays_visible_in_the_summary():
    summary = summarize([1, 2, 3, 4], [0.1, math.nan, 0.3, math.nan])
    assert math.isnan(summary["min"]) and math.isnan(summary["max"])
    assert summary["argmax"] == 2  # the step of the first NaN
    assert (summary["first"], summary["last"]) == (0.1, pytest.approx(math.nan, nan_ok=True))


def test_infinities_are_extremes():
    summary = summarize([1, 2, 3], [1.0, math.inf, -math.inf])
    assert (summary["min"], summary["max"], summary["argmax"]) == (-math.inf, math.inf, 2)


def points(count=1000):
    steps = np.arange(count, dtype=np.int64) * 7
    values = np.random.default_rng(0).standard_normal(count)
    values[:4] = [math.nan, math.inf, -math.inf, -0.0]
    stamps = np.datetime64("2026-11-01T12:00:00", "us") + np.arange(count).astype("timedelta64[ms]")
    return steps, values, stamps


def unpacked(chunk):
    return (unpack_points(chunk, "steps", np.int64), unpack_points(chunk, "values", np.float64),
            EPOCH + unpack_points(chunk, "timestamps", np.int64).astype("timedelta64[us]"))


def test_packed_points_unpack_bit_for_bit():
    steps, values, stamps = points()
    chunk = pack_points(steps, values, stamps)
    assert chunk["encoding"] == "zlib"
    got_steps, got_values, got_stamps = unpacked(chunk)
    assert np.array_equal(got_steps, steps) and np.array_equal(got_stamps, stamps)
    assert got_values.tobytes() == values.tobytes()  # NaN, infinities and -0.0 exactly


def test_chunks_stored_before_compression_still_read():
    steps, values, stamps = points(10)
    old = {"steps": steps.astype("<i8").tobytes(), "values": values.astype("<f8").tobytes(),
           "timestamps": (stamps - EPOCH).astype("<i8").tobytes()}  # no "encoding": raw little-endian arrays
    got_steps, got_values, got_stamps = unpacked(old)
    assert np.array_equal(got_steps, steps) and np.array_equal(got_stamps, stamps)
    assert got_values.tobytes() == values.tobytes()


def test_packing_is_little_endian_whatever_the_input_byte_order():
    steps, values, stamps = points(5)
    chunk = pack_points(steps.astype(">i8"), values.astype(">f8"), stamps)
    assert zlib.decompress(chunk["steps"]) == steps.astype("<i8").tobytes()
    assert unpacked(chunk)[1].tobytes() == values.tobytes()


def test_empty_series_pack_and_unpack():
    empty = series_arrays({"steps": [], "values": [], "timestamps": []})
    assert [array.size for array in unpacked(pack_points(*empty))] == [0, 0, 0]


def test_metrics_json_lists_and_live_arrays_give_the_same_arrays():
    steps, values, stamps = points(20)
    from_json = series_arrays({"steps": steps.tolist(), "values": values.tolist(),
                               "timestamps": [str(stamp) for stamp in stamps]})  # ISO strings, as metrics.json
    live = series_arrays({"steps": steps, "values": values, "timestamps": stamps})
    for json_array, live_array, dtype in zip(from_json, live, (np.int64, np.float64, "datetime64[us]")):
        assert json_array.dtype == np.dtype(dtype) and json_array.tobytes() == live_array.tobytes()
    assert unpacked(pack_points(*from_json))[2].tolist() == stamps.tolist()
