"""The `data` ingredient of the image-folder task: PNG or JPEG files, one sub-folder per class, read from disk.

`data.root` is either
- a folder of class folders (root/cat/*.png, root/dog/*.jpg): validation and test images are held out of each class
  by a fixed draw (data.val_fraction, data.test_fraction, data.split_seed), which the run records in data_splits.json;
- or a folder holding train/, val/ and test/, each with the same class folders.
Files are found in class folders at any depth; hidden ones and other suffixes are left alone. Images are decoded by
PIL, which is only let open PNG and JPEG: nothing in data.root is unpickled or run. Each is converted to RGB and
resized to data.size pixels; training images are augmented one by one, in the DataLoader's workers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from sacred import Ingredient

from ingredients.checks import builds_data, check_bool, check_choice, check_number, check_positive_int, is_int
from ingredients.cifar.data import augment_batch, normalize
from ingredients.images.synthetic import write_synthetic_folder
from ingredients.task import Datasets
from runstore.errors import UserError
from runstore.settings import project_root

if TYPE_CHECKING:
    import logging
    import os
    from collections.abc import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = "data/synthetic-images"  # where the generated folder is written, relative to the project
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DECODERS = ("PNG", "JPEG")
SPLITS = ("train", "val", "test")
FINGERPRINTS = ("content", "size")

data_ingredient = Ingredient("data", base_dir=REPO_ROOT)


@data_ingredient.config
def config() -> None:
    root = None  # the image folder (absolute, or relative to the project); None: generated shapes in data/
    size = 32  # images are resized to size×size pixels
    batch_size = 64  # training batch size
    eval_batch_size = 256  # evaluation batch size
    num_workers = 0  # DataLoader worker processes decoding images (0: in the training process)
    prefetch_factor = 2  # batches each worker decodes ahead
    augment = True  # random translation (4 pixels, zero padding) and horizontal flip of each training image
    val_fraction = 0.1  # share of each class held out for validation (a root without train/ val/ test/)
    test_fraction = 0.1  # share of each class held out for testing (likewise)
    split_seed = 0  # the draw of the held-out images: fixed, so that every run splits alike
    fingerprint = "content"  # info.data.digest of the files' contents ('content') or sizes ('size': big folders)


@data_ingredient.config_hook
def validate(config: dict[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    cfg = config["data"]
    if cfg["root"] is not None and not isinstance(cfg["root"], str):
        raise UserError(f"data.root={cfg['root']!r} must be a folder path, e.g. with data.root=/data/flowers")
    check_positive_int("data.size", cfg["size"], example=32)
    check_positive_int("data.batch_size", cfg["batch_size"], example=64)
    check_positive_int("data.eval_batch_size", cfg["eval_batch_size"], example=256)
    if not is_int(cfg["num_workers"]) or cfg["num_workers"] < 0:
        raise UserError(f"data.num_workers={cfg['num_workers']!r} must be an integer >= 0")
    check_positive_int("data.prefetch_factor", cfg["prefetch_factor"], example=2)
    check_bool("data.augment", cfg["augment"])
    for key in ("val_fraction", "test_fraction"):
        check_number(f"data.{key}", cfg[key], low=0, high=1, low_inclusive=False, example=0.1)
    if cfg["val_fraction"] + cfg["test_fraction"] >= 1:
        raise UserError(f"data.val_fraction + data.test_fraction = {cfg['val_fraction'] + cfg['test_fraction']} "
                        f"leaves no training images; lower them, e.g. 0.1 each")
    if not is_int(cfg["split_seed"]) or cfg["split_seed"] < 0:
        raise UserError(f"data.split_seed={cfg['split_seed']!r} must be an integer >= 0")
    check_choice("data.fingerprint", cfg["fingerprint"], FINGERPRINTS)
    if builds_data(command_name) and cfg["root"] is not None:
        check_is_folder(image_folder(cfg["root"]))  # before the run starts: no FAILED run for a mistyped path
    return {}


def image_folder(root: str | os.PathLike[str]) -> Path:
    """data.root as given when absolute, else inside the project (runstore.settings.project_root)."""
    return Path(root) if Path(root).is_absolute() else project_root(REPO_ROOT) / root


def check_is_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"data.root={str(folder)!r} is not a folder; point it at an image folder "
                        f"(one sub-folder per class holding PNG or JPEG files)")


@dataclass
class Folder:
    """An image folder's classes and, per split, its items: (path relative to `root`, class index)."""

    root: Path
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]
    seeded: bool  # the held-out splits were drawn (rather than read from val/ and test/)


