"""The `trainer` ingredient: the general training loop that any task (ingredients/task.py) reuses.

Train steps on in-memory batches or on DataLoaders over a task's Datasets (ingredients/task.py), the data's
fingerprint in the run's info.data, metric windows, periodic validation, best-score checkpoints, a resumable
checkpoint (model, optimizer, RNG and data position; the schedule is a function of the step), progress lines, figures
and results.json. Metrics go to Sacred with `_run.log_scalar`, files with `_run.add_artifact`; the terminal gets a
progress bar and periodic `Iteration …` lines. SIGINT and SIGTERM stop training at the next step boundary (under DDP
at the next logged step, where the ranks agree: Trainer.stop_request), after storing a checkpoint that `tracker
resume` continues from. A loss that becomes NaN or infinite fails the run (unless trainer.stop_on_nan=False; then a
run whose every validation score is NaN keeps its last model as the best, and its result is NaN).
Under torchrun it trains with DistributedDataParallel (ingredients/distributed.py, docs/ddp.md): rank 0 records the
run, each rank trains on its share of every batch, and the logged metrics are those of the global batch.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import mimetypes
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sacred import Ingredient
from tqdm import tqdm

from ingredients.batches import check_shareable
from ingredients.checkpoint import CHECKPOINT, load_checkpoint
from ingredients.checks import check_bool, check_choice, check_number, check_positive_int, is_int
from ingredients.distributed import Distributed
from ingredients.fingerprint import fingerprint
from ingredients.metrics import Metrics, per_class_metrics
from ingredients.pruning import report_score
from ingredients.rebuild import hand_over_task
from ingredients.sgd import SGD
from ingredients.task import Datasets
from runstore.errors import UserError
from observers.origin import resume_checkpoint
from observers.predictions import save_predictions
from observers.process_rank import world_size

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from types import FrameType
    from typing import TextIO

    import numpy as np
    from sacred.run import Run

    from ingredients.batches import Batch
    from ingredients.task import Task

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant", "triangle")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# The 'triangle' schedule, as airbench94's: the learning rate's factor at the start, after warm-up and at the end.
TRIANGLE_FACTORS = (0.2, 1.0, 0.07)

trainer_ingredient = Ingredient("trainer", base_dir=Path(__file__).resolve().parent.parent)


@trainer_ingredient.config
def config() -> None:
    optimizer = "sgd"  # 'sgd' (Nesterov momentum), 'adam' or 'adamw'; the learning rate is the top-level `lr`
    momentum = 0.9  # SGD momentum (ignored by Adam)
    weight_decay = 5e-4  # L2 penalty (decoupled for AdamW)
    schedule = "cosine"  # 'cosine' (decays the learning rate to 0), 'constant' or 'triangle' (warm-up, linear decay)
    warmup = 0.23  # share of the steps over which 'triangle' raises the learning rate from 0.2x to 1x (then to 0.07x)
    epochs = 30  # passes over the training split, used when `steps` is None
    steps = None  # step budget; overrides `epochs` when set
    val_every = 500  # validate every this many steps (and at the end)
    log_every = 50  # log training metrics every this many steps (and at step 1); under DDP Ctrl-C stops at such a step
    print_every = 200  # print the `Iteration …` lines about every this many steps
    checkpoint_every = 1000  # store a resumable checkpoint every this many steps
    device = "auto"  # 'auto' (CUDA when present), 'cpu' or 'cuda'
    deterministic = False  # deterministic kernels: bit-identical reruns on the same machine, slower on GPU
    progress = True  # show a progress bar on the terminal (never stored in the run's captured output)
    stop_on_nan = True  # fail the run when the training loss becomes NaN or infinite
    ema_decay = None  # decay of a weight average updated every ema_every steps, used to evaluate and save (None: off)
    ema_every = 5  # steps between updates of the weight average
    lookahead = False  # after each update of the average, training continues from it (airbench's lookahead)
    precision = "fp32"  # 'fp32', 'bf16' (autocast, CPU or CUDA) or 'fp16' (autocast with loss scaling, CUDA only)
    channels_last = False  # channels-last memory format for 4-D inputs and the model (faster convolutions, CUDA, CPU)
    compile = False  # torch.compile the model (the first steps then include compilation)
    save_predictions = True  # store the best model's per-example predictions of val and test (predictions.*.npz)
    accumulate = 1  # micro-batches per batch (a rank's share) whose gradients add up to one step's (docs/ddp.md)


@dataclass(frozen=True)
class TrainerConfig:
    """The trainer ingredient's config, typed; `config` above says what each option means (print_config shows it).

    An option is a line in `config` and a field here; a TrainerConfig holds only valid values.
    """
    optimizer: str
    momentum: float
    weight_decay: float
    schedule: str
    warmup: float
    epochs: int
    steps: int | None
    val_every: int
    log_every: int
    print_every: int
    checkpoint_every: int
    device: str
    deterministic: bool
    progress: bool
    stop_on_nan: bool
    ema_decay: float | None
    ema_every: int
    lookahead: bool
    precision: str
    channels_last: bool
    compile: bool
    save_predictions: bool
    accumulate: int

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> TrainerConfig:
        """The TrainerConfig of the ingredient's config `values`, without its keys that are no option: a config hook
        sees the keys given on the command line before Sacred refuses the unknown ones."""
        return cls(**{option.name: values[option.name] for option in fields(cls)})

    def __post_init__(self) -> None:
        check_choice("trainer.optimizer", self.optimizer, OPTIMIZERS)
        check_choice("trainer.schedule", self.schedule, SCHEDULES)
        check_choice("trainer.device", self.device, DEVICES)
        check_choice("trainer.precision", self.precision, PRECISIONS)
        for key in ("epochs", "val_every", "log_every", "print_every", "checkpoint_every", "ema_every", "accumulate"):
            check_positive_int(f"trainer.{key}", getattr(self, key))
        if self.steps is not None:
            check_positive_int("trainer.steps", self.steps)
        for key in ("momentum", "weight_decay"):
            check_number(f"trainer.{key}", getattr(self, key), low=0)
        check_number("trainer.warmup", self.warmup, low=0, high=1, example=0.23)
        if self.ema_decay is not None:
            check_number("trainer.ema_decay", self.ema_decay, low=0, high=1, example=0.95)
        for key in ("deterministic", "progress", "stop_on_nan", "lookahead", "channels_last", "compile",
                    "save_predictions"):
            check_bool(f"trainer.{key}", getattr(self, key))
        if self.lookahead and self.ema_decay is None:
            raise UserError("trainer.lookahead=True needs a weight average; set trainer.ema_decay too, e.g. 0.95")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise UserError("trainer.device='cuda' but no CUDA device is available; use with trainer.device=auto")
        if self.precision == "fp16" and resolve_device(self.device).type != "cuda":
            raise UserError("trainer.precision='fp16' needs a CUDA device; use with trainer.precision=bf16 on the CPU")


@trainer_ingredient.config_hook
def validate(config: Mapping[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    """The trainer's options are checked with the rest of the config, so a bad value stops the run before it is
    recorded."""
    trainer = TrainerConfig.of(config["trainer"])
    batch_size = config.get("data", {}).get("batch_size")
    if is_int(batch_size) and batch_size > 0:  # checked before the run starts; the batches check it again
        check_shareable(batch_size, world_size(), trainer.accumulate)
    return {}


def validate_lr(config: Mapping[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    """The top-level `lr` that the experiment passes to train(), checked as the trainer's options are. A config hook
    of the experiment (ingredients.experiment registers it): Sacred sets `lr` after the ingredients' hooks have run."""
    check_number("lr", config["lr"], low=0, low_inclusive=False, example=0.01)
    return {}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_determinism(deterministic: bool) -> None:
    """Deterministic kernels make reruns bit-identical; otherwise let cuDNN pick the fastest ones."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports torch._inductor: ~1 s
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic


def make_optimizer(parameters: Iterable[torch.Tensor], lr: float, config: TrainerConfig) -> SGD | torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=config.weight_decay)


def make_schedule(total_steps: int, config: TrainerConfig) -> Callable[[int], float]:
    """The learning rate's factor at each step (0 to total_steps - 1), a function of the step alone, so a resumed
    run needs no schedule state."""
    if config.schedule == "cosine":
        return lambda step: (1 + math.cos(math.pi * step / total_steps)) / 2
    if config.schedule == "triangle":
        return lambda step: triangle(step, total_steps, config.warmup)
    return lambda step: 1.0


def triangle(step: int, total_steps: int, warmup: float) -> float:
    """Linear warm-up over the first `warmup` share of the steps, then linear decay (TRIANGLE_FACTORS)."""
    start, peak, end = TRIANGLE_FACTORS
    top = warmup * total_steps
    if step < top:
        return start + (peak - start) * step / top
    return peak + (end - peak) * (step - top) / max(1e-9, total_steps - top)


def micro_batches(inputs: torch.Tensor, targets: torch.Tensor, parts: int) -> Iterable[Batch]:
    """(inputs, targets) split into `parts` equal, consecutive micro-batches (trainer.accumulate)."""
    if parts == 1:
        return [(inputs, targets)]
    return zip(inputs.chunk(parts), targets.chunk(parts))


def open_terminal() -> TextIO | None:
    """The controlling terminal, or None: the bar is drawn there so the run's captured output holds only lines."""
    try:
        return open("/dev/tty", "w")
    except OSError:
        return None


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable[Batch],
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], metrics: Metrics,
             predict: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
             prepare: Callable[[torch.Tensor], torch.Tensor],
             autocast: Callable[[], contextlib.AbstractContextManager[Any]],
             add_sums: Callable[[Metrics], None] | None = None, kept: list[Batch] | None = None) -> dict[str, Any]:
    """`metrics` (a fresh Metrics) filled with the model's outputs on every batch; returns metrics.compute().

    `predict(model, inputs)` gives the outputs (Task.predict), `prepare(inputs)` sets the inputs' memory format
    and `autocast()` the precision; `add_sums(metrics)` adds the other ranks' sums (Distributed.add_sums); `kept`, a
    list, gets each batch's (outputs, targets) on the CPU.
    """
    model.eval()
    for inputs, targets in batches:
        with autocast():
            outputs = predict(model, prepare(inputs))
            loss = loss_fn(outputs, targets)
        metrics.update(outputs, targets, loss)
        if kept is not None:
            kept.append((outputs.float().cpu(), targets.cpu()))
    model.train()
    if add_sums is not None:
        add_sums(metrics)
    return metrics.compute()


def floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are numbers (logged), without the others (e.g. a confusion matrix, kept for figures)."""
    return {name: value for name, value in metrics.items() if isinstance(value, float)}


class Trainer:
    """Runs the training loop of one Sacred run on a task and reports everything to the run."""

    best_state: dict[str, torch.Tensor] | None  # the best model's weights (None until the first validation)
    best_metrics: dict[str, Any] | None  # its validation metrics

    def __init__(self, run: Run, task: Task, lr: float, seed: int, config: TrainerConfig,
                 distributed: Distributed | None = None) -> None:
        """`config`: the TrainerConfig; `lr` the learning rate before the schedule; `seed` the run's; `distributed`
        the processes training together (ingredients.distributed; default: from the environment)."""
        self.run, self.task, self.config = run, task, config
        self.distributed = distributed or Distributed(resolve_device(config.device))
        self.device = device = self.distributed.device
        data = task.create_data(device=device, seed=seed)
        if self.distributed.is_main:
            run.info.update(data=fingerprint(data), world_size=self.distributed.world_size,
                            torch_threads=torch.get_num_threads())
        self.data = data.batches(device, seed) if isinstance(data, Datasets) else data
        check_shareable(self.data.train.batch_size, self.distributed.world_size, config.accumulate)
        self.distributed.shard(self.data)
        self.batches = self.data.train
        self.model = task.create_model().to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # The weight average, which evaluation, saved models and checkpoints use; without one, the model itself.
        self.averaged = copy.deepcopy(self.model) if config.ema_decay is not None else self.model
        # DDP averages the gradients; evaluation, whose shares of a split differ by a batch, uses the module itself.
        self.training = training = self.distributed.wrap(self.model)
        self.forward = torch.compile(training) if config.compile else training
        self.eval_forward = self.forward
        if training is not self.model:
            self.eval_forward = torch.compile(self.model) if config.compile else self.model
        if self.averaged is not self.model:
            self.eval_forward = torch.compile(self.averaged) if config.compile else self.averaged
        self.autocast_dtype = PRECISIONS[config.precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
        self.loss_fn = task.create_loss()
        self.optimizer = make_optimizer(self.model.parameters(), lr, config)
        self.total_steps = config.steps or config.epochs * self.batches.batches_per_epoch
        self.lr, self.lr_factor = lr, make_schedule(self.total_steps, config)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_score = float("-inf") if task.higher_is_better else float("inf")
        self.best_step, self.best_state, self.best_metrics = 0, None, None
        # the best validation's (outputs, targets) batches, for its predictions
        self.best_val_kept: list[Batch] | None = None
        self.train_seconds, self.examples_seen = 0.0, 0
        self.workdir = Path(tempfile.mkdtemp(prefix="tracker-run-"))

    # ---- the loop -------------------------------------------------------------------------
    def fit(self, window: Window | None = None) -> dict[str, Any]:
        """Train for the step budget; return the results written to results.json.

        `window` holds the training metrics accumulated since the last report (restored when resuming).
        """
        self.task.visualise_data(self.data, self.add_artifact)
        window = window or self.new_window()
        stop = None
        with Progress(self.step, self.total_steps, self.config) as progress, StopRequests() as signals:
            for inputs, targets, waited_s in self.remaining_batches():
                lr = self.lr * self.lr_factor(self.step)
                self.train_step(inputs, targets, window.metrics, lr)
                self.count_step(window, len(targets), waited_s)
                progress.update()
                loss = None
                if self.is_log_step():
                    loss = self.report(window, lr, progress)
                    window = self.new_window()
                with paused(window):  # validation and checkpoints are not training
                    score = self.validate(progress.write) if self.is_val_step() else None
                    stop = self.stop_request(signals, loss, score)
                    self.save_checkpoint_if_due(window, stop)
                if stop is not None:
                    progress.write(stop.message)
                    break
        if stop is not None and stop.interrupts:
            self.distributed.leave_together()
            raise KeyboardInterrupt  # Sacred records the run as INTERRUPTED
        return self.finish()

    def remaining_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """The training batches from the current position to the step budget, epoch after epoch, each with the
        seconds spent waiting for it."""
        while self.step < self.total_steps:
            waiting = time.perf_counter()
            for inputs, targets in self.batches.iterate(self.epoch, self.batch_in_epoch):
                yield inputs, targets, time.perf_counter() - waiting
                if self.step >= self.total_steps:
                    return
                waiting = time.perf_counter()
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def count_step(self, window: Window, examples: int, waited_s: float) -> None:
        """Move the position on by the batch just trained, and count it in the metrics window."""
        self.step += 1
        self.batch_in_epoch += 1
        window.steps += 1
        window.examples += examples
        window.data_s += waited_s

    def is_log_step(self) -> bool:
        return self.step == 1 or self.step % self.config.log_every == 0 or self.step == self.total_steps

    def is_val_step(self) -> bool:
        return self.step % self.config.val_every == 0 or self.step == self.total_steps

    def stop_request(self, signals: StopRequests, loss: float | None, score: float | None) -> Stop | None:
        """Whether training ends after this step, as a Stop, or None: every request to stop is checked here.

        `loss` is the training loss just logged (None between logged steps), `score` the validation score (None
        between validations) and `signals` the StopRequests. A NaN or infinite loss fails the run at once
        (trainer.stop_on_nan); every rank logged the same loss. SIGINT or SIGTERM to any rank interrupts the run, and
        a sweep's Optuna study may prune it after a validation (rank 0 asks). One process acts on a signal after the
        step it arrived in. Several processes agree on stopping with a gloo all-reduce only after a logged step
        (every trainer.log_every steps) or a validation, so a signal is acted on up to log_every steps later, after
        the same step on every rank.
        """
        if loss is not None and self.config.stop_on_nan and not math.isfinite(loss):
            self.distributed.leave_together()
            raise UserError(f"loss is {loss} at step {self.step}; try a lower lr "
                            f"(or with trainer.stop_on_nan=False to keep training)")
        if self.distributed.world_size > 1 and loss is None and score is None:
            return None
        pruned = (score is not None and self.step < self.total_steps and self.distributed.is_main
                  and report_score(self.run, self.step, score))
        signalled, pruned = self.distributed.any_rank(signals.signal_name is not None, pruned)
        if signalled and self.step < self.total_steps:
            return Stop(f"Stopped by {signals.signal_name or 'a signal to another rank'} at step {self.step}/"
                        f"{self.total_steps}; saved {CHECKPOINT}, so 'tracker resume' can continue this run",
                        interrupts=True)
        if pruned:
            return Stop(f"Pruned by the sweep's Optuna study at step {self.step}/{self.total_steps}", interrupts=False)
        return None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.config.channels_last and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor, metrics: Metrics, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        parts = self.config.accumulate
        for part, (part_inputs, part_targets) in enumerate(micro_batches(inputs, targets, parts)):
            with self.gradient_sync(last=part == parts - 1):
                with self.autocast():
                    outputs = self.forward(self.prepare(part_inputs))
                    loss = self.loss_fn(outputs, part_targets)
                # the mean of the parts' mean losses; loss scaling only with fp16, otherwise (loss / parts).backward()
                self.scaler.scale(loss / parts).backward()
            metrics.update(outputs.detach(), part_targets, loss)  # kept on the device: no GPU synchronization
        self.scaler.step(self.optimizer)  # type: ignore[arg-type]  # it needs only SGD's param_groups and step
        self.scaler.update()
        if self.config.ema_decay is not None and (self.step + 1) % self.config.ema_every == 0:
            self.update_average()

    def gradient_sync(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP averages the gradients over the ranks at the backward of a step's last micro-batch only."""
        if last or self.training is self.model:
            return contextlib.nullcontext()
        # type: ignore: self.training is then a DistributedDataParallel (Module's __getattr__ types no_sync as a Tensor)
        return self.training.no_sync()  # type: ignore[operator]

    @torch.no_grad()
    def update_average(self) -> None:
        """Move the weight average towards the current weights (buffers such as BatchNorm statistics too)."""
        current = self.model.state_dict()
        for name, average in self.averaged.state_dict().items():
            if average.is_floating_point():
                average.lerp_(current[name], 1 - self.config.ema_decay)  # type: ignore[operator]  # set when called
            else:
                average.copy_(current[name])
        if self.config.lookahead:
            self.model.load_state_dict(self.averaged.state_dict())

    def evaluate(self, batches: Iterable[Batch], kept: list[Batch] | None = None) -> dict[str, Any]:
        self.distributed.broadcast_buffers(self.averaged)
        # type: ignore: torch.compile of a Module is a Module (OptimizedModule), though its type hints say Callable
        return evaluate(self.eval_forward, batches,  # type: ignore[arg-type]
                        self.loss_fn, self.task.create_metrics(), self.task.predict,
                        self.prepare, self.autocast, self.distributed.add_sums, kept)

    # ---- reporting --------------------------------------------------------------------------
    def new_window(self) -> Window:
        return Window(self.task.create_metrics())

    def log_window(self, window: Window, lr: float) -> dict[str, float]:
        """Log the training metrics of the steps since the last report."""
        steps = window.steps
        seconds = time.perf_counter() - window.started
        self.train_seconds += seconds
        self.distributed.add_sums(window.metrics)  # the global batch's metrics
        examples = self.distributed.add(window.examples)
        self.examples_seen += examples
        stats = {f"train.{name}": value for name, value in floats(window.metrics.compute()).items()}
        stats.update({
            "lr": lr,
            "examples_per_s": examples / seconds,
            "time.data_ms": 1000 * window.data_s / steps,
            "time.step_ms": 1000 * (seconds - window.data_s) / steps,
        })
        for name, value in stats.items():
            self.run.log_scalar(name, value, self.step)
        return stats

    def report(self, window: Window, lr: float, progress: Progress) -> float:
        """Log the window's training metrics, and print them when the `Iteration …` lines are due; return the
        training loss."""
        stats = self.log_window(window, lr)
        if progress.lines_due(self.step):
            progress.write(self.progress_lines(stats, progress.elapsed(), self.step - progress.first_step))
        return stats["train.loss"]

    def progress_lines(self, stats: Mapping[str, float], elapsed: float, steps_done: int) -> str:
        remaining = elapsed / max(1, steps_done) * (self.total_steps - self.step)
        width = len(str(self.total_steps))
        return (
            f"Iteration {self.step:>{width}}/{self.total_steps} | examples/s: {stats['examples_per_s']:.1f} | "
            f"loss: {stats['train.loss']:.4f} | time elapsed: {format_duration(elapsed)} | "
            f"time left: {format_duration(remaining)}\n"
            f"Fetch data time: {stats['time.data_ms']:.0f}ms, model update time: {stats['time.step_ms']:.0f}ms"
        )

    def is_better(self, score: float) -> bool:
        """Whether `score` makes the current model the best. The first score does. A NaN best is no score, so any
        later score replaces it: a run whose every score is NaN (trainer.stop_on_nan=False) keeps its last model."""
        if self.best_state is None or math.isnan(self.best_score):
            return True
        return score > self.best_score if self.task.higher_is_better else score < self.best_score

    def validate(self, write: Callable[[str], object]) -> float:
        kept: list[Batch] | None = [] if self.config.save_predictions else None
        metrics = self.evaluate(self.data.val, kept)
        for name, value in floats(metrics).items():
            self.run.log_scalar(f"val.{name}", value, self.step)
        score = metrics[self.task.score]
        lines = [f"Validation at step {self.step}/{self.total_steps} | "
                 + " | ".join(f"val {name}: {value:.4f}" for name, value in floats(metrics).items())]
        better = self.is_better(score)
        if not better:
            lines.append(f"Best score so far: {self.best_score:.4f} (step {self.best_step})")
        elif math.isnan(score):
            lines.append(f"No best score yet (score {score:.4f})")
        else:
            no_previous = self.best_state is None or math.isnan(self.best_score)
            lines.append(f"New best score: {'' if no_previous else f'{self.best_score:.4f} -> '}{score:.4f}")
        if better:
            self.best_score, self.best_step, self.best_metrics = score, self.step, metrics
            self.best_state = {k: v.detach().clone() for k, v in self.averaged.state_dict().items()}
            self.best_val_kept = kept
        write("\n".join(lines))
        return score

    # ---- files ------------------------------------------------------------------------------
    def evaluate_kept(self, batches: Iterable[Batch]) -> list[Batch]:
        kept: list[Batch] = []
        self.evaluate(batches, kept)
        return kept

    def store_predictions(self, split: str, kept: list[Batch]) -> None:
        """Store the (outputs, targets) batches `kept` of every rank, in split order, as the run's predictions of
        `split` (observers.predictions)."""
        outputs: torch.Tensor | np.ndarray = torch.cat([batch[0] for batch in kept]) if kept else torch.empty(0)
        targets: torch.Tensor | np.ndarray = torch.cat([batch[1] for batch in kept]) if kept else torch.empty(0)
        # the ranks evaluate consecutive shares of a split; (type: ignore) only rank 0, given the list, reads it
        shares: list[Batch] = self.distributed.gather((outputs, targets))  # type: ignore[assignment]
        if not self.distributed.is_main:
            return
        outputs = torch.cat([share[0] for share in shares]).numpy()
        targets = torch.cat([share[1] for share in shares]).numpy()
        save_predictions(self.run, split, targets, outputs, names=self.task.classes)

    def add_artifact(self, name: str, write: Callable[[Path], object]) -> None:
        """Write a file with `write(path)` into the run's folder and attach it to the run (on rank 0 only)."""
        if not self.distributed.is_main:
            return
        path = self.workdir / name
        write(path)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.run.add_artifact(str(path), name=name, content_type=content_type)

    def save_checkpoint_if_due(self, window: Window, stop: Stop | None) -> None:
        """A checkpoint every trainer.checkpoint_every steps, and before a Stop that `tracker resume` continues."""
        if self.step % self.config.checkpoint_every == 0 or (stop is not None and stop.interrupts):
            self.save_checkpoint(window)

    def rank_state(self, window: Window) -> dict[str, Any]:
        """What differs between ranks: the random numbers and the metrics window since the last report."""
        return {
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "data_rng": self.batches.rng_state(),
            "window": {"metrics": window.metrics.state_dict(), "steps": window.steps, "examples": window.examples},
        }

    def save_checkpoint(self, window: Window) -> None:
        """A resumable checkpoint: plain tensors and numbers, loadable with torch.load(weights_only=True).

        Rank 0 writes it, with every other rank's rank_state in `other_ranks`."""
        # type: ignore: gather gives a list to rank 0, the only rank that reads it
        ranks: list[dict[str, Any]] = self.distributed.gather(self.rank_state(window))  # type: ignore[assignment]
        if not self.distributed.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "averaged_model": self.averaged.state_dict() if self.config.ema_decay is not None else None,
            "grad_scaler": self.scaler.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "best_model": self.best_state,
            "best_metrics": self.best_metrics,
            **ranks[0],
            "world_size": self.distributed.world_size,
            "other_ranks": ranks[1:],
            "train_seconds": self.train_seconds,
            "examples_seen": self.examples_seen,
        }
        self.add_artifact(CHECKPOINT, lambda path: torch.save(state, path))

    def restore(self, state: Mapping[str, Any]) -> Window:
        """Continue from a `save_checkpoint` state; return the metrics window to go on with."""
        written_by, world_size = state.get("world_size", 1), self.distributed.world_size
        if written_by != world_size:
            raise UserError(f"{CHECKPOINT} was written by {written_by} processes and this run has {world_size}; "
                            f"resume it with as many, e.g. with torchrun --nproc_per_node={written_by}")
        self.model.load_state_dict(state["model"])
        if self.config.ema_decay is not None:
            if state.get("averaged_model") is None:
                raise UserError("the checkpoint holds no weight average (its run had trainer.ema_decay=None); "
                                "resume it without changing trainer.ema_decay")
            self.averaged.load_state_dict(state["averaged_model"])
        if state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best_score, self.best_step = state["best_score"], state["best_step"]
        self.best_state, self.best_metrics = state["best_model"], state["best_metrics"]
        own = state if self.distributed.is_main else state["other_ranks"][self.distributed.rank - 1]
        torch.set_rng_state(own["torch_rng"])
        if self.device.type == "cuda" and own["cuda_rng"]:
            torch.cuda.set_rng_state_all(own["cuda_rng"])
        self.batches.set_rng_state(own["data_rng"])
        self.train_seconds, self.examples_seen = state["train_seconds"], state["examples_seen"]
        window = Window(self.task.create_metrics(), steps=own["window"]["steps"], examples=own["window"]["examples"])
        window.metrics.load_state_dict(own["window"]["metrics"], self.device)
        return window

    def finish(self) -> dict[str, Any]:
        """Store the last and best models, the figures and results.json; return the results."""
        self.add_artifact("model_last.pt", lambda path: torch.save(self.averaged.state_dict(), path))
        best_state, best_metrics = self.best_state, self.best_metrics
        assert best_state is not None and best_metrics is not None, "the last step's validation sets them"
        self.add_artifact("model_best.pt", lambda path: torch.save(best_state, path))
        self.averaged.load_state_dict(best_state)
        kept: list[Batch] | None = [] if self.config.save_predictions else None
        test_metrics = self.evaluate(self.data.test, kept)
        test = floats(test_metrics)
        if kept is not None:
            self.store_predictions("test", kept)
            # The best validation's own outputs, unless it was before a resume (they are not in the checkpoint).
            val = self.best_val_kept if self.best_val_kept is not None else self.evaluate_kept(self.data.val)
            self.store_predictions("val", val)
        self.run.log_scalar(f"test.{self.task.score}", test[self.task.score], self.step)
        self.task.visualise_results(best_metrics, self.add_artifact)
        score = self.task.score
        results: dict[str, Any] = {
            f"best_val_{score}": self.best_score,
            "best_step": self.best_step,
            **{f"test_{name}_of_best": value for name, value in test.items()},
            "steps": self.step,
            "examples_per_s": self.examples_seen / max(self.train_seconds, 1e-9),
        }
        if "confusion" in test_metrics:
            per_class = per_class_metrics(test_metrics["confusion"], self.task.classes)
            results["test_per_class_of_best"] = per_class
            if self.distributed.is_main:
                self.run.info["per_class"] = {"test": per_class}
        self.add_artifact("results.json", lambda path: path.write_text(json.dumps(results, indent=2)))
        if math.isnan(self.best_score):
            print(f"Warning: val {score} was nan at every validation; model_best.pt and the test metrics are of the "
                  f"last model (step {self.best_step})")
        print(f"Best val {score} {self.best_score:.4f} at step {self.best_step}; test {score} of that model "
              f"{test[score]:.4f}; {results['examples_per_s']:.1f} examples/s")
        return results


