"""Writes the generated shapes of ingredients/cifar/synthetic.py as an image folder (one sub-folder per class, PNG
files), for offline runs and tests of the image-folder path."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ingredients.cifar.synthetic import CLASSES, draw_images

IMAGES_PER_CLASS = 240


def write_synthetic_folder(folder: str | os.PathLike[str], images_per_class: int = IMAGES_PER_CLASS,
                           seed: int = 0) -> Path:
    """Create the folder unless it exists; its content depends only on the arguments."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    # Written aside and renamed into place, so a concurrent run never reads half a folder; aside in a folder of
    # tempfile's, which no other user can have created first.
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), images_per_class)
    for index, (label, image) in enumerate(zip(labels, draw_images(labels, rng))):
        path = partial / CLASSES[label] / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(path)
    partial.chmod(0o755)  # readable by all, as a folder made by mkdir is
    try:
        os.rename(partial, folder)
    except OSError:  # another run wrote it first
        shutil.rmtree(partial, ignore_errors=True)
    return folder
