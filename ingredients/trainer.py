"""The `trainer` ingredient: the general training loop that any task (ingredients/task.py) reuses.

Train steps, metric windows, periodic validation, best-score checkpoints, a resumable checkpoint (model, optimizer,
schedule, RNG and data position), progress lines, figures and results.json. Metrics go to Sacred with
`_run.log_scalar`, files with `_run.add_artifact`; the terminal gets a progress bar and periodic `Iteration …`
lines. SIGINT and SIGTERM stop training at the next step boundary, after storing a checkpoint that `tracker resume`
continues from; a loss that becomes NaN or infinite fails the run (unless trainer.stop_on_nan=False).
"""
import json
import math
import mimetypes
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import torch
from sacred import Ingredient
from tqdm import tqdm

from ingredients.checkpoint import CHECKPOINT, load_checkpoint
from ingredients.checks import check_bool, check_choice, check_number, check_positive_int
from observers.errors import UserError
from observers.origin import RESUME_CHECKPOINT_ENV

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")

trainer_ingredient = Ingredient("trainer", base_dir=Path(__file__).resolve().parent.parent)


@trainer_ingredient.config
def config():
    optimizer = "sgd"  # 'sgd' (Nesterov momentum), 'adam' or 'adamw'; the learning rate is the top-level `lr`
    momentum = 0.9  # SGD momentum (ignored by Adam)
    weight_decay = 5e-4  # L2 penalty (decoupled for AdamW)
    schedule = "cosine"  # 'cosine' (decays the learning rate to 0 over the run) or 'constant'
    epochs = 30  # passes over the training split, used when `steps` is None
    steps = None  # step budget; overrides `epochs` when set
    val_every = 500  # validate every this many steps (and at the end)
    log_every = 50  # log training metrics every this many steps (and at step 1)
    print_every = 200  # print the `Iteration …` lines about every this many steps
    checkpoint_every = 1000  # store a resumable checkpoint every this many steps
    device = "auto"  # 'auto' (CUDA when present), 'cpu' or 'cuda'
    deterministic = False  # deterministic kernels: bit-identical reruns on the same machine, slower on GPU
    progress = True  # show a progress bar on the terminal (never stored in the run's captured output)
    stop_on_nan = True  # fail the run when the training loss becomes NaN or infinite


@trainer_ingredient.config_hook
def validate(config, command_name, logger):
    cfg = config["trainer"]
    check_choice("trainer.optimizer", cfg["optimizer"], OPTIMIZERS)
    check_choice("trainer.schedule", cfg["schedule"], SCHEDULES)
    check_choice("trainer.device", cfg["device"], DEVICES)
    for key in ("epochs", "val_every", "log_every", "print_every", "checkpoint_every"):
        check_positive_int(f"trainer.{key}", cfg[key])
    if cfg["steps"] is not None:
        check_positive_int("trainer.steps", cfg["steps"])
    for key in ("momentum", "weight_decay"):
        check_number(f"trainer.{key}", cfg[key], low=0)
    for key in ("deterministic", "progress", "stop_on_nan"):
        check_bool(f"trainer.{key}", cfg[key])
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device='cuda' but no CUDA device is available; use with trainer.device=auto")
    return {}


def resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_determinism(deterministic):
    """Deterministic kernels make reruns bit-identical; otherwise let cuDNN pick the fastest ones."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports torch._inductor: ~1 s
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic


@trainer_ingredient.capture
def make_optimizer(parameters, lr, optimizer, momentum, weight_decay):
    if optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    if optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


@trainer_ingredient.capture
def make_schedule(optimizer, total_steps, schedule):
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def open_terminal():
    """The controlling terminal, or None: the bar is drawn there so the run's captured output holds only lines."""
    try:
        return open("/dev/tty", "w")
    except OSError:
        return None


def format_duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600:02d}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


@torch.no_grad()
def evaluate(model, batches, loss_fn, metrics):
    """`metrics` (a fresh Metrics) filled with the model's outputs on every batch; returns metrics.compute()."""
    model.eval()
    for inputs, targets in batches:
        outputs = model(inputs)
        metrics.update(outputs, targets, loss_fn(outputs, targets))
    model.train()
    return metrics.compute()


def floats(metrics):
    """The metrics that are numbers (logged), without the others (e.g. a confusion matrix, kept for figures)."""
    return {name: value for name, value in metrics.items() if isinstance(value, float)}