@trainer_ingredient.capture
def train(task: Task, lr: float, _run: Run, _seed: int, _config: dict[str, Any]) -> dict[str, Any]:
    """Train `task` (an ingredients.task.Task) with learning rate `lr`; return the results (also in results.json).

    The trainer's options are this ingredient's config, as a TrainerConfig. A run given `--resume=CHECKPOINT` (as
    `tracker resume` starts one) continues from that checkpoint.
    """
    hand_over_task(task)  # `tracker`'s load_model and export run `main` for its task (ingredients.rebuild)
    config = TrainerConfig(**_config)  # each key is an option: Sacred has refused the others
    set_determinism(config.deterministic)
    # What the run's result is, for `tracker runs --sort best`, `--group-by`, `sweep` and `report` (docs/answers.md).
    _run.info.update(higher_is_better=task.higher_is_better, result_metric=f"val.{task.score}")
    distributed = Distributed(resolve_device(config.device))
    progress = config.progress and distributed.is_main  # one progress bar
    trainer = Trainer(_run, task, lr, distributed.shared_seed(_seed), replace(config, progress=progress), distributed)
    # Rank 0 reads the checkpoint and hands it to the others.
    resume_from = distributed.broadcast(resume_checkpoint(_run))
    try:
        if resume_from is None:
            return trainer.fit()
        state = distributed.broadcast(load_checkpoint(resume_from) if distributed.is_main else None)
        print(f"Resuming after step {state['step']}/{trainer.total_steps}")
        return trainer.fit(trainer.restore(state))
    finally:  # the observers copied or uploaded each artifact when it was added
        shutil.rmtree(trainer.workdir, ignore_errors=True)


