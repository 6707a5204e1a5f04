"""The experiment that benchmarks/log_throughput.py runs: a loop producing `points` metric points.

    python benchmarks/log_experiment.py with how=batch points=1000000
"""
from pathlib import Path

import numpy as np

from observers.track import track  # first: it imports Sacred without its pkg_resources warning
from sacred import Experiment

from observers.log_batch import log_batch

ex = track(Experiment("log_throughput", base_dir=Path(__file__).resolve().parent))


@ex.config
def config():
    points = 1_000_000  # metric points produced by the loop
    per_step = 1000  # points produced per loop iteration (one log_batch call)
    how = "batch"  # 'batch' (observers.log_batch), 'scalar' (_run.log_scalar per point) or 'none' (not logged)


@ex.automain
def main(points, per_step, how, _run):
    rng = np.random.default_rng(0)
    for start in range(0, points, per_step):
        steps = np.arange(start, min(points, start + per_step))
        values = 1 / (1 + steps / 1000) + 0.01 * rng.standard_normal(len(steps))  # a noisy loss: as incompressible
        if how == "batch":
            log_batch(_run, "points", steps, values)
        elif how == "scalar":
            for step, value in zip(steps.tolist(), values.tolist()):
                _run.log_scalar("points", value, step)
    return points
