"""The `trainer` ingredient: the training loop (train steps, periodic validation, best-score checkpoints).

Metrics go to Sacred with `_run.log_scalar`, files with `_run.add_artifact`; the terminal gets a
progress bar and periodic `Iteration …` lines. SIGINT and SIGTERM stop training at the next step
boundary, after storing a checkpoint that `tracker resume` continues from.
"""
import json
import mimetypes
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sacred import Ingredient
from tqdm import tqdm

from ingredients import figures
from ingredients.checkpoint import CHECKPOINT, load_checkpoint
from ingredients.data import data_ingredient, eval_batches, load_splits, train_batches
from ingredients.model import build_model, model_ingredient
from observers.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")

trainer_ingredient = Ingredient(
    "trainer", ingredients=[data_ingredient, model_ingredient], base_dir=Path(__file__).resolve().parent.parent
)


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


@trainer_ingredient.config_hook
def validate(config, command_name, logger):
    cfg = config["trainer"]
    _check_choice("trainer.optimizer", cfg["optimizer"], OPTIMIZERS)
    _check_choice("trainer.schedule", cfg["schedule"], SCHEDULES)
    _check_choice("trainer.device", cfg["device"], DEVICES)
    for key in ("epochs", "val_every", "log_every", "print_every", "checkpoint_every"):
        _check_positive_int(f"trainer.{key}", cfg[key])
    if cfg["steps"] is not None:
        _check_positive_int("trainer.steps", cfg["steps"])
    for key in ("momentum", "weight_decay"):
        if not isinstance(cfg[key], (int, float)) or isinstance(cfg[key], bool) or cfg[key] < 0:
            raise UserError(f"trainer.{key}={cfg[key]!r} must be a number >= 0")
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device='cuda' but no CUDA device is available; use with trainer.device=auto")
    return {}


def _check_choice(key, value, choices):
    if value not in choices:
        raise UserError(f"{key}={value!r} is unknown; choose one of {', '.join(choices)}")