@data_ingredient.capture
def scan_folder(root: str | None, batch_size: int, val_fraction: float, test_fraction: float,
                split_seed: int) -> Folder:
    """The image folder at data.root (generated when None); UserError for anything else."""
    folder = write_synthetic_folder(project_root(REPO_ROOT) / SYNTHETIC) if root is None else image_folder(root)
    check_is_folder(folder)
    if (folder / "train").is_dir():
        for split in ("val", "test"):
            if not (folder / split).is_dir():
                raise UserError(f"data.root={str(folder)!r} has train/ but no {split}/; give it train/, val/ and "
                                f"test/, each with the class folders, or only the class folders")
        found: dict[str, Any] = {split: class_files(folder, folder / split) for split in SPLITS}  # by split
        classes = sorted(found["train"])
        for split in ("val", "test"):
            if sorted(found[split]) != classes:
                raise UserError(f"data.root={str(folder)!r}: {split}/ has classes {', '.join(sorted(found[split]))} "
                                f"but train/ has {', '.join(classes)}; give every split the same class folders")
        splits = {split: [(path, classes.index(name)) for name, paths in found[split].items() for path in paths]
                  for split in SPLITS}
        result = Folder(folder, classes, splits, seeded=False)
    else:
        found = class_files(folder, folder)
        classes = sorted(found)
        splits = {split: [] for split in SPLITS}
        for label, name in enumerate(classes):
            paths = found[name]
            order = np.random.default_rng([split_seed, label]).permutation(len(paths))
            num_val, num_test = round(len(paths) * val_fraction), round(len(paths) * test_fraction)
            for split, chosen in zip(SPLITS, np.split(order, [len(paths) - num_val - num_test, len(paths) - num_test])):
                splits[split] += [(paths[i], label) for i in sorted(chosen)]
        result = Folder(folder, classes, splits, seeded=True)
    for split in ("val", "test"):
        if not result.splits[split]:  # read splits have images in every class folder
            raise UserError(f"data.root={str(folder)!r} has too few images for a {split} split; add images or "
                            f"raise data.{split}_fraction")
    if len(result.splits["train"]) < batch_size:
        raise UserError(f"data.batch_size={batch_size} is larger than the {len(result.splits['train'])} training "
                        f"images; lower data.batch_size")
    return result


def class_files(root: Path, folder: Path) -> dict[str, list[str]]:
    """{class name: sorted image paths relative to `root`} of the class folders in `folder`."""
    classes = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    if not classes:
        raise UserError(f"data.root={str(root)!r} is not an image folder: {str(folder)!r} has no class folders; put "
                        f"each class's PNG or JPEG files in a sub-folder named after the class")
    found: dict[str, list[str]] = {}
    for class_folder in classes:
        paths = sorted(
            path.relative_to(root).as_posix() for path in class_folder.rglob("*")
            if path.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in
                                                                 path.relative_to(class_folder).parts)
            and path.is_file()
        )
        if not paths:
            raise UserError(f"data.root={str(root)!r}: the class folder {str(class_folder.relative_to(root))!r} "
                            f"holds no PNG or JPEG images; add some or remove the folder")
        found[class_folder.name] = paths
    return found


def read_image(path: str | os.PathLike[str], size: int) -> torch.Tensor:
    """A PNG or JPEG file as a uint8 3×size×size tensor; UserError when it is neither."""
    try:
        with Image.open(path, formats=DECODERS) as image:
            pixels = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"{str(path)!r} is not a readable PNG or JPEG image ({error}); remove it from data.root") \
            from None
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).contiguous()


class ImageFiles(torch.utils.data.Dataset):
    """One split's images: items (uint8 3×size×size image, class index), read from `files` under `root`."""

    def __init__(self, root: Path, items: Sequence[tuple[str, int]], size: int, augment: bool) -> None:
        self.root, self.size, self.augment = root, size, augment
        self.files = [path for path, _ in items]  # the fingerprint hashes these (ingredients/fingerprint.py)
        self.labels = [label for _, label in items]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = read_image(self.root / self.files[index], self.size)
        if self.augment:  # the trainer seeds the global generator per item
            image = augment_batch(image[None], torch.default_generator)[0]
        return image, self.labels[index]


@data_ingredient.capture
def datasets(folder: Folder, size: int, augment: bool, batch_size: int, eval_batch_size: int, num_workers: int,
             prefetch_factor: int, fingerprint: str) -> Datasets:
    """The folder's splits as the trainer's Datasets, normalized on the device."""
    split = {name: ImageFiles(folder.root, folder.splits[name], size, augment and name == "train")
             for name in SPLITS}
    return Datasets(split["train"], split["val"], split["test"], batch_size, eval_batch_size, num_workers,
                    prefetch_factor, train_transform=lambda images, generator: normalize(images),
                    eval_transform=normalize, root=folder.root, fingerprint=fingerprint)
