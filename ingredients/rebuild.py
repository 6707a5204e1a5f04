"""The `rebuild` command of an experiment: a run's task, data and untrained network, built from its config.

`tracker`'s load_model and export call it with a run's stored config, so the network is built by the experiment's
own code (this checkout's), exactly as its `main` builds it, and the stored config stays data. The command runs the
experiment's `main` up to its call of the trainer's `train(task, lr)`, which hands over the task instead of training:
every experiment made by trainer_experiment can be loaded back without declaring its task a second time.
"""
from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

import torch

from ingredients.task import Datasets
from runstore.errors import UserError

if TYPE_CHECKING:
    from sacred import Experiment

    from ingredients.task import Data, Task

_REBUILDING = contextvars.ContextVar("rebuilding", default=False)


class TaskHandedOver(Exception):
    """Raised by `train` while `rebuild` runs `main`: it carries the task that `main` built."""

    def __init__(self, task: Task) -> None:
        super().__init__("the rebuild command wanted only the task")
        self.task = task


def hand_over_task(task: Task) -> None:
    """Called by `train` first: while `rebuild` runs the experiment's `main`, stop it with `task`, untrained."""
    if _REBUILDING.get():
        raise TaskHandedOver(task)


def add_rebuild_command(ex: Experiment) -> None:
    """Give `ex` (a sacred.Experiment whose `main` calls ingredients.trainer.train) the unobserved command `rebuild`,
    returning (task, data, network).

    The data is built on the CPU because some networks are shaped by it (the number of classes, airbench's
    whitening layer).
    """

    @ex.command(unobserved=True)
    def rebuild(_seed: int) -> tuple[Task, Data, torch.nn.Module]:
        """The task, its data on the CPU and its untrained network, as this config builds them."""
        task, cpu = task_of_main(ex), torch.device("cpu")
        data = task.create_data(cpu, _seed)
        # Batches either way, as the trainer iterates them (ingredients.task: Data or Datasets).
        return task, data.batches(cpu, _seed) if isinstance(data, Datasets) else data, task.create_model()


def task_of_main(ex: Experiment) -> Task:
    """The task that `ex`'s main function gives the trainer, run with this run's config (Sacred has set it up)."""
    token = _REBUILDING.set(True)
    try:
        ex.commands[ex.default_command]()
    except TaskHandedOver as handed_over:
        return handed_over.task
    finally:
        _REBUILDING.reset(token)
    raise UserError(f"the main function of experiment {ex.path!r} returned without calling "
                    f"ingredients.trainer.train(task, lr), so its network cannot be rebuilt")
