"""CIFAR-10 image classification, tracked by Sacred.

    python experiments/cifar.py with lr=0.01           # train; the run is recorded in MongoDB
    python experiments/cifar.py with smoke             # a one-minute run on generated data
    python experiments/cifar.py with fast              # airbench94's recipe for a GPU (not timed on one here)
    python experiments/cifar.py print_config with smoke
"""
from pathlib import Path

from observers.startup import quick_start

quick_start()  # first: torch and Sacred load faster until the experiment is tracked (observers.startup)

from ingredients.experiment import trainer_experiment
from sacred import Experiment

from ingredients.cifar.data import data_ingredient, prepare_data
from ingredients.cifar.model import model_ingredient
from ingredients.cifar.task import CifarTask
from ingredients.trainer import train, trainer_ingredient

# base_dir: the project root, so Sacred records ingredients/ among the sources and mainfile as experiments/cifar.py.
ex = trainer_experiment(Experiment("cifar", ingredients=[data_ingredient, model_ingredient, trainer_ingredient],
                                   base_dir=Path(__file__).resolve().parent.parent), lr=0.1)
ex.config_hook(prepare_data)  # after every value is checked (trainer_experiment's lr check too)


@ex.named_config
def smoke():
    # Generated data and a small CNN: under a minute on 2 CPU cores, validation accuracy >= 0.6.
    lr = 0.05
    data = {"dataset": "synthetic", "batch_size": 64, "limit": 6000}
    model = {"arch": "simple", "width": 16}
    trainer = {"steps": 300, "val_every": 100, "log_every": 10, "print_every": 100, "checkpoint_every": 100,
               "channels_last": True}


@ex.named_config
def fast():
    # airbench94's recipe (Keller Jordan's CIFAR-10 speedrun, 94 % test accuracy in about 4 s on an A100): its network
    # with a whitening layer, batch 1024 for 10 epochs, warm-up then linear decay, label smoothing 0.2, lookahead,
    # flip and 2-pixel translation, test-time augmentation, 16-bit autocast and channels_last on a GPU.
    # Its learning rate 11.5 (per 1024 summed losses, momentum 0.85) is 1.5 for a mean loss; weight decay is set
    # so that lr * weight_decay is its 0.002 per step. Validation keeps 2 % of the training images.
    lr = 1.5
    data = {"batch_size": 1024, "eval_batch_size": 2000, "crop_padding": 2, "val_fraction": 0.02}
    model = {"arch": "airbench", "width": 64, "label_smoothing": 0.2, "tta": True}
    trainer = {"epochs": 10, "schedule": "triangle", "warmup": 0.23, "momentum": 0.85, "weight_decay": 0.0013,
               "ema_decay": 0.77, "ema_every": 5, "lookahead": True, "precision": "bf16", "channels_last": True,
               "val_every": 48, "log_every": 12, "print_every": 48}


@ex.automain
def main(lr):
    """Train on CIFAR-10 (or `smoke` data); the run's result is the best validation accuracy."""
    return train(CifarTask(), lr)["best_val_acc"]
