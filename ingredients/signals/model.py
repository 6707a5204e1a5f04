"""The `model` ingredient of the signals task: a 1-D convolutional network that regresses one number per signal."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.nn as nn
from sacred import Ingredient

from ingredients.checks import check_bool, check_positive_int, is_int
from runstore.errors import UserError

if TYPE_CHECKING:
    import logging

    import torch

model_ingredient = Ingredient("model", base_dir=Path(__file__).resolve().parents[2])


@model_ingredient.config
def config() -> None:
    width = 32  # channels of the first convolution; each later stage doubles it
    stages = 3  # convolution stages, each halving the length
    kernel_size = 7  # samples each convolution sees
    batch_norm = True  # BatchNorm after each convolution (without it, DDP trains exactly as one process would)


@model_ingredient.config_hook
def validate(config: dict[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    for key in ("width", "stages", "kernel_size"):
        check_positive_int(f"model.{key}", config["model"][key])
    check_bool("model.batch_norm", config["model"]["batch_norm"])
    stages, length = config["model"]["stages"], config["data"]["length"]
    if is_int(length) and length < 2**stages:  # each stage halves the signal; the data ingredient checks the rest
        raise UserError(f"data.length={length} is too short for model.stages={stages}, which halve it {stages} "
                        f"times; use data.length={2**stages} or more, or fewer model.stages")
    return {}


class SignalRegressor(nn.Module):
    def __init__(self, width: int, stages: int, kernel_size: int, batch_norm: bool = True) -> None:
        super().__init__()
        layers, channels = [], 1
        for stage in range(stages):
            out_channels = width * 2**stage
            layers += [nn.Conv1d(channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm),
                       nn.BatchNorm1d(out_channels) if batch_norm else nn.Identity(), nn.ReLU(inplace=True),
                       nn.MaxPool1d(2)]
            channels = out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(channels, 1)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(signals)).squeeze(-1)


@model_ingredient.capture
def build_model(width: int, stages: int, kernel_size: int, batch_norm: bool) -> SignalRegressor:
    return SignalRegressor(width, stages, kernel_size, batch_norm)
