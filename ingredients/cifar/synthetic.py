"""Writes a learnable, CIFAR-10-format toy dataset (`cifar-10-batches-py` pickles) for offline runs and tests.

Each of the ten classes is a shape or texture, at a random place and size, in one of three colours
that hint at the class, over a random background with strong pixel noise. The files have CIFAR-10's names, keys,
dtypes and row
layout (uint8 rows of 3072 = 3×32×32, channel-major), with fewer rows per file so they are quick to make.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runstore.atomic_file import write_atomically

if TYPE_CHECKING:
    import os

CLASSES = ["square", "disc", "ring", "h-stripes", "v-stripes", "diagonals", "cross", "checker", "triangle", "frame"]
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]],
    dtype=np.float32,
)
IMAGES_PER_FILE = 2000
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
SIZE = 32


def write_synthetic_cifar(folder: str | os.PathLike[str], images_per_file: int = IMAGES_PER_FILE,
                          seed: int = 0) -> Path:
    """Create the dataset in `folder` unless it is already complete; the content depends only on the seed."""
    folder = Path(folder)
    names = TRAIN_FILES + ["test_batch", "batches.meta"]
    if all((folder / name).exists() for name in names):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in TRAIN_FILES + ["test_batch"]:
        labels = rng.integers(0, len(CLASSES), images_per_file)
        images = draw_images(labels, rng)
        _write_pickle(folder / name, {
            "batch_label": f"synthetic {name}",
            "labels": labels.tolist(),
            "data": images.reshape(len(labels), -1),
            "filenames": [f"{name}_{i}.png" for i in range(len(labels))],
        })
    _write_pickle(folder / "batches.meta", {
        "label_names": CLASSES, "num_cases_per_batch": images_per_file, "num_vis": SIZE * SIZE * 3,
    })
    return folder


def _write_pickle(path: Path, obj: object) -> None:
    write_atomically(path, pickle.dumps(obj, protocol=2))


# Each class's shape, in the order of CLASSES, from a pixel's coordinates (x, y), its offset from the shape's centre
# (dx, dy), its distance from it, the shape's size and a stripe phase.
SHAPES = [
    lambda x, y, dx, dy, radius, size, phase: (np.abs(dx) < size) & (np.abs(dy) < size),
    lambda x, y, dx, dy, radius, size, phase: radius < size,
    lambda x, y, dx, dy, radius, size, phase: (radius < size) & (radius > 0.6 * size),
    lambda x, y, dx, dy, radius, size, phase: ((y + phase) // 3) % 2 == 0,
    lambda x, y, dx, dy, radius, size, phase: ((x + phase) // 3) % 2 == 0,
    lambda x, y, dx, dy, radius, size, phase: ((x + y + phase) // 4) % 2 == 0,
    lambda x, y, dx, dy, radius, size, phase: (((np.abs(dx) < 2) & (np.abs(dy) < size))
                                               | ((np.abs(dy) < 2) & (np.abs(dx) < size))),
    lambda x, y, dx, dy, radius, size, phase: (((x + phase) // 4 + (y + phase) // 4) % 2) == 0,
    lambda x, y, dx, dy, radius, size, phase: (dy > -size) & (dy < size) & (np.abs(dx) < (dy + size) / 2),
    lambda x, y, dx, dy, radius, size, phase: ((np.abs(dx) < size) & (np.abs(dy) < size)
                                               & ~((np.abs(dx) < size - 3) & (np.abs(dy) < size - 3))),
]


def draw_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 images, N×3×32×32, one per label."""
    n = len(labels)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cx = rng.uniform(10, 22, (n, 1, 1)).astype(np.float32)
    cy = rng.uniform(10, 22, (n, 1, 1)).astype(np.float32)
    size = rng.uniform(6, 11, (n, 1, 1)).astype(np.float32)
    phase = rng.integers(0, 8, (n, 1, 1)).astype(np.float32)
    mask = np.empty((n, SIZE, SIZE), dtype=bool)  # each image's own class shape, drawn class by class
    for label, shape in enumerate(SHAPES):
        chosen = labels == label
        dx, dy = x - cx[chosen], y - cy[chosen]
        mask[chosen] = shape(x, y, dx, dy, np.sqrt(dx**2 + dy**2), size[chosen], phase[chosen])
    background = rng.uniform(0, 120, (n, 3, 1, 1)).astype(np.float32)
    # Colour alone is ambiguous (shared by three classes), so a model has to learn the shapes.
    colour = (labels + rng.integers(0, 3, n)) % len(PALETTE)
    foreground = (PALETTE[colour] + rng.normal(0, 25, (n, 3))).astype(np.float32)[:, :, None, None]
    images = np.where(mask[:, None], foreground, background)
    images += rng.normal(0, 45, images.shape).astype(np.float32)
    return np.clip(images, 0, 255).astype(np.uint8)
