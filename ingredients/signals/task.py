"""Frequency estimation as a trainer task: generated signals, a 1-D CNN, mean squared error, lower MAE is better."""
from __future__ import annotations

from typing import TYPE_CHECKING, cast

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt
import torch.nn as nn

from ingredients.metrics import RegressionMetrics
from ingredients.signals.data import load_splits
from ingredients.signals.model import build_model
from ingredients.task import Data, Task

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch

    from ingredients.batches import EvalBatches


class SignalTask(Task):
    score = "mae"  # the run's result is the best validation mean absolute error, in cycles per window
    higher_is_better = False

    def create_data(self, device: torch.device | str, seed: int) -> Data:
        return Data(*load_splits(device=str(device), seed=seed))

    def create_model(self) -> nn.Module:
        return build_model()

    def create_loss(self) -> nn.Module:
        return nn.MSELoss()

    def create_metrics(self) -> RegressionMetrics:
        return RegressionMetrics()

    def visualise_data(self, data: Data, add_artifact: Callable[[str, Callable[[Path], object]], object]) -> None:
        val = cast("EvalBatches", data.val)  # create_data makes in-memory batches
        signals, frequencies = val.inputs[:4].cpu(), val.targets[:4].cpu()

        def plot(path: Path) -> None:
            fig, axes = plt.subplots(4, 1, figsize=(6, 5), sharex=True)
            for ax, signal, frequency in zip(axes, signals, frequencies):
                ax.plot(signal[0].numpy(), linewidth=0.8)
                ax.set_title(f"frequency {frequency:.2f}", fontsize=8)
            fig.tight_layout()
            fig.savefig(path, dpi=80)
            plt.close(fig)

        add_artifact("signal_samples.png", plot)