def _check_positive_int(key, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{key}={value!r} must be a positive integer")


def resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_determinism(deterministic):
    """Deterministic kernels make reruns bit-identical; otherwise let cuDNN pick the fastest ones."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
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
def evaluate(model, split, batch_size, num_classes):
    """Mean loss, accuracy and confusion matrix (rows: true class, columns: predicted) on a split."""
    model.eval()
    loss_sum = torch.zeros((), device=split.labels.device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=split.labels.device)
    for images, labels in eval_batches(split, batch_size):
        logits = model(images)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        confusion += torch.bincount(labels * num_classes + logits.argmax(1), minlength=num_classes**2)
    model.train()
    confusion = confusion.view(num_classes, num_classes).cpu()
    accuracy = confusion.diag().sum().item() / max(1, len(split))
    return loss_sum.item() / max(1, len(split)), accuracy, confusion


class Trainer:
    """Runs the training loop of one Sacred run and reports everything to it."""

    def __init__(self, run, lr, seed, epochs, steps, val_every, log_every, print_every, checkpoint_every, device,
                 progress):
        self.run = run
        self.device = device
        self.progress = progress
        self.val_every, self.log_every = val_every, log_every
        self.print_every, self.checkpoint_every = print_every, checkpoint_every
        self.train_split, self.val_split, self.test_split, self.classes = load_splits(device=str(device))
        self.batches = train_batches(self.train_split, seed=seed)
        self.batch_size = self.batches.batch_size
        self.model = build_model(num_classes=len(self.classes)).to(device)
        self.optimizer = make_optimizer(self.model.parameters(), lr)
        self.total_steps = steps or epochs * self.batches.batches_per_epoch
        self.scheduler = make_schedule(self.optimizer, self.total_steps)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_score, self.best_step, self.best_state, self.best_confusion = float("-inf"), 0, None, None
        self.train_seconds, self.examples_seen = 0.0, 0
        self.workdir = Path(tempfile.mkdtemp(prefix="tracker-run-"))

    # ---- the loop -------------------------------------------------------------------------
    def fit(self, window=None):
        """Train for the step budget; return the results written to results.json.

        `window` holds the training metrics summed since the last report (restored when resuming).
        """
        started = time.perf_counter()
        self.save_sample_grid()
        window = window or self.new_window()
        next_print = (self.step // self.print_every + 1) * self.print_every
        terminal = open_terminal() if self.progress else None
        with tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", file=terminal,
                  disable=terminal is None, dynamic_ncols=True, mininterval=0.5) as bar, StopRequests() as stop:
            while self.step < self.total_steps:
                fetch_started = time.perf_counter()
                for images, labels in self.batches.iterate(self.epoch, self.batch_in_epoch):
                    fetched = time.perf_counter()
                    lr = self.scheduler.get_last_lr()[0]
                    loss, correct = self.train_step(images, labels)
                    self.step += 1
                    self.batch_in_epoch += 1
                    window["loss"] += loss
                    window["correct"] += correct
                    window["steps"] += 1
                    window["data_s"] += fetched - fetch_started
                    bar.update(1)
                    if self.step == 1 or self.step % self.log_every == 0 or self.step == self.total_steps:
                        stats = self.log_window(window, lr)
                        if self.step >= next_print or self.step == self.total_steps:
                            bar.write(self.progress_lines(stats, time.perf_counter() - started))
                            next_print = (self.step // self.print_every + 1) * self.print_every
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

    def train_step(self, images, labels):
        logits = self.model(images)
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        # Kept on the device: reading them every step would synchronize a GPU.
        return loss.detach(), (logits.argmax(1) == labels).sum()

    # ---- reporting --------------------------------------------------------------------------
    def new_window(self):
        return {"loss": 0.0, "correct": 0, "steps": 0, "data_s": 0.0, "started": time.perf_counter()}

    def log_window(self, window, lr):
        """Log the mean training metrics of the steps since the last report."""
        steps = window["steps"]
        loss = float(window["loss"]) / steps  # the first read synchronizes the device
        accuracy = float(window["correct"]) / (steps * self.batch_size)
        seconds = time.perf_counter() - window["started"]
        self.train_seconds += seconds
        self.examples_seen += steps * self.batch_size
        stats = {
            "train.loss": loss,
            "train.acc": accuracy,
            "lr": lr,
            "examples_per_s": steps * self.batch_size / seconds,
            "time.data_ms": 1000 * window["data_s"] / steps,
            "time.step_ms": 1000 * (seconds - window["data_s"]) / steps,
        }
        for name, value in stats.items():
            self.run.log_scalar(name, value, self.step)
        return stats

    def progress_lines(self, stats, elapsed):
        remaining = elapsed / max(1, self.step) * (self.total_steps - self.step)
        width = len(str(self.total_steps))
        return (
            f"Iteration {self.step:>{width}}/{self.total_steps} | examples/s: {stats['examples_per_s']:.1f} | "
            f"loss: {stats['train.loss']:.4f} | time elapsed: {format_duration(elapsed)} | "
            f"time left: {format_duration(remaining)}\n"
            f"Fetch data time: {stats['time.data_ms']:.0f}ms, model update time: {stats['time.step_ms']:.0f}ms"
        )

    def validate(self, write):
        loss, accuracy, confusion = evaluate(self.model, self.val_split, self.batch_size, len(self.classes))
        self.run.log_scalar("val.loss", loss, self.step)
        self.run.log_scalar("val.acc", accuracy, self.step)
        lines = [f"Validation at step {self.step}/{self.total_steps} | val loss: {loss:.4f} | val acc: {accuracy:.4f}"]
        if accuracy > self.best_score:
            lines.append(f"New best score: {self.best_score:.4f} -> {accuracy:.4f}")
            self.best_score, self.best_step, self.best_confusion = accuracy, self.step, confusion
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

    def save_sample_grid(self):
        images = self.train_split.images[:64].cpu()
        labels = [self.classes[i] for i in self.train_split.labels[:64].tolist()]
        self.add_artifact("train_samples.png", lambda path: figures.save_image_grid(images, labels, path))

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
            "best_confusion": self.best_confusion,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "augment_rng": self.batches.augment_generator.get_state(),
            # Python numbers: the sums may live on a GPU, and a float holds a float32 sum exactly.
            "window": {"loss": float(window["loss"]), "correct": int(window["correct"]), "steps": window["steps"]},
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
        self.best_state, self.best_confusion = state["best_model"], state["best_confusion"]
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.batches.augment_generator.set_state(state["augment_rng"])
        self.train_seconds, self.examples_seen = state["train_seconds"], state["examples_seen"]
        return {**self.new_window(), **state["window"]}

    def finish(self):
        """Store the last and best models, the figures and results.json; return the results."""
        self.add_artifact("model_last.pt", lambda path: torch.save(self.model.state_dict(), path))
        self.add_artifact("model_best.pt", lambda path: torch.save(self.best_state, path))
        self.model.load_state_dict(self.best_state)
        test_loss, test_acc, _ = evaluate(self.model, self.test_split, self.batch_size, len(self.classes))
        self.run.log_scalar("test.acc", test_acc, self.step)
        self.add_artifact(
            "confusion_matrix.png", lambda path: figures.save_confusion_matrix(self.best_confusion, self.classes, path)
        )
        results = {
            "best_val_acc": self.best_score,
            "best_step": self.best_step,
            "test_acc_of_best": test_acc,
            "test_loss_of_best": test_loss,
            "steps": self.step,
            "examples_per_s": self.examples_seen / max(self.train_seconds, 1e-9),
        }
        self.add_artifact("results.json", lambda path: path.write_text(json.dumps(results, indent=2)))
        print(f"Best val acc {self.best_score:.4f} at step {self.best_step}; test acc of that model {test_acc:.4f}; "
              f"{results['examples_per_s']:.1f} examples/s")
        return results


@trainer_ingredient.capture
def train(lr, _run, _seed, epochs, steps, val_every, log_every, print_every, checkpoint_every, device,
          deterministic, progress, resume_from=None):
    """Train a model on the data ingredient's splits; return results (best val acc under 'best_val_acc').

    `resume_from`: a checkpoint.pt file of an earlier run with this config, to continue after its step.
    """
    set_determinism(deterministic)
    trainer = Trainer(_run, lr, _seed, epochs, steps, val_every, log_every, print_every, checkpoint_every,
                      resolve_device(device), progress)
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
