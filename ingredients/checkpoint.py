"""The resumable checkpoint file: its name, its keys, and how to load one without running code from it."""
from __future__ import annotations

import os
import warnings
from typing import IO, Any

from runstore.errors import UserError

CHECKPOINT = "checkpoint.pt"
# What Trainer.save_checkpoint writes: plain tensors, numbers and containers of them.
CHECKPOINT_KEYS = {
    "model", "optimizer", "step", "epoch", "batch_in_epoch", "best_score", "best_step", "best_model",
    "best_metrics", "torch_rng", "cuda_rng", "data_rng", "window", "train_seconds", "examples_seen",
}


def load_checkpoint(path: str | os.PathLike[str] | IO[bytes], label: str = CHECKPOINT) -> dict[str, Any]:
    """A checkpoint written by Trainer.save_checkpoint, on the CPU; raises UserError (naming `label`) otherwise."""
    state = load_tensors(path, label)
    missing = CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:
        raise UserError(f"{label} was not written by this trainer (it lacks {', '.join(sorted(missing))})")
    return state


def load_tensors(source: str | os.PathLike[str] | IO[bytes], label: str = CHECKPOINT) -> Any:
    """What a torch.save file (a path or an open file) holds, on the CPU, when it is only tensors, numbers and
    containers of them; raises UserError (naming `label`) otherwise.

    weights_only=True: the file may come from a shared database, so nothing in it may run code.
    """
    import torch  # here, not at the top: the tracker CLI imports this module, and torch takes seconds to load

    try:
        with warnings.catch_warnings():  # a raw pickle gets torch's two-line protocol warning before our one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever torch raises, the file is not a usable checkpoint
        raise UserError(
            f"{label} is corrupted or holds more than tensors and numbers ({type(error).__name__}), "
            f"so it was not loaded"
        ) from None