@dataclass
class Window:
    """The training metrics since the last report, and the steps, examples and seconds of waiting for data they
    cover; `started`: when its training time began, moved on by the time spent outside training (paused)."""

    metrics: Metrics
    steps: int = 0
    examples: int = 0
    data_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Stop:
    """Why training ends before its step budget."""

    message: str  # the line the terminal gets
    interrupts: bool  # the run ends INTERRUPTED after a checkpoint that `tracker resume` continues; else it finishes


class Progress:
    """What the terminal shows of the loop: a bar on the controlling terminal (never in the run's captured output)
    and the `Iteration …` lines, about every trainer.print_every steps and at the end."""

    def __init__(self, step: int, total_steps: int, config: TrainerConfig) -> None:
        self.first_step, self.total_steps, self.print_every = step, total_steps, config.print_every
        self.next_lines = self.next_multiple(step)
        self.started = time.perf_counter()
        self.terminal = open_terminal() if config.progress else None
        self.bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", file=self.terminal,
                        disable=self.terminal is None, dynamic_ncols=True, mininterval=0.5)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()
        if self.terminal is not None:
            self.terminal.close()

    def next_multiple(self, step: int) -> int:
        return (step // self.print_every + 1) * self.print_every

    def update(self) -> None:
        self.bar.update(1)

    def write(self, text: str) -> None:
        self.bar.write(text)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def lines_due(self, step: int) -> bool:
        """Whether the `Iteration …` lines are due after `step`; if so, the next ones are due print_every later."""
        if step < self.next_lines and step < self.total_steps:
            return False
        self.next_lines = self.next_multiple(step)
        return True


@contextlib.contextmanager
def paused(window: Window) -> Iterator[None]:
    """The time spent inside does not count as the metrics window's training time."""
    started = time.perf_counter()
    yield
    window.started += time.perf_counter() - started


class StopRequests:
    """While active, SIGINT and SIGTERM only note the request, which Trainer.stop_request acts on at a step
    boundary."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> StopRequests:
        self.signal_name: str | None = None
        self.previous = {number: signal.signal(number, self.request) for number in self.SIGNALS}
        return self

    def request(self, number: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(number).name

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
