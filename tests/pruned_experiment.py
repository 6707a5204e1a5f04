"""A tiny tracked experiment without the trainer that reports its score to a pruned sweep (ingredients.pruning).

    python tests/pruned_experiment.py with slope=0.5
"""
from pathlib import Path

from observers.track import track  # first: it imports Sacred without its pkg_resources warning
from sacred import Experiment

from ingredients.pruning import report_score

ex = track(Experiment("pruned", base_dir=Path(__file__).resolve().parent.parent))


@ex.config
def config():
    slope = 1.0  # the score at step s is slope * s


@ex.main
def main(slope, _run):
    score = None
    for step in range(1, 6):
        score = slope * step
        _run.log_scalar("val.score", score, step)
        if report_score(_run, step, score):
            break
    return score


if __name__ == "__main__":
    ex.run_commandline()
