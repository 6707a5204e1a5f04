"""What a research question supplies to the trainer (ingredients/trainer.py), which does everything else.

A task is the seeds' `create_data`, `create_model`, `create_loss` and `create_metrics`, plus optional figures;
it reads its own ingredients' configs through their captured functions. See ingredients/cifar/task.py and
ingredients/signals/task.py.
"""
from dataclasses import dataclass

from ingredients.batches import EvalBatches, TrainBatches


@dataclass
class Data:
    train: TrainBatches
    val: EvalBatches  # picks the best model
    test: EvalBatches  # evaluated once, with the best model


class Task:
    score = "acc"  # the validation metric that picks the best model; the run's result is its best value
    higher_is_better = True

    def create_data(self, device, seed):
        """A Data on `device`; `seed` fixes the training batches' order and augmentation."""
        raise NotImplementedError

    def create_model(self):
        """The network, an nn.Module (the trainer moves it to the device)."""
        raise NotImplementedError

    def create_loss(self):
        """A function (outputs, targets) -> the batch's mean loss."""
        raise NotImplementedError

    def create_metrics(self):
        """A fresh ingredients.metrics.Metrics; the trainer makes one per training window and per evaluation."""
        raise NotImplementedError

    def predict(self, model, inputs):
        """The outputs that evaluation scores; a task may override it, e.g. to average augmented views."""
        return model(inputs)

    def visualise_data(self, data, add_artifact):
        """Optional figures of the data, once training has started; `add_artifact(name, write)` attaches a file."""

    def visualise_results(self, best_metrics, add_artifact):
        """Optional figures at the end; `best_metrics` are the validation metrics of the best model."""
