"""A small experiment for the 16 MB tests: prints `output_mb` MB and logs `points` points to the metric `flood`.

    python tests/flood_experiment.py with output_mb=100 points=1000000
"""
import sys
import tempfile
from pathlib import Path

from observers.track import track  # first: it imports Sacred without its pkg_resources warning
from sacred import Experiment

from observers.log_batch import log_batch

ex = track(Experiment("flood", base_dir=Path(__file__).resolve().parent.parent))


@ex.config
def config():
    output_mb = 0  # MB (10**6 bytes) printed, as lines of 100 bytes
    points = 10  # points logged to the metric `flood`: step i has value i / 2
    spike_at = -1  # the step whose value is `points` instead, a spike above every other (-1: none)
    info_mb = 0  # MB of text put into _run.info
    batch = False  # log the points with observers.log_batch, 1000 per call, instead of _run.log_scalar
    artifact_kb = 0  # kB (1000 bytes) of "x" added as the artifact blob.bin, from a file deleted right afterwards


def output_line(i):
    return f"line {i:09d} {'.' * 84}\n"


def value(step, points, spike_at):
    return points if step == spike_at else step / 2


@ex.automain
def main(output_mb, points, spike_at, info_mb, batch, artifact_kb, _run):
    for i in range(output_mb * 10_000):
        sys.stdout.write(output_line(i))
    if batch:
        for start in range(0, points, 1000):
            steps = list(range(start, min(points, start + 1000)))
            log_batch(_run, "flood", steps, [value(step, points, spike_at) for step in steps])
    else:
        for i in range(points):
            _run.log_scalar("flood", value(i, points, spike_at), i)
    if artifact_kb:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "blob.bin"
            path.write_bytes(b"x" * (artifact_kb * 1000))
            _run.add_artifact(path)
    if info_mb:
        _run.info["blob"] = "x" * (info_mb * 10**6)
    return points
