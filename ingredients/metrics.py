"""Metrics that the trainer accumulates over batches: sums stay on the device (reading them would synchronize a
GPU) until `compute()`. Every metrics object reports the mean `loss`; the trainer logs each float it computes
as `train.<name>`, `val.<name>` or `test.<name>`, and hands the others (a confusion matrix) to the task's figures."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np


class Metrics:
    """Sums of per-batch statistics; subclasses say which, and how they become metrics."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}

    def add(self, **values: torch.Tensor | float) -> None:
        for name, value in values.items():
            if torch.is_tensor(value) and value.is_floating_point():
                # float32 values add up exactly in float64, in any order: the sums of DDP's ranks equal a single
                # process's (ingredients.distributed)
                value = value.double()
            self.sums[name] = self.sums[name] + value if name in self.sums else value

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        """Add one batch: the model's outputs, the targets and the batch's mean loss."""
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:
        """The metrics of the batches added so far, as a dict with at least 'loss'."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sums as plain tensors on the CPU, for checkpoints (torch.load(weights_only=True) reads them)."""
        return {name: torch.as_tensor(value).detach().cpu() for name, value in self.sums.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], device: torch.device) -> None:
        self.sums = {name: value.to(device) for name, value in state.items()}


class ClassificationMetrics(Metrics):
    """Mean loss, accuracy and the confusion matrix (rows: true class, columns: predicted class)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        predictions = outputs.argmax(1)
        self.add(
            loss=loss.detach() * len(targets),
            count=len(targets),
            correct=(predictions == targets).sum(),
            confusion=torch.bincount(targets * self.num_classes + predictions, minlength=self.num_classes**2),
        )

    def compute(self) -> dict[str, Any]:
        count = max(1, int(self.sums["count"]))
        confusion = self.sums["confusion"].view(self.num_classes, self.num_classes).cpu()
        return {"loss": float(self.sums["loss"]) / count, "acc": int(self.sums["correct"]) / count,
                "confusion": confusion}


class RegressionMetrics(Metrics):
    """Mean loss and mean absolute error of scalar (or per-element) predictions."""

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        self.add(
            loss=loss.detach() * len(targets),
            count=len(targets),
            abs_error=(outputs.detach() - targets).abs().reshape(len(targets), -1).mean(1).sum(),
        )

    def compute(self) -> dict[str, Any]:
        count = max(1, int(self.sums["count"]))
        return {"loss": float(self.sums["loss"]) / count, "mae": float(self.sums["abs_error"]) / count}


def per_class_metrics(confusion: torch.Tensor | np.ndarray, names: Sequence[object] | None = None
                      ) -> dict[str, dict[str, float]]:
    """{class name: {"recall", "precision", "f1"}} of a confusion matrix (rows: true class, columns: predicted);
    a class's recall is the accuracy on its examples. 0 where a ratio has no examples (as scikit-learn's
    zero_division=0)."""
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    right = confusion.diag()
    recall = right / confusion.sum(1).clamp(min=1)
    precision = right / confusion.sum(0).clamp(min=1)
    f1 = torch.where(recall + precision > 0, 2 * recall * precision / (recall + precision).clamp(min=1e-300), 0.0)
    names = names or [str(label) for label in range(len(right))]
    return {str(name): {"recall": float(r), "precision": float(p), "f1": float(f)}
            for name, r, p, f in zip(names, recall, precision, f1)}
