"""A tiny tracked experiment whose config value, metric points, info and result are NaN or infinite.

    python tests/nonfinite_experiment.py
"""
from pathlib import Path

from observers.track import track  # first: it imports Sacred without its pkg_resources warning
from sacred import Experiment


ex = track(Experiment("nonfinite", base_dir=Path(__file__).resolve().parent.parent))


@ex.config
def config():
    scale = float("inf")  # an infinite config value


@ex.main
def main(scale, _run):
    for step, value in enumerate([1.0, float("nan"), scale]):
        _run.log_scalar("loss", value, step)
    _run.info["spread"] = float("nan")
    return -scale


if __name__ == "__main__":
    ex.run_commandline()
