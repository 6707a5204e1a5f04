"""Image classification on an image folder (one sub-folder per class, PNG or JPEG files), tracked by Sacred: a task
whose data stays on disk and is read by DataLoader workers.

    python experiments/images.py with data.root=/data/flowers        # a user's folder (or train/ val/ test/ in it)
    python experiments/images.py with smoke data.num_workers=2       # generated shapes, under a minute on 2 CPU cores
"""
from pathlib import Path

from observers.startup import quick_start

quick_start()  # first: torch and Sacred load faster until the experiment is tracked (observers.startup)

from ingredients.experiment import trainer_experiment
from sacred import Experiment

from ingredients.cifar.model import model_ingredient
from ingredients.images.data import data_ingredient
from ingredients.images.task import ImageFolderTask
from ingredients.trainer import train, trainer_ingredient

ex = trainer_experiment(Experiment("images", ingredients=[data_ingredient, model_ingredient, trainer_ingredient],
                                   base_dir=Path(__file__).resolve().parent.parent), lr=0.05)


@ex.named_config
def smoke():
    # The generated shapes (data.root=None) and a small CNN: under a minute on 2 CPU cores.
    model = {"arch": "simple", "width": 16}
    trainer = {"steps": 150, "val_every": 50, "log_every": 10, "print_every": 50, "checkpoint_every": 50}


@ex.automain
def main(lr):
    """Train on the image folder at data.root; the run's result is the best validation accuracy."""
    return train(ImageFolderTask(), lr)["best_val_acc"]
