"""What a research question supplies to the trainer (ingredients/trainer.py), which does everything else.

A task is the seeds' `create_data`, `create_model`, `create_loss` and `create_metrics`, plus optional figures;
it reads its own ingredients' configs through their captured functions. `create_data` returns either of two kinds:

- `Data`: in-memory batches (ingredients.batches.TrainBatches and EvalBatches), for data that fits in memory; the
  fast path (ingredients/cifar/task.py, ingredients/signals/task.py).
- `Datasets`: map-style torch Datasets for train, val and test, whose items are (input tensor, target); the trainer
  loads them with DataLoaders (workers, pinned memory on CUDA), for data on disk (ingredients/images/task.py).

Either way the order of the training batches depends only on (seed, epoch), so a run resumed mid-epoch gives the
uninterrupted run's metrics bit for bit. A Dataset's random augmentation must draw from torch's, NumPy's or Python's
global random numbers (as torchvision's transforms do), which the trainer seeds per item from (seed, epoch, index).
The trainer records a fingerprint of the data in the run's info.data (ingredients/fingerprint.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ingredients.batches import DatasetBatches, DatasetEvalBatches, EvalBatches, TrainBatches

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

    from ingredients.batches import MapDataset
    from ingredients.metrics import Metrics

    # `add_artifact(name, write)`: attach a file that `write(path)` writes (Trainer.add_artifact)
    AddArtifact = Callable[[str, Callable[[Path], object]], object]


@dataclass
class Data:
    train: TrainBatches | DatasetBatches
    val: EvalBatches | DatasetEvalBatches  # picks the best model
    test: EvalBatches | DatasetEvalBatches  # evaluated once, with the best model


@dataclass
class Datasets:
    """Map-style Datasets and how to load them; the trainer turns them into Data with `batches`.

    For the fingerprint, a Dataset read from files has `files`: each item's file, relative to `root`, in item order;
    the trainer then hashes the files (`fingerprint`: 'content' reads them, 'size' only their sizes, for folders too
    big to read at every start). Without `root` it hashes every item once.
    """

    train: MapDataset
    val: MapDataset
    test: MapDataset
    batch_size: int  # training batch size
    eval_batch_size: int
    num_workers: int = 0  # DataLoader worker processes (0: items are read in the training process)
    prefetch_factor: int = 2  # batches each worker reads ahead
    train_transform: Optional[Callable] = None  # transform(inputs, generator) of each training batch, on the device
    eval_transform: Optional[Callable] = None  # transform(inputs) of each evaluation batch, on the device
    root: Optional[Path] = None  # the folder of the Datasets' `files`
    fingerprint: str = "content"  # 'content' or 'size' (see above)

    def batches(self, device: torch.device, seed: int) -> Data:
        """The Data that the trainer iterates; `seed` fixes the training order and the items' augmentation."""
        def evaluation(dataset: MapDataset) -> DatasetEvalBatches:
            return DatasetEvalBatches(dataset, self.eval_batch_size, device, self.eval_transform, self.num_workers,
                                      self.prefetch_factor)

        train = DatasetBatches(self.train, self.batch_size, seed, device, self.train_transform, self.num_workers,
                               self.prefetch_factor)
        return Data(train, evaluation(self.val), evaluation(self.test))


class Task:
    score = "acc"  # the validation metric that picks the best model; the run's result is its best value
    higher_is_better = True
    # a classification's class names (create_data may set them): per-class metrics and predictions
    classes: Sequence[str] | None = None

    def create_data(self, device: torch.device, seed: int) -> Data | Datasets:
        """A Data on `device` (`seed` fixes the training batches' order and augmentation), or a Datasets."""
        raise NotImplementedError

    def create_model(self) -> torch.nn.Module:
        """The network, an nn.Module (the trainer moves it to the device)."""
        raise NotImplementedError

    def create_loss(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """A function (outputs, targets) -> the batch's mean loss."""
        raise NotImplementedError

    def create_metrics(self) -> Metrics:
        """A fresh ingredients.metrics.Metrics; the trainer makes one per training window and per evaluation."""
        raise NotImplementedError

    def predict(self, model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """The outputs that evaluation scores; a task may override it, e.g. to average augmented views."""
        return model(inputs)

    def visualise_data(self, data: Data, add_artifact: AddArtifact) -> None:
        """Optional figures of the data (a Data), once training has started; `add_artifact(name, write)` attaches a
        file."""

    def visualise_results(self, best_metrics: dict[str, Any], add_artifact: AddArtifact) -> None:
        """Optional figures at the end; `best_metrics` are the validation metrics of the best model."""
