"""Image-folder classification as a trainer task: images read from files by DataLoader workers, CIFAR's networks
(the `model` ingredient of ingredients/cifar), cross-entropy loss, classification metrics and figures."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import torch

from ingredients.cifar import figures, model
from ingredients.images.data import datasets, read_image, scan_folder
from ingredients.metrics import ClassificationMetrics
from ingredients.task import Task

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from torch import nn

    from ingredients.images.data import Folder, ImageFiles
    from ingredients.task import Data, Datasets

SAMPLES = 64  # training images in the train_samples.png figure


class ImageFolderTask(Task):
    score = "acc"  # the run's result is the best validation accuracy
    classes: list[str]
    folder: Folder
    data: Datasets

    def create_data(self, device: torch.device | str, seed: int) -> Datasets:
        self.folder = scan_folder()
        self.classes = self.folder.classes
        self.data = datasets(self.folder)
        return self.data

    def create_model(self) -> nn.Module:
        return model.build_model(num_classes=len(self.folder.classes))

    def create_loss(self) -> nn.Module:
        return model.make_loss()

    def predict(self, network: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model.predict(network, inputs)

    def create_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(len(self.folder.classes))

    def visualise_data(self, data: Data, add_artifact: Callable[[str, Callable[[Path], object]], object]) -> None:
        train = cast("ImageFiles", self.data.train)
        images = torch.stack([read_image(train.root / path, train.size) for path in train.files[:SAMPLES]])
        labels = [self.folder.classes[label] for label in train.labels[:SAMPLES]]
        add_artifact("train_samples.png", lambda path: figures.save_image_grid(images, labels, path))
        if self.folder.seeded:  # the drawn split, so that another tool can use the same one
            splits = {name: [path for path, _ in items] for name, items in self.folder.splits.items()}
            add_artifact("data_splits.json", lambda path: path.write_text(json.dumps(splits, indent=1)))

    def visualise_results(self, best_metrics: dict[str, Any],
                          add_artifact: Callable[[str, Callable[[Path], object]], object]) -> None:
        add_artifact("confusion_matrix.png",
                     lambda path: figures.save_confusion_matrix(best_metrics["confusion"], self.folder.classes, path))
