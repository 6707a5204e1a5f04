"""How a run is laid out in MongoDB (what Sacred's MongoObserver writes, plus what a 16 MB document cannot hold):
- `runs`: the run document; `captured_out` keeps the last TAIL_CHARS characters, the whole output becomes the
  artifact captured_out.txt; `local_copy.key` identifies the file-store run it came from, so re-uploads find it
  (a unique index, KEY_INDEX, stores each one once); `local_copy.missing` lists, one line each, what its local copy
  lacked (a missing or truncated file; a completed run then has status FAILED, and its fail_trace says why);
  `omniboard.tags` (Omniboard's tags) also holds the tags listed in the run's info['tags'].
- `metrics`: one document per metric, which Omniboard plots: every point up to PLOT_POINTS, else the lowest and
  highest point of each of PLOT_POINTS / 2 columns of its steps (runstore.downsample), so no spike disappears.
- `metric_summaries` in the run document: first, last, min, max and the step of the max of every metric, so run
  listings (runstore.query) need not read any points.
- `metric_points`: every point of every metric, CHUNK_POINTS per document, as packed binary arrays, zlib-compressed
  (steps and times compress to almost nothing, which makes storing a million points ~3x faster on nx-27017).
- GridFS: artifacts, and sources/resources stored once per (path, md5).
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import bson
import numpy as np
import pymongo

if TYPE_CHECKING:
    from pymongo.database import Database

TAIL_CHARS = 1_000_000
PLOT_POINTS = 10_000
# Sacred's MongoObserver.VERSION, which Omniboard reads (not imported: the tracker CLI starts without Sacred).
MONGO_OBSERVER_FORMAT = "MongoObserver-0.7.0"
CHUNK_POINTS = 100_000
OUTPUT_ARTIFACT = "captured_out.txt"
EPOCH = np.datetime64(0, "us")
KEY_INDEX = "local_copy_key_unique"
CHUNK_INDEX = "metric_points_chunk_unique"
# The run fields that listings sort by most (newest first, best result first), each indexed by observers.upload.
LISTING_ORDERS = ("start_time", "result")
PRUNED_TAG = "pruned"  # the Omniboard tag of a run its sweep's pruner stopped early; listings show it as PRUNED


def summarize(steps: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """first, last, min, max of a series' values and `argmax`, the step of its max.

    A NaN is kept visible, as a diverged run must be: min and max are NaN when any point is, `argmax` is then the
    step of the first NaN, and first and last are the points as stored.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return {"first": None, "last": None, "min": None, "max": None, "argmax": None, "points": 0}
    return {"first": values[0].item(), "last": values[-1].item(), "min": values.min().item(),
            "max": values.max().item(), "argmax": int(steps[int(values.argmax())]), "points": len(values)}


def read_metric(db: Database[Any], run_id: object, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every point of a metric as numpy arrays: steps, values and timestamps (datetime64[us])."""
    chunks = list(db.metric_points.find({"run_id": run_id, "name": name}).sort("chunk", pymongo.ASCENDING))
    steps, values, stamps = (
        np.concatenate([unpack_points(c, key, dtype) for c in chunks]) if chunks else np.array([], dtype)
        for key, dtype in (("steps", np.int64), ("values", np.float64), ("timestamps", np.int64))
    )
    return steps, values, EPOCH + stamps.astype("timedelta64[us]")


def read_plotted(db: Database[Any], metric_id: str | None) -> tuple[list[Any], ...]:
    """The points of a metric that Omniboard plots, from its `metrics` document (`metric_id`: its id, as a run's
    info.metrics lists it): steps and values as stored; empty lists when there is no such document."""
    doc = db.metrics.find_one({"_id": bson.ObjectId(metric_id)}) if bson.ObjectId.is_valid(metric_id) else None
    return tuple(doc.get(key, []) if doc else [] for key in ("steps", "values"))


def read_file(db: Database[Any], file_id: object) -> bytes | None:
    """A GridFS file's bytes (None when there is no such file: deleted by hand, or an upload cut short), read in
    ranges of chunks: nx-27017 answers a query in one message of at most 48 MB, so GridFS's own reader fails on larger
    files there (MongoDB itself has no such limit)."""
    file = db.fs.files.find_one({"_id": file_id})
    if file is None:
        return None
    count = -(-file["length"] // file["chunkSize"])
    parts: list[bytes] = []
    for first in range(0, count, 64):
        query = {"files_id": file_id, "n": {"$gte": first, "$lt": first + 64}}
        parts.extend(chunk["data"] for chunk in db.fs.chunks.find(query).sort("n", pymongo.ASCENDING))
    return b"".join(parts)


def series_arrays(series: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A series' steps, values and timestamps as int64, float64 and datetime64[us] arrays (a live run holds them so
    already; metrics.json holds lists, with ISO timestamps)."""
    return (np.asarray(series["steps"], dtype=np.int64), np.asarray(series["values"], dtype=np.float64),
            np.asarray(series["timestamps"], dtype="datetime64[us]"))


def pack_points(steps: np.ndarray, values: np.ndarray, stamps: np.ndarray) -> dict[str, Any]:
    """Points as zlib-compressed little-endian int64 steps, float64 values and int64 microsecond timestamps."""
    arrays = {"steps": steps.astype("<i8"), "values": values.astype("<f8"),
              "timestamps": (stamps - EPOCH).astype("<i8")}
    packed = {key: bson.Binary(zlib.compress(array.tobytes(), 1)) for key, array in arrays.items()}
    return {"encoding": "zlib", **packed}


def unpack_points(chunk: dict[str, Any], key: str, dtype: Any) -> np.ndarray:
    """One array of a `metric_points` document (uncompressed in those stored before compression came)."""
    data = zlib.decompress(chunk[key]) if chunk.get("encoding") == "zlib" else chunk[key]
    return np.frombuffer(data, dtype)
