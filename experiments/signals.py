"""Frequency estimation from noisy 1-D signals, tracked by Sacred: a second task on the same trainer as cifar.py.

    python experiments/signals.py with smoke           # under a minute on 2 CPU cores, val MAE below 0.5
    python experiments/signals.py with lr=0.02 model.width=64
"""
from pathlib import Path

from observers.startup import quick_start

quick_start()  # first: torch and Sacred load faster until the experiment is tracked (observers.startup)

from ingredients.experiment import trainer_experiment
from sacred import Experiment

from ingredients.signals.data import data_ingredient
from ingredients.signals.model import model_ingredient
from ingredients.signals.task import SignalTask
from ingredients.trainer import train, trainer_ingredient

ex = trainer_experiment(Experiment("signals", ingredients=[data_ingredient, model_ingredient, trainer_ingredient],
                                   base_dir=Path(__file__).resolve().parent.parent), lr=0.02)


@ex.named_config
def smoke():
    data = {"train_size": 4000, "eval_size": 500, "length": 64}
    model = {"width": 16}
    trainer = {"steps": 300, "val_every": 100, "log_every": 10, "print_every": 100, "checkpoint_every": 100}


@ex.automain
def main(lr):
    """Train the frequency regressor; the run's result is the best validation MAE (lower is better)."""
    return train(SignalTask(), lr)["best_val_mae"]
