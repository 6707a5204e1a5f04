"""What a run trained on, recorded once per run, at its start, as the run's info.data:

- `digest`: the data, whichever way it is split. For files: SHA-256 over the sorted relative paths, the sizes and the
  SHA-256 of each file's content (rule 'content'), or over the paths and sizes alone (rule 'size': no file is read,
  for folders too big to read at every start). For in-memory tensors: over the sorted SHA-256 hashes of the items
  (the bytes of each input and its target).
- `splits`: per split, a digest of its membership: its sorted relative paths, or its sorted item hashes.
- `counts`: the items of each split; `rule`: 'content', 'size' or 'tensors'.

Digests are the first 16 hex digits of the SHA-256. `tracker compare` flags runs whose digests differ, and `tracker
runs --where info.data.digest=...` lists the runs that trained on the same data.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import torch

from ingredients.batches import seeded_random
from ingredients.task import Datasets

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    import numpy as np

    from ingredients.batches import EvalBatches, MapDataset, TrainBatches
    from ingredients.task import Data

SPLITS = ("train", "val", "test")
DIGITS = 16
READERS = 8  # threads reading files: hashlib releases the GIL, and reads wait on the disk


def fingerprint(data: Data | Datasets) -> dict[str, Any]:
    """info.data for a task's Data (in-memory tensors) or Datasets."""
    if isinstance(data, Datasets):
        datasets = {name: getattr(data, name) for name in SPLITS}
        if data.root is not None:
            return files_fingerprint(data.root, {name: dataset.files for name, dataset in datasets.items()},
                                     data.fingerprint)
        return items_fingerprint({name: [_item_hash(dataset, index) for index in range(len(dataset))]
                                  for name, dataset in datasets.items()})
    return items_fingerprint({name: _tensor_hashes(getattr(data, name)) for name in SPLITS})


def files_fingerprint(root: str | os.PathLike[str], splits: Mapping[str, Collection[str]], rule: str = "content"
                      ) -> dict[str, Any]:
    """`splits`: {split: relative paths under `root`}. See the module docstring."""
    paths = sorted(set().union(*splits.values()))
    describe = _content if rule == "content" else _size
    with ThreadPoolExecutor(READERS) as pool:
        entries = pool.map(lambda path: f"{path}\0{describe(os.path.join(root, path))}\n", paths)
        digest = _digest("".join(entries).encode())
    return {
        "digest": digest,
        "rule": rule,
        "splits": {name: _digest("\n".join(sorted(members)).encode()) for name, members in splits.items()},
        "counts": {name: len(members) for name, members in splits.items()},
    }


def items_fingerprint(splits: Mapping[str, Collection[bytes]]) -> dict[str, Any]:
    """`splits`: {split: each item's hash (bytes)}. See the module docstring."""
    def over(hashes: Iterable[bytes]) -> str:
        return _digest(b"".join(sorted(hashes)))

    return {
        "digest": over([item for hashes in splits.values() for item in hashes]),
        "rule": "tensors",
        "splits": {name: over(hashes) for name, hashes in splits.items()},
        "counts": {name: len(hashes) for name, hashes in splits.items()},
    }


def split_digest(batches: TrainBatches | EvalBatches) -> str:
    """info.data.splits' digest of one split held as tensors (`batches`: its .inputs and .targets)."""
    return items_fingerprint({"split": _tensor_hashes(batches)})["splits"]["split"]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGITS]


def _content(path: str) -> str:
    with open(path, "rb") as file:
        content = file.read()
    return f"{len(content)}\0{hashlib.sha256(content).hexdigest()}"


def _size(path: str) -> str:
    return str(os.path.getsize(path))


def _rows(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's items as rows of bytes (a uint8 numpy array, one row per item)."""
    flat = tensor.detach().cpu().contiguous().reshape(len(tensor), -1)
    return flat.view(torch.uint8).numpy()


def _tensor_hashes(batches: TrainBatches | EvalBatches) -> list[bytes]:
    inputs, targets = _rows(batches.inputs), _rows(batches.targets)
    hashes = []
    for row, target in zip(inputs, targets):
        item = hashlib.sha256(row)
        item.update(target)
        hashes.append(item.digest())
    return hashes


def _item_hash(dataset: MapDataset, index: int) -> bytes:
    """The hash of a Dataset item's tensors and numbers, fetched with the same random numbers in every run."""
    with seeded_random(0):
        item = dataset[index]
    parts = item if isinstance(item, (tuple, list)) else (item,)
    hashed = hashlib.sha256()
    for part in parts:
        part = torch.as_tensor(part)
        hashed.update(_rows(part.reshape(1, -1))[0])
    return hashed.digest()
