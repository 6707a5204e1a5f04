"""DistributedDataParallel for the trainer: one process per device, started by torchrun (or by `tracker sweep
--executor slurm` with several tasks per node, which sets torchrun's environment for each task).

torch's DDP averages the gradients; this module holds what the trainer adds around it:
- the process group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK): nccl on
  GPUs (device cuda:LOCAL_RANK), gloo on CPUs; small control messages (stop flags, seeds, checkpoints) always go
  through a gloo group, so they never wait on a GPU;
- rank 0's seed for every rank, so the batch order (ingredients.batches), a function of (seed, epoch, world size),
  is the same everywhere even when Sacred drew each process's seed itself;
- metric sums added across ranks before they are logged, so the logged metrics are those of the global batch;
- `any_rank` flags: a signal or a pruning decision on one rank stops every rank at the same step (the trainer asks
  after logged steps and validations only, where the ranks exchange metrics anyway);
- the other ranks' processes, whose temporary folders rank 0 removes once they are gone (observers.termination);
- `broadcast` and `gather` of checkpoint-like values, sent as torch.save bytes and read with
  torch.load(weights_only=True), as checkpoints are: torch's *_object collectives would unpickle what they receive.
With one process every method is a no-op and torch.distributed is never initialized.
"""
from __future__ import annotations

import atexit
import io
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from observers.process_rank import process_rank, world_size
from observers.termination import RUN_END, this_process

if TYPE_CHECKING:
    from typing import TypeVar

    from ingredients.metrics import Metrics
    from ingredients.task import Data

    Number = TypeVar("Number", int, float)


class Distributed:
    """The processes training one run together; `rank` 0 is the one that records it."""

    def __init__(self, device: torch.device) -> None:
        self.rank, self.world_size = process_rank(), world_size()
        self.device = device
        # the gloo group for control messages, when there are several processes
        self.control: dist.ProcessGroup | None = None
        if self.world_size == 1:
            return
        if device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
        # type: ignore: new_group may return NON_GROUP_MEMBER, but never to a member of the group, as every rank is
        self.control = (dist.new_group(backend="gloo")  # type: ignore[assignment]
                        if device.type == "cuda" else dist.group.WORLD)
        processes = self.gather(this_process())
        if self.is_main:  # a rank that is SIGKILLed cannot remove its temporary folder: rank 0 does
            RUN_END.add_other_ranks(processes[1:])  # type: ignore[index]  # gather gives rank 0 the list

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shared_seed(self, seed: int) -> int:
        """Rank 0's `seed`; ranks above 0 also reseed torch's global random numbers (dropout) from it and their
        rank, so a rerun with the same seed draws the same numbers on every rank."""
        if self.world_size == 1:
            return seed
        seed = self.broadcast(seed)
        if self.rank > 0:
            torch.manual_seed(int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0]))
        return seed

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` in DistributedDataParallel, which averages its gradients over the ranks at each backward."""
        if self.world_size == 1:
            return model
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def shard(self, data: Data) -> None:
        """Each rank's share of `data`'s (an ingredients.task.Data) batches: of every training batch and of the
        evaluation splits."""
        for batches in (data.train, data.val, data.test):
            batches.shard(self.rank, self.world_size)

    def add_sums(self, metrics: Metrics) -> None:
        """`metrics`' (an ingredients.metrics.Metrics) sums become the sums over every rank."""
        if self.world_size == 1:
            return
        for name in sorted(metrics.sums):
            total = torch.as_tensor(metrics.sums[name], device=self.device)
            dist.all_reduce(total)
            metrics.sums[name] = total

    def add(self, number: Number) -> Number:
        """The sum of `number` over the ranks."""
        if self.world_size == 1:
            return number
        total = torch.tensor(number, dtype=torch.float64)
        dist.all_reduce(total, group=self.control)
        return type(number)(total.item())

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        """For each flag, whether it is set on any rank; every rank gets the same answer."""
        if self.world_size == 1:
            return flags
        raised = torch.tensor([bool(flag) for flag in flags], dtype=torch.uint8)
        dist.all_reduce(raised, op=dist.ReduceOp.MAX, group=self.control)
        return tuple(bool(flag) for flag in raised.tolist())

    def broadcast_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm statistics) in `model` on every rank, so all ranks evaluate one network."""
        if self.world_size == 1:
            return
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` (plain values and tensors, as in a checkpoint) on every rank."""
        if self.world_size == 1:
            return value
        # type: ignores: `payload` is None only on ranks above 0 until it is the buffer that receives rank 0's bytes
        payload = to_bytes(value) if self.is_main else None
        size = torch.tensor([len(payload) if self.is_main else 0])  # type: ignore[arg-type]
        dist.broadcast(size, src=0, group=self.control)
        if not self.is_main:
            payload = torch.empty(int(size), dtype=torch.uint8)
        dist.broadcast(payload, src=0, group=self.control)  # type: ignore[arg-type]
        return from_bytes(payload)  # type: ignore[arg-type]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's `value` (plain values and tensors), in rank order, on rank 0 (None on the others)."""
        if self.world_size == 1:
            return [value]
        payload = to_bytes(value)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        dist.all_gather(sizes, torch.tensor([len(payload)]), group=self.control)
        longest = max(int(size) for size in sizes)  # gloo gathers tensors of one size
        padded = torch.cat([payload, torch.zeros(longest - len(payload), dtype=torch.uint8)])
        gathered = [torch.empty(longest, dtype=torch.uint8) for _ in sizes] if self.is_main else None
        dist.gather(padded, gathered, dst=0, group=self.control)
        if not self.is_main:
            return None
        # type: ignore: `gathered` is None only on the ranks above 0, which returned
        return [from_bytes(payload[:int(size)]) for payload, size in zip(gathered, sizes)]  # type: ignore[arg-type]

    def leave_together(self) -> None:
        """Exit only once every rank is exiting; for an end that every rank reaches at the same step (a stop, a
        NaN loss), after which rank 0 still records the run: torchrun ends every process as soon as one exits
        with a failure."""
        if self.world_size > 1:
            atexit.register(dist.barrier, group=self.control)  # runs before destroy_process_group


def to_bytes(value: Any) -> torch.Tensor:
    """`value` as torch.save's bytes, in a uint8 tensor that a collective can send."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return torch.frombuffer(bytearray(buffer.getbuffer()), dtype=torch.uint8)


def from_bytes(payload: torch.Tensor) -> Any:
    """The value of `to_bytes`' tensor, read as a checkpoint is: no code, only tensors and plain values."""
    return torch.load(io.BytesIO(payload.numpy().tobytes()), weights_only=True)
