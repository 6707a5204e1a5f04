"""The trainer's batches: shuffled training batches addressable by (epoch, batch), so a run resumes mid-epoch
exactly, and in-order evaluation batches.

Two kinds, one contract (`batches_per_epoch`, `iterate(epoch, start_batch)` and `rng_state()` for training; iteration
and `len` for evaluation):
- TrainBatches and EvalBatches hold whole splits as in-memory tensors and gather batches by indexing (the fast path);
- DatasetBatches and DatasetEvalBatches read items of a map-style torch Dataset through a DataLoader with workers.
Both draw the order of an epoch from `epoch_order`, a function of (seed, epoch) alone.
"""
from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from runstore.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Protocol

    class MapDataset(Protocol):
        """A map-style Dataset (ingredients.task.Datasets): its items by index, and their number."""

        def __getitem__(self, index: int, /) -> Any: ...

        def __len__(self) -> int: ...

    Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets)
    TrainTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # transform(inputs, generator)
    EvalTransform = Callable[[torch.Tensor], torch.Tensor]  # transform(inputs)


def epoch_order(num_items: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The index batches of `epoch`: a permutation that depends only on the seed and the epoch, without the last
    incomplete batch."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_items, generator=generator)
    return list(order[: num_items // batch_size * batch_size].split(batch_size))


class _GatherBatches(torch.utils.data.Dataset):
    """Dataset whose items are whole batches: index lists in, stacked inputs and targets out."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, indices: torch.Tensor) -> Batch:
        return self.inputs[indices], self.targets[indices]


def check_shareable(batch_size: int, world_size: int, accumulate: int = 1) -> None:
    """UserError unless `world_size` processes, each splitting its share into `accumulate` micro-batches, can share
    each (global) batch of `batch_size` equally."""
    parts = world_size * accumulate
    if batch_size % parts:
        fit = max(parts, batch_size // parts * parts)
        sharers = " and ".join(filter(None, (f"{world_size} processes" if world_size > 1 else "",
                                             f"trainer.accumulate={accumulate}" if accumulate > 1 else "")))
        raise UserError(f"data.batch_size={batch_size} is the global batch, which {sharers} cannot share equally; "
                        f"use a multiple of {parts}, e.g. with data.batch_size={fit}")


def rank_share(num_items: int, rank: int, world_size: int) -> range:
    """The range of items of `rank` when `world_size` processes share `num_items` in consecutive, near-equal parts."""
    return range(rank * num_items // world_size, (rank + 1) * num_items // world_size)


def eval_batch_ranges(num_items: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[tuple[int, int]]:
    """The (start, stop) item ranges of `rank`'s evaluation batches: a single process's batches of the split, shared
    among the ranks in consecutive runs of whole batches, so that the ranks' metric sums add up to its sums. With
    fewer batches than ranks, each rank takes its consecutive share of the items, so that every rank has some."""
    starts = range(0, num_items, batch_size)
    if len(starts) < world_size:
        items = rank_share(num_items, rank, world_size)
        return [(items.start, items.stop)]
    share = rank_share(len(starts), rank, world_size)
    return [(start, min(start + batch_size, num_items)) for start in starts[share.start:share.stop]]


class _Shuffled:
    """What both kinds of training batches share: the order of each epoch and the transform's generator, which is
    all a checkpoint keeps of the data.

    Under DistributedDataParallel (`shard`), `batch_size` stays the global batch: each of the `world_size` ranks
    takes its consecutive share (`self.share`) of every batch of `epoch_order`, so a rank's items depend only on
    (seed, epoch, world size), and the ranks together train on the batches of a single process.
    """

    num_items: int
    batch_size: int  # the global batch
    seed: int
    generator: torch.Generator
    share: slice

    def epoch_order(self, epoch: int) -> list[torch.Tensor]:
        return epoch_order(self.num_items, self.batch_size, self.seed, epoch)

    def shard(self, rank: int, world_size: int) -> None:
        share = rank_share(self.batch_size, rank, world_size)  # the trainer has checked that the batch is shareable
        self.share = slice(share.start, share.stop)

    def rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


class TrainBatches(_Shuffled):
    """Shuffled training batches; the last incomplete batch of an epoch is dropped.

    `transform(inputs, generator)` prepares each batch (augmentation, normalization); its random numbers come from
    `self.generator`, a CPU generator whose state the trainer checkpoints. Under DDP each rank transforms the whole
    global batch and keeps its share, so its items are augmented exactly as in a single process (batched
    augmentation costs little beside the model's step).
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int,
                 transform: TrainTransform | None = None, num_workers: int = 0) -> None:
        self.inputs, self.targets = inputs, targets
        self.batch_size = batch_size
        self.seed = seed
        self.transform = transform
        self.num_workers = num_workers
        self.num_items = len(targets)
        self.batches_per_epoch = len(targets) // batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.share = slice(None)

    def iterate(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Yield (inputs, targets) batches of `epoch`, starting at batch `start_batch`."""
        index_batches = self.epoch_order(epoch)[start_batch:]
        if self.inputs.device.type == "cpu":
            batches: Iterable[Batch] = DataLoader(
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
            inputs = self.transform(inputs, self.generator) if self.transform else inputs
            yield inputs[self.share], targets[self.share]


class EvalBatches:
    """A split's (inputs, targets) batches in order, without randomness; `transform(inputs)` prepares each."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int,
                 transform: EvalTransform | None = None) -> None:
        self.inputs, self.targets = inputs, targets
        self.batch_size = batch_size
        self.transform = transform
        self.shard(0, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def shard(self, rank: int, world_size: int) -> None:
        """Evaluate only `rank`'s share of the split's batches (the trainer adds the ranks' metric sums)."""
        self.ranges = eval_batch_ranges(len(self.targets), self.batch_size, rank, world_size)

    def __iter__(self) -> Iterator[Batch]:
        for start, stop in self.ranges:
            inputs = self.inputs[start:stop]
            yield (self.transform(inputs) if self.transform else inputs), self.targets[start:stop]


# ---- map-style Datasets ------------------------------------------------------------------------------
def item_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one item's random numbers (its augmentation): a function of (seed, epoch, index) alone."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """torch's (CPU), NumPy's and Python's global random numbers seeded with `seed`, and as they were afterwards, so
    items fetched in the training process (data.num_workers=0) leave its random numbers (dropout) untouched."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # not torch.manual_seed, which reseeds CUDA too
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


class _SeededItems(torch.utils.data.Dataset):
    """The items of `dataset` addressed by (epoch, index) keys, each fetched with its own seeded random numbers, so
    an item's augmentation is the same whichever worker fetches it, and whether or not the run was resumed."""

    def __init__(self, dataset: MapDataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with seeded_random(item_seed(self.seed, epoch, index)):
            return self.dataset[index]


class _KeyBatches:
    """A DataLoader's batch sampler: lists of (epoch, index) keys, set before each pass (a loader with persistent
    workers keeps them between passes and reads its sampler anew at each)."""

    def __init__(self, batches: Iterable[list[tuple[int, int]]] = ()) -> None:
        self.batches = list(batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def dataset_loader(dataset: MapDataset, seed: int, device: torch.device, num_workers: int, prefetch_factor: int
                   ) -> DataLoader[Any]:
    """A DataLoader over `dataset`'s items by key batches (its `batch_sampler`): `num_workers` processes that stay
    between passes, `prefetch_factor` batches ahead per worker, batches in pinned memory for a CUDA device."""
    return DataLoader(
        _SeededItems(dataset, seed),
        batch_sampler=_KeyBatches(),
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        generator=torch.Generator(),  # as in TrainBatches: the global RNG stays untouched
    )


def _on_device(loader: Iterable[Batch], device: torch.device, transform: EvalTransform | None) -> Iterator[Batch]:
    try:
        for inputs, targets in loader:
            inputs = inputs.to(device, non_blocking=True)
            yield (transform(inputs) if transform else inputs), targets.to(device, non_blocking=True)
    except UserError as error:
        # From a worker it arrives with the worker's traceback in its message (torch's ExceptionWrapper); the user
        # gets the one line it was raised with.
        raise UserError(str(error).rstrip().splitlines()[-1].split("UserError: ", 1)[-1]) from None


class DatasetBatches(_Shuffled):
    """Shuffled training batches of a map-style Dataset whose items are (input tensor, target); the last incomplete
    batch of an epoch is dropped.

    Item `index` of epoch `epoch` is fetched with global random numbers seeded by item_seed(seed, epoch, index), so
    random augmentation in the Dataset (torch, NumPy or Python's `random`) is reproducible with any number of
    workers. `transform(inputs, generator)` then prepares each batch on the device (e.g. normalization), as in
    TrainBatches. Under DDP each rank reads only its share of each batch, and its generator is its own.
    """

    def __init__(self, dataset: MapDataset, batch_size: int, seed: int, device: torch.device,
                 transform: TrainTransform | None = None, num_workers: int = 0, prefetch_factor: int = 2) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.device, self.transform = device, transform
        self.num_items = len(dataset)
        self.batches_per_epoch = len(dataset) // batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.share = slice(None)
        self.loader = dataset_loader(dataset, seed, device, num_workers, prefetch_factor)

    def shard(self, rank: int, world_size: int) -> None:
        super().shard(rank, world_size)
        if rank > 0:  # a random batch transform draws numbers of this rank's own
            self.generator.manual_seed(int(np.random.SeedSequence([self.seed, rank]).generate_state(1)[0]))

    def iterate(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Yield (inputs, targets) batches of `epoch` on the device, starting at batch `start_batch`."""
        # type: ignores: the loader's batch_sampler is dataset_loader's _KeyBatches (torch types it as any sampler),
        # and the lambda is made only when self.transform is set (mypy does not narrow an attribute inside a lambda)
        self.loader.batch_sampler.batches = [  # type: ignore[union-attr]
            [(epoch, index) for index in batch[self.share].tolist()] for batch in self.epoch_order(epoch)[start_batch:]]
        transform = ((lambda inputs: self.transform(inputs, self.generator))  # type: ignore[misc]
                     if self.transform else None)
        yield from _on_device(self.loader, self.device, transform)


class DatasetEvalBatches:
    """A Dataset's batches in order, on the device; `transform(inputs)` prepares each. Items are fetched with
    random numbers seeded alike in every run, so even a random transform evaluates the same in two runs."""

    def __init__(self, dataset: MapDataset, batch_size: int, device: torch.device,
                 transform: EvalTransform | None = None, num_workers: int = 0, prefetch_factor: int = 2) -> None:
        self.dataset, self.device, self.transform = dataset, device, transform
        self.batch_size = batch_size
        self.loader = dataset_loader(dataset, 0, device, num_workers, prefetch_factor)
        self.shard(0, 1)

    def __len__(self) -> int:
        return len(self.dataset)

    def shard(self, rank: int, world_size: int) -> None:
        """Evaluate only `rank`'s share of the split's batches (the trainer adds the ranks' metric sums)."""
        # the loader's batch_sampler is dataset_loader's _KeyBatches (torch types it as any sampler)
        self.loader.batch_sampler.batches = [  # type: ignore[union-attr]
            [(0, index) for index in range(start, stop)]
            for start, stop in eval_batch_ranges(len(self.dataset), self.batch_size, rank, world_size)]

    def __iter__(self) -> Iterator[Batch]:
        return _on_device(self.loader, self.device, self.transform)
