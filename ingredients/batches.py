"""Batches of in-memory tensors for the trainer: shuffled training batches addressable by (epoch, batch), so a run
resumes mid-epoch exactly, and in-order evaluation batches. Any task whose data fits in memory can use them."""
import torch
from torch.utils.data import DataLoader


class _GatherBatches(torch.utils.data.Dataset):
    """Dataset whose items are whole batches: index lists in, stacked inputs and targets out."""

    def __init__(self, inputs, targets):
        self.inputs, self.targets = inputs, targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, indices):
        return self.inputs[indices], self.targets[indices]


class TrainBatches:
    """Shuffled training batches; the last incomplete batch of an epoch is dropped.

    `transform(inputs, generator)` prepares each batch (augmentation, normalization); its random numbers come from
    `self.generator`, a CPU generator whose state the trainer checkpoints.
    """

    def __init__(self, inputs, targets, batch_size, seed, transform=None, num_workers=0):
        self.inputs, self.targets = inputs, targets
        self.batch_size = batch_size
        self.seed = seed
        self.transform = transform
        self.num_workers = num_workers
        self.batches_per_epoch = len(targets) // batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epoch_order(self, epoch):
        """The index batches of `epoch`: a permutation that depends only on the seed and the epoch."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.targets), generator=generator)
        return list(order[: self.batches_per_epoch * self.batch_size].split(self.batch_size))

    def iterate(self, epoch, start_batch=0):
        """Yield (inputs, targets) batches of `epoch`, starting at batch `start_batch`."""
        index_batches = self.epoch_order(epoch)[start_batch:]
        if self.inputs.device.type == "cpu":
            batches = DataLoader(
                _GatherBatches(self.inputs, self.targets),
                sampler=index_batches,
                batch_size=None,
                num_workers=self.num_workers,
                # Its own generator: each new iterator draws a worker seed, which must not advance the global
                # RNG (dropout uses it), or a run resumed mid-epoch would diverge from an uninterrupted one.
                generator=torch.Generator(),
            )
        else:  # the data already lives on the accelerator: gather there, no worker processes
            batches = ((self.inputs[indices], self.targets[indices]) for indices in index_batches)
        for inputs, targets in batches:
            yield (self.transform(inputs, self.generator) if self.transform else inputs), targets


class EvalBatches:
    """A split's (inputs, targets) batches in order, without randomness; `transform(inputs)` prepares each."""

    def __init__(self, inputs, targets, batch_size, transform=None):
        self.inputs, self.targets = inputs, targets
        self.batch_size = batch_size
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __iter__(self):
        for start in range(0, len(self.targets), self.batch_size):
            inputs = self.inputs[start : start + self.batch_size]
            yield (self.transform(inputs) if self.transform else inputs), self.targets[start : start + self.batch_size]
