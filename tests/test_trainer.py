"""The trainer's loop in-process, with a real Sacred run: what a run prints, returns and stores."""
import json
import math
import os
import signal

import pytest
import torch
from test_fast_path import KeepArtifacts, load, run_task, states_equal

from ingredients.batches import EvalBatches, TrainBatches
from ingredients.metrics import RegressionMetrics
from ingredients.task import Data, Task


class CtrlCAt(TrainBatches):
    """Training batches that send this process SIGINT as they hand out the batch of step `step`, as Ctrl-C pressed
    during that step would."""

    def __init__(self, *args, step):
        super().__init__(*args)
        self.step = step

    def iterate(self, epoch, start_batch=0):
        for batch, pair in enumerate(super().iterate(epoch, start_batch), start_batch):
            if epoch * self.batches_per_epoch + batch + 1 == self.step:
                os.kill(os.getpid(), signal.SIGINT)
            yield pair


class Line(Task):
    """Fit y = 2x + 1 from 4 batches an epoch: a regression whose validation MAE is lower-is-better, as the signals
    task's; Ctrl-C is pressed during step `ctrl_c_at` if given."""

    score = "mae"
    higher_is_better = False

    def __init__(self, ctrl_c_at=None):
        self.ctrl_c_at = ctrl_c_at

    def create_data(self, device, seed):
        inputs = torch.randn(96, 1, generator=torch.Generator().manual_seed(0))
        targets = 2 * inputs[:, 0] + 1
        train = (TrainBatches(inputs[:64], targets[:64], 16, seed) if self.ctrl_c_at is None
                 else CtrlCAt(inputs[:64], targets[:64], 16, seed, step=self.ctrl_c_at))
        return Data(train, EvalBatches(inputs[64:80], targets[64:80], 16), EvalBatches(inputs[80:], targets[80:], 16))

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


def test_ctrl_c_stops_after_its_step_with_a_checkpoint_that_resumes_to_the_uninterrupted_run(capsys, tmp_path):
    _, full = run_task(Line(), 0.05)
    interrupted = KeepArtifacts()
    with pytest.raises(KeyboardInterrupt):  # Sacred records the run INTERRUPTED
        run_task(Line(ctrl_c_at=5), 0.05, artifacts=interrupted)
    assert "Stopped by SIGINT at step 5/12; saved checkpoint.pt, so 'tracker resume' can continue this run" in \
        capsys.readouterr().out
    checkpoint = interrupted.latest("checkpoint.pt")
    assert load(checkpoint, tmp_path)["step"] == 5  # mid-epoch and mid-window: neither logged nor validated
    (tmp_path / "step5.pt").write_bytes(checkpoint)

    _, resumed = run_task(Line(), 0.05, resume=str(tmp_path / "step5.pt"))

    for name in ("model_last.pt", "model_best.pt"):
        assert states_equal(load(resumed.latest(name), tmp_path), load(full.latest(name), tmp_path)), name
    untimed = [{key: value for key, value in json.loads(artifacts.latest("results.json")).items()
                if key != "examples_per_s"} for artifacts in (resumed, full)]
    assert untimed[0] == untimed[1]
