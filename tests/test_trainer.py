"""The trainer's loop in-process, with a real Sacred run: what a run prints, returns and stores."""
import json
import math

import torch
from test_fast_path import load, run_task

from ingredients.batches import EvalBatches, TrainBatches
from ingredients.metrics import RegressionMetrics
from ingredients.task import Data, Task


class Line(Task):
    """Fit y = 2x + 1: a regression whose validation MAE is lower-is-better, as the signals task's."""

    score = "mae"
    higher_is_better = False

    def create_data(self, device, seed):
        inputs = torch.randn(96, 1, generator=torch.Generator().manual_seed(0))
        targets = 2 * inputs[:, 0] + 1
        return Data(TrainBatches(inputs[:64], targets[:64], 16, seed), EvalBatches(inputs[64:80], targets[64:80], 16),
                    EvalBatches(inputs[80:], targets[80:], 16))

    def create_model(self):
        return torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Flatten(0))

    def create_loss(self):
        return torch.nn.MSELoss()

    def create_metrics(self):
        return RegressionMetrics()


def test_a_nan_loss_with_stop_on_nan_off_completes_with_the_last_model_and_a_nan_result(capsys, tmp_path):
    run, artifacts = run_task(Line(), 1e30, stop_on_nan=False)  # the weights overflow at once: every loss is NaN

    assert run.status == "COMPLETED"
    printed = capsys.readouterr().out
    assert ("Warning: val mae was nan at every validation; model_best.pt and the test metrics are of the last model "
            "(step 12)") in printed, printed
    results = json.loads(artifacts.latest("results.json"))
    assert math.isnan(results["best_val_mae"]) and results["best_step"] == 12 and results["steps"] == 12
    assert math.isnan(run.result["best_val_mae"])  # the signals experiment's result
    best, last = (load(artifacts.latest(name), tmp_path) for name in ("model_best.pt", "model_last.pt"))
    assert best.keys() == last.keys() and all(torch.allclose(best[key], last[key], equal_nan=True) for key in best)
