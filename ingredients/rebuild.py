"""The `rebuild` command of an experiment: a run's task, data and untrained network, built from its config.

`tracker`'s load_model and export call it with a run's stored config, so the network is built by the experiment's
own code (this checkout's), exactly as its `main` builds it, and the stored config stays data.
"""
import torch

from ingredients.task import Datasets


def add_rebuild_command(ex, make_task):
    """Give `ex` (a sacred.Experiment) the unobserved command `rebuild`, returning (task, data, network).

    `make_task()` returns the experiment's ingredients.task.Task, as its `main` creates it. The data is built on the
    CPU because some networks are shaped by it (the number of classes, airbench's whitening layer).
    """

    @ex.command(unobserved=True)
    def rebuild(_seed):
        """The task, its data on the CPU and its untrained network, as this config builds them."""
        task, cpu = make_task(), torch.device("cpu")
        data = task.create_data(cpu, _seed)
        # Batches either way, as the trainer iterates them (ingredients.task: Data or Datasets).
        return task, data.batches(cpu, _seed) if isinstance(data, Datasets) else data, task.create_model()
