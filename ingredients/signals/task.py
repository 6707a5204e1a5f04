"""Frequency estimation as a trainer task: generated signals, a 1-D CNN, mean squared error, lower MAE is better."""
import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt
import torch.nn as nn

from ingredients.metrics import RegressionMetrics
from ingredients.signals.data import load_splits
from ingredients.signals.model import build_model
from ingredients.task import Data, Task


class SignalTask(Task):
    score = "mae"  # the run's result is the best validation mean absolute error, in cycles per window
    higher_is_better = False

    def create_data(self, device, seed):
        return Data(*load_splits(device=str(device), seed=seed))

    def create_model(self):
        return build_model()

    def create_loss(self):
        return nn.MSELoss()

    def create_metrics(self):
        return RegressionMetrics()

    def visualise_data(self, data, add_artifact):
        signals, frequencies = data.val.inputs[:4].cpu(), data.val.targets[:4].cpu()

        def plot(path):
            fig, axes = plt.subplots(4, 1, figsize=(6, 5), sharex=True)
            for ax, signal, frequency in zip(axes, signals, frequencies):
                ax.plot(signal[0].numpy(), linewidth=0.8)
                ax.set_title(f"frequency {frequency:.2f}", fontsize=8)
            fig.tight_layout()
            fig.savefig(path, dpi=80)
            plt.close(fig)

        add_artifact("signal_samples.png", plot)
