"""torch's private parts that this project uses, written for torch 2 (checked with 2.14). Why each is needed:

- sgd_step: torch.optim.SGD imports torch._dynamo when first used (about 1.1 s of each run's start on 2 CPU cores,
  ingredients.sgd); its multi-tensor update, torch's torch._foreach_* functions, is private.
"""
import torch

from compat import Package

TORCH = Package("torch", ("2",), "compat/torch.py")


@torch.no_grad()
def sgd_step(params, grads, buffers, lr, momentum, weight_decay):
    """Step `params` by torch.optim.SGD's update with Nesterov momentum (dampening 0) from their `grads`; `buffers`
    are the momentum buffers (None before the first step). Returns the buffers after the step."""
    add, add_, mul_ = (TORCH.target(torch, name) for name in ("_foreach_add", "_foreach_add_", "_foreach_mul_"))
    steps = add(grads, params, alpha=weight_decay) if weight_decay else grads
    if momentum:
        if buffers is None:
            buffers = [step.clone() for step in steps]
        else:
            mul_(buffers, momentum)
            add_(buffers, steps)
        steps = add(steps, buffers, alpha=momentum)
    add_(params, steps, alpha=-lr)
    return buffers
