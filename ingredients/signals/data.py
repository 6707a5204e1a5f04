"""The `data` ingredient of the signals task: noisy periodic 1-D signals, labelled with their frequency.

Each signal is a sine of frequency f (cycles per window) with a weaker second harmonic, random phases, amplitude and
offset, plus Gaussian noise. The splits are generated in memory from fixed seeds, so every run sees the same data.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sacred import Ingredient

from ingredients.batches import EvalBatches, TrainBatches
from ingredients.checks import check_number, check_positive_int
from runstore.errors import UserError

if TYPE_CHECKING:
    import logging

MIN_FREQUENCY, MAX_FREQUENCY = 1.0, 10.0  # cycles per window: the range of the targets
SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}  # fixed: the data does not depend on the run's seed

data_ingredient = Ingredient("data", base_dir=Path(__file__).resolve().parents[2])


@data_ingredient.config
def config() -> None:
    length = 128  # samples per signal
    train_size = 8000  # signals in the training split
    eval_size = 1000  # signals in each of the validation and test splits
    noise = 0.5  # standard deviation of the Gaussian noise (the sine's amplitude is 0.5 to 1.5)
    batch_size = 64  # training and evaluation batch size
    augment = True  # random circular shift and sign flip of training signals (the frequency stays the same)


@data_ingredient.config_hook
def validate(config: dict[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    cfg = config["data"]
    check_positive_int("data.length", cfg["length"], example=128)
    for key in ("train_size", "eval_size", "batch_size"):
        check_positive_int(f"data.{key}", cfg[key])
    check_number("data.noise", cfg["noise"], low=0, example=0.5)
    if cfg["batch_size"] > cfg["train_size"]:
        raise UserError(f"data.batch_size={cfg['batch_size']} is larger than the {cfg['train_size']} training "
                        f"signals; lower data.batch_size or raise data.train_size")
    return {}


def generate(size: int, length: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(signals float32 N×1×length, frequencies float32 N)."""
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(MIN_FREQUENCY, MAX_FREQUENCY, (size, 1))
    time = np.arange(length) / length
    phase, harmonic_phase = rng.uniform(0, 2 * np.pi, (2, size, 1))
    amplitude = rng.uniform(0.5, 1.5, (size, 1))
    offset = rng.normal(0, 0.5, (size, 1))
    signals = (amplitude * np.sin(2 * np.pi * frequency * time + phase)
               + 0.3 * amplitude * np.sin(4 * np.pi * frequency * time + harmonic_phase)
               + offset + rng.normal(0, noise, (size, length)))
    return (torch.from_numpy(signals[:, None, :].astype(np.float32)),
            torch.from_numpy(frequency[:, 0].astype(np.float32)))


def shift_and_flip(signals: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random circular shift and sign per signal: a phase change, so the frequency (the target) is unchanged."""
    shifts = torch.randint(0, signals.shape[-1], (len(signals),), generator=generator)
    signs = torch.where(torch.rand(len(signals), generator=generator) < 0.5, -1.0, 1.0)
    index = (torch.arange(signals.shape[-1]) + shifts[:, None]) % signals.shape[-1]
    return signals.gather(-1, index[:, None, :].to(signals.device)) * signs[:, None, None].to(signals.device)


@data_ingredient.capture
def load_splits(device: str | torch.device, seed: int, length: int, train_size: int, eval_size: int, noise: float,
                batch_size: int, augment: bool) -> tuple[TrainBatches, EvalBatches, EvalBatches]:
    """Training, validation and test batches on `device`; `seed` fixes the training order and augmentation."""
    def split(name: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = generate(size, length, noise, SPLIT_SEEDS[name])
        return inputs.to(device), targets.to(device)

    train = TrainBatches(*split("train", train_size), batch_size, seed, transform=shift_and_flip if augment else None)
    return train, EvalBatches(*split("val", eval_size), batch_size), EvalBatches(*split("test", eval_size), batch_size)
