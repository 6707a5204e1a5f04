"""SGD with (Nesterov) momentum and weight decay: torch.optim.SGD's update, without torch.optim.

Written out because every torch.optim optimizer imports torch._dynamo when first used: about 1.1 s of each run's
start on 2 CPU cores, more than a short run's training. The update is torch's (dampening 0):
    d = grad + weight_decay * p;  buffer = d at the first step, else momentum * buffer + d
    p -= lr * (d + momentum * buffer)   (Nesterov; without momentum: p -= lr * d)
except that a parameter without a gradient (unused in the forward pass) steps with a zero one instead of being
skipped. The trainer sets `param_groups[0]["lr"]` before each step, as it does for torch's Adam and AdamW.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from compat.torch import sgd_step

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class SGD:
    def __init__(self, parameters: Iterable[torch.Tensor], lr: float, momentum: float,
                 weight_decay: float) -> None:
        self.params = [p for p in parameters if p.requires_grad]
        self.param_groups: list[dict[str, Any]] = [{"params": self.params, "lr": lr}]
        self.momentum, self.weight_decay = momentum, weight_decay
        # the momentum buffers, one per parameter, from the first step on
        self.buffers: list[torch.Tensor] | None = None

    def step(self) -> None:
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.params]
        self.buffers = sgd_step(self.params, grads, self.buffers, self.param_groups[0]["lr"], self.momentum,
                                self.weight_decay)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        return {"momentum_buffers": self.buffers}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        buffers = state["momentum_buffers"]
        self.buffers = None if buffers is None else [b.to(p.device) for b, p in zip(buffers, self.params)]
