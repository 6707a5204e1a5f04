"""CIFAR-10 as a trainer task: its data, network, cross-entropy loss, classification metrics and figures."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingredients.cifar import figures, model
from ingredients.cifar.data import eval_batches, load_splits, train_batches
from ingredients.metrics import ClassificationMetrics
from ingredients.task import Data, Task

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch
    from torch import nn


class CifarTask(Task):
    score = "acc"  # the run's result is the best validation accuracy
    classes: list[str]
    train_images: torch.Tensor
    samples: tuple[torch.Tensor, list[str]]

    def create_data(self, device: torch.device | str, seed: int) -> Data:
        train, val, test, self.classes = load_splits(device=str(device))
        self.train_images = train.images
        self.samples = train.images[:64].cpu(), [self.classes[i] for i in train.labels[:64].tolist()]
        return Data(train_batches(train, seed=seed), eval_batches(val), eval_batches(test))

    def create_model(self) -> nn.Module:
        return model.build_model(num_classes=len(self.classes), train_images=self.train_images)

    def create_loss(self) -> nn.Module:
        return model.make_loss()

    def predict(self, network: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model.predict(network, inputs)

    def create_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(len(self.classes))

    def visualise_data(self, data: Data, add_artifact: Callable[[str, Callable[[Path], object]], object]) -> None:
        add_artifact("train_samples.png", lambda path: figures.save_image_grid(*self.samples, path))

    def visualise_results(self, best_metrics: dict[str, Any],
                          add_artifact: Callable[[str, Callable[[Path], object]], object]) -> None:
        add_artifact("confusion_matrix.png",
                     lambda path: figures.save_confusion_matrix(best_metrics["confusion"], self.classes, path))