class Trainer:
    """Runs the training loop of one Sacred run on a task and reports everything to the run."""

    def __init__(self, run, task, lr, seed, epochs, steps, val_every, log_every, print_every, checkpoint_every,
                 device, progress, stop_on_nan):
        self.run, self.task = run, task
        self.device = device
        self.progress, self.stop_on_nan = progress, stop_on_nan
        self.val_every, self.log_every = val_every, log_every
        self.print_every, self.checkpoint_every = print_every, checkpoint_every
        self.data = task.create_data(device=device, seed=seed)
        self.batches = self.data.train
        self.model = task.create_model().to(device)
        self.loss_fn = task.create_loss()
        self.optimizer = make_optimizer(self.model.parameters(), lr)
        self.total_steps = steps or epochs * self.batches.batches_per_epoch
        self.scheduler = make_schedule(self.optimizer, self.total_steps)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_score = float("-inf") if task.higher_is_better else float("inf")
        self.best_step, self.best_state, self.best_metrics = 0, None, None
        self.train_seconds, self.examples_seen = 0.0, 0
        self.workdir = Path(tempfile.mkdtemp(prefix="tracker-run-"))

    # ---- the loop -------------------------------------------------------------------------
    def fit(self, window=None):
        """Train for the step budget; return the results written to results.json.

        `window` holds the training metrics accumulated since the last report (restored when resuming).
        """
        started, first_step = time.perf_counter(), self.step
        self.task.visualise_data(self.data, self.add_artifact)
        window = window or self.new_window()
        next_print = (self.step // self.print_every + 1) * self.print_every
        terminal = open_terminal() if self.progress else None
        with tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", file=terminal,
                  disable=terminal is None, dynamic_ncols=True, mininterval=0.5) as bar, StopRequests() as stop:
            while self.step < self.total_steps:
                fetch_started = time.perf_counter()
                for inputs, targets in self.batches.iterate(self.epoch, self.batch_in_epoch):
                    fetched = time.perf_counter()
                    lr = self.scheduler.get_last_lr()[0]
                    self.train_step(inputs, targets, window["metrics"])
                    self.step += 1
                    self.batch_in_epoch += 1
                    window["steps"] += 1
                    window["examples"] += len(targets)
                    window["data_s"] += fetched - fetch_started
                    bar.update(1)
                    if self.step == 1 or self.step % self.log_every == 0 or self.step == self.total_steps:
                        stats = self.log_window(window, lr)
                        if self.step >= next_print or self.step == self.total_steps:
                            elapsed = time.perf_counter() - started
                            bar.write(self.progress_lines(stats, elapsed, self.step - first_step))
                            next_print = (self.step // self.print_every + 1) * self.print_every
                        self.check_finite(stats["train.loss"])
                        window = self.new_window()
                    paused = time.perf_counter()
                    if self.step % self.val_every == 0 or self.step == self.total_steps:
                        self.validate(bar.write)
                    stopping = stop.signal_name is not None and self.step < self.total_steps
                    if self.step % self.checkpoint_every == 0 or stopping:
                        self.save_checkpoint(window)
                    window["started"] += time.perf_counter() - paused  # validation and checkpoints are not training
                    if stopping:
                        bar.write(f"Stopped by {stop.signal_name} at step {self.step}/{self.total_steps}; "
                                  f"saved {CHECKPOINT}, so 'tracker resume' can continue this run")
                        raise KeyboardInterrupt  # Sacred records the run as INTERRUPTED
                    if self.step >= self.total_steps:
                        break
                    fetch_started = time.perf_counter()
                else:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        if terminal is not None:
            terminal.close()
        return self.finish()

    def train_step(self, inputs, targets, metrics):
        outputs = self.model(inputs)
        loss = self.loss_fn(outputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        metrics.update(outputs.detach(), targets, loss)  # kept on the device: no GPU synchronization per step

    def check_finite(self, loss):
        if self.stop_on_nan and not math.isfinite(loss):
            raise UserError(f"loss is {loss} at step {self.step}; try a lower lr "
                            f"(or with trainer.stop_on_nan=False to keep training)")

    # ---- reporting --------------------------------------------------------------------------
    def new_window(self):
        return {"metrics": self.task.create_metrics(), "steps": 0, "examples": 0, "data_s": 0.0,
                "started": time.perf_counter()}

    def log_window(self, window, lr):
        """Log the training metrics of the steps since the last report."""
        steps = window["steps"]
        seconds = time.perf_counter() - window["started"]
        self.train_seconds += seconds
        self.examples_seen += window["examples"]
        stats = {f"train.{name}": value for name, value in floats(window["metrics"].compute()).items()}
        stats.update({
            "lr": lr,
            "examples_per_s": window["examples"] / seconds,
            "time.data_ms": 1000 * window["data_s"] / steps,
            "time.step_ms": 1000 * (seconds - window["data_s"]) / steps,
        })
        for name, value in stats.items():
            self.run.log_scalar(name, value, self.step)
        return stats

    def progress_lines(self, stats, elapsed, steps_done):
        remaining = elapsed / max(1, steps_done) * (self.total_steps - self.step)
        width = len(str(self.total_steps))
        return (
            f"Iteration {self.step:>{width}}/{self.total_steps} | examples/s: {stats['examples_per_s']:.1f} | "
            f"loss: {stats['train.loss']:.4f} | time elapsed: {format_duration(elapsed)} | "
            f"time left: {format_duration(remaining)}\n"
            f"Fetch data time: {stats['time.data_ms']:.0f}ms, model update time: {stats['time.step_ms']:.0f}ms"
        )

    def is_better(self, score):
        return score > self.best_score if self.task.higher_is_better else score < self.best_score

    def validate(self, write):
        metrics = evaluate(self.model, self.data.val, self.loss_fn, self.task.create_metrics())
        for name, value in floats(metrics).items():
            self.run.log_scalar(f"val.{name}", value, self.step)
        score = metrics[self.task.score]
        lines = [f"Validation at step {self.step}/{self.total_steps} | "
                 + " | ".join(f"val {name}: {value:.4f}" for name, value in floats(metrics).items())]
        if self.is_better(score):
            lines.append(f"New best score: {self.best_score:.4f} -> {score:.4f}")
            self.best_score, self.best_step, self.best_metrics = score, self.step, metrics
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            lines.append(f"Best score so far: {self.best_score:.4f} (step {self.best_step})")
        write("\n".join(lines))

    # ---- files ------------------------------------------------------------------------------
    def add_artifact(self, name, write):
        """Write a file with `write(path)` into the run's folder and attach it to the run."""
        path = self.workdir / name
        write(path)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.run.add_artifact(str(path), name=name, content_type=content_type)

    def save_checkpoint(self, window):
        """A resumable checkpoint: plain tensors and numbers, loadable with torch.load(weights_only=True)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "best_model": self.best_state,
            "best_metrics": self.best_metrics,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "data_rng": self.batches.generator.get_state(),
            "window": {"metrics": window["metrics"].state_dict(), "steps": window["steps"],
                       "examples": window["examples"]},
            "train_seconds": self.train_seconds,
            "examples_seen": self.examples_seen,
        }
        self.add_artifact(CHECKPOINT, lambda path: torch.save(state, path))

    def restore(self, state):
        """Continue from a `save_checkpoint` state; return the metrics window to go on with."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best_score, self.best_step = state["best_score"], state["best_step"]
        self.best_state, self.best_metrics = state["best_model"], state["best_metrics"]
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.batches.generator.set_state(state["data_rng"])
        self.train_seconds, self.examples_seen = state["train_seconds"], state["examples_seen"]
        window = self.new_window()
        window["metrics"].load_state_dict(state["window"]["metrics"], self.device)
        window.update(steps=state["window"]["steps"], examples=state["window"]["examples"])
        return window

    def finish(self):
        """Store the last and best models, the figures and results.json; return the results."""
        self.add_artifact("model_last.pt", lambda path: torch.save(self.model.state_dict(), path))
        self.add_artifact("model_best.pt", lambda path: torch.save(self.best_state, path))
        self.model.load_state_dict(self.best_state)
        test = floats(evaluate(self.model, self.data.test, self.loss_fn, self.task.create_metrics()))
        self.run.log_scalar(f"test.{self.task.score}", test[self.task.score], self.step)
        self.task.visualise_results(self.best_metrics, self.add_artifact)
        score = self.task.score
        results = {
            f"best_val_{score}": self.best_score,
            "best_step": self.best_step,
            **{f"test_{name}_of_best": value for name, value in test.items()},
            "steps": self.step,
            "examples_per_s": self.examples_seen / max(self.train_seconds, 1e-9),
        }
        self.add_artifact("results.json", lambda path: path.write_text(json.dumps(results, indent=2)))
        print(f"Best val {score} {self.best_score:.4f} at step {self.best_step}; test {score} of that model "
              f"{test[score]:.4f}; {results['examples_per_s']:.1f} examples/s")
        return results


@trainer_ingredient.capture
def train(task, lr, _run, _seed, epochs, steps, val_every, log_every, print_every, checkpoint_every, device,
          deterministic, progress, stop_on_nan):
    """Train `task` (an ingredients.task.Task) with learning rate `lr`; return the results (also in results.json).

    A run started by `tracker resume` continues from the checkpoint it names (observers.origin).
    """
    set_determinism(deterministic)
    trainer = Trainer(_run, task, lr, _seed, epochs, steps, val_every, log_every, print_every, checkpoint_every,
                      resolve_device(device), progress, stop_on_nan)
    resume_from = os.environ.get(RESUME_CHECKPOINT_ENV)
    try:
        if resume_from is None:
            return trainer.fit()
        state = load_checkpoint(resume_from)
        print(f"Resuming after step {state['step']}/{trainer.total_steps}")
        return trainer.fit(trainer.restore(state))
    finally:  # the observers copied or uploaded each artifact when it was added
        shutil.rmtree(trainer.workdir, ignore_errors=True)


class StopRequests:
    """While active, SIGINT and SIGTERM only note the request, so the loop can stop at a step boundary."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.signal_name = None
        self.previous = {number: signal.signal(number, self.request) for number in self.SIGNALS}
        return self

    def request(self, number, frame):
        self.signal_name = signal.Signals(number).name

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
