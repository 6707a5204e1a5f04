"""The `data` ingredient of CIFAR-10: the dataset (or a generated CIFAR-10-format stand-in) as in-memory tensors.

Each split is held whole as a uint8 tensor; augmentation (random crop with padding, horizontal
flip) runs batched on tensors, on the training device, instead of per sample through PIL.
"""
from __future__ import annotations

import contextlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from sacred import Ingredient

from ingredients.batches import EvalBatches, TrainBatches
from ingredients.checks import builds_data, check_bool, check_choice, check_number, check_positive_int, is_int
from ingredients.cifar.synthetic import write_synthetic_cifar
from runstore.errors import UserError
from runstore.settings import project_root

if TYPE_CHECKING:
    import logging
    import os

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = ("cifar10", "synthetic")
# What the network sees of each image: two streams in the spirit of a two-stream network, and the whole image.
STREAMS = ("rgb", "color", "shape")
COLOR_BLOCK = 8  # the 'color' stream: the mean colour of each 8x8 block (4x4 blocks per image), smoothly upsampled
SOBEL = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))  # the 'shape' stream's horizontal gradient kernel
# Per-channel statistics of the CIFAR-10 training set, used for both datasets.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
# The python version of CIFAR-10 (cifar-10-python.tar.gz), as torchvision downloads and unpacks it.
FOLDER = "cifar-10-batches-py"
CROP_PADDING = 4
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]

data_ingredient = Ingredient("data", base_dir=REPO_ROOT)


@data_ingredient.config
def config() -> None:
    dataset = "cifar10"  # 'cifar10' (torchvision's files, downloaded when possible) or 'synthetic' (generated offline)
    root = "data"  # folder holding cifar-10-batches-py/, relative to the project (synthetic data: <root>/synthetic/)
    batch_size = 128  # training batch size
    eval_batch_size = 1000  # evaluation batch size (no gradients are kept, so it can be larger)
    num_workers = 0  # DataLoader worker processes gathering batches (data on the CPU only)
    augment = True  # random translation (crop with zero padding) and horizontal flip of training batches
    crop_padding = None  # the largest translation in pixels (None: CROP_PADDING, 4; airbench94: 2)
    val_fraction = 0.1  # share of the training images held out as the validation split
    limit = None  # at most this many images per split, for quick runs (None: all)
    stream = "rgb"  # what the network sees: 'rgb' (the image), 'color' (blurred: colour alone) or 'shape' (edges)


@data_ingredient.config_hook
def validate(config: dict[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    cfg = config["data"]
    check_choice("data.dataset", cfg["dataset"], DATASETS)
    check_choice("data.stream", cfg["stream"], STREAMS)
    check_positive_int("data.batch_size", cfg["batch_size"], example=128)
    check_positive_int("data.eval_batch_size", cfg["eval_batch_size"], example=1000)
    if not is_int(cfg["num_workers"]) or cfg["num_workers"] < 0:
        raise UserError(f"data.num_workers={cfg['num_workers']!r} must be an integer >= 0")
    check_number("data.val_fraction", cfg["val_fraction"], low=0, high=1, low_inclusive=False, example=0.1)
    if cfg["limit"] is not None:
        check_positive_int("data.limit", cfg["limit"])
    check_bool("data.augment", cfg["augment"])
    if cfg["crop_padding"] is not None and (not is_int(cfg["crop_padding"]) or cfg["crop_padding"] < 0):
        raise UserError(f"data.crop_padding={cfg['crop_padding']!r} must be an integer >= 0, e.g. 4")
    return {}


def prepare_data(config: dict[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    """The experiment's config hook that fetches the data (prepare_files) before a run starts, added after its other
    checks: the ingredients' hooks run before the experiment's, so a mistyped `lr` would cost a download first."""
    if builds_data(command_name):
        prepare_files(config["data"]["dataset"], config["data"]["root"])
    return {}


def resolve(root: str | os.PathLike[str]) -> Path:
    """`root` as given when absolute, else inside the project (runstore.settings.project_root: this checkout, or the
    working directory of an installed package), not the working directory within a checkout, which varies."""
    return Path(root) if Path(root).is_absolute() else project_root(REPO_ROOT) / root


def prepare_files(dataset: str, root: str | os.PathLike[str]) -> Path:
    """The folder of `dataset`'s files under data.root `root`, downloaded or generated when missing; UserError when
    they cannot be. The config hook calls it before a run starts, so that missing data leaves no FAILED run."""
    try:
        return _data_folder(dataset, resolve(root))
    except OSError as error:
        raise _cannot_hold(root, error) from None


@data_ingredient.capture
def read_split(train: bool, dataset: str, root: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read one split of the CIFAR-10 pickles: (uint8 N×3×32×32, int64 labels, class names).

    Read directly rather than through torchvision, whose import loads its models and ops (seconds per run).
    """
    folder = prepare_files(dataset, root)
    try:
        batches = [_unpickle(folder / name) for name in (TRAIN_FILES if train else ["test_batch"])]
        classes = list(_unpickle(folder / "batches.meta")["label_names"])
    except OSError as error:
        raise _cannot_hold(root, error) from None
    rows = torch.from_numpy(np.concatenate([batch["data"] for batch in batches]))
    labels = torch.tensor([label for batch in batches for label in batch["labels"]], dtype=torch.int64)
    return rows.view(-1, 3, 32, 32), labels, classes


def _cannot_hold(root: str | os.PathLike[str], error: OSError) -> UserError:
    """For a data.root that is missing, not a folder, or not readable (or, for synthetic data, not writable)."""
    return UserError(f"data.root={root!r} cannot hold the dataset ({error.strerror}: {error.filename}); "
                     f"give a folder you can write, e.g. with data.root=data")


def _data_folder(dataset: str, root: Path) -> Path:
    if dataset == "synthetic":
        return write_synthetic_cifar(root / "synthetic" / FOLDER)
    folder = root / FOLDER
    if not all((folder / name).exists() for name in TRAIN_FILES + ["test_batch", "batches.meta"]):
        download_cifar10(root)
    return folder


class CifarUnpickler(pickle.Unpickler):
    """Reads CIFAR-10's pickles, which hold only dicts, lists, text, bytes and numpy arrays, and nothing else.

    A pickle can call any importable function while it loads; data files can come from anywhere (data.root is a
    config value), so every global a file names must be one of the few that numpy arrays are rebuilt with.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol 2, as Python 3 writes them
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which CIFAR-10's files never hold")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        try:
            return CifarUnpickler(file, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
            raise UserError(
                f"{path} is not a CIFAR-10 file ({error}); it was not read: put the files of cifar-10-python.tar.gz "
                f"there, or delete the folder to download them again"
            ) from None


def download_cifar10(root: Path) -> None:
    """Download and unpack CIFAR-10 into `root` with torchvision (imported only here: it is slow to import)."""
    try:
        from torchvision.datasets import CIFAR10

        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints every download attempt
            CIFAR10(root, train=True, download=True)
    except Exception as error:  # noqa: BLE001 - any failure here means: no usable data
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"CIFAR-10 is not in {root / FOLDER}/ and could not be downloaded ({reason}); "
            f"put the extracted cifar-10-python.tar.gz there, or run offline with 'with data.dataset=synthetic' "
            f"(or 'with smoke')"
        ) from None


@dataclass
class Split:
    """One split held whole in memory: images as uint8 N×3×32×32, labels as int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@data_ingredient.capture
def load_splits(device: str | torch.device, batch_size: int, val_fraction: float,
                limit: int | None) -> tuple[Split, Split, Split, list[str]]:
    """Train, validation and test splits plus class names; on a GPU the tensors live on the device."""
    train_images, train_labels, classes = read_split(train=True)
    test_images, test_labels, _ = read_split(train=False)
    # A fixed permutation, independent of the run's seed, so every run validates on the same images.
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(0))
    num_val = max(1, int(round(len(order) * val_fraction)))
    val_idx, train_idx = order[:num_val], order[num_val:]
    splits = [
        Split(train_images[train_idx], train_labels[train_idx]),
        Split(train_images[val_idx], train_labels[val_idx]),
        Split(test_images, test_labels),
    ]
    if limit is not None:
        splits = [Split(s.images[:limit], s.labels[:limit]) for s in splits]
    if len(splits[0]) < batch_size:
        raise UserError(
            f"data.batch_size={batch_size} is larger than the {len(splits[0])} training images; "
            f"lower data.batch_size or raise data.limit"
        )
    device = torch.device(device)
    if device.type != "cpu":
        splits = [s.to(device) for s in splits]
    return (*splits, classes)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float tensors with CIFAR-10's per-channel mean and std removed."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1)
    return (images.float().div_(255) - mean) / std


def augment_batch(images: torch.Tensor, generator: torch.Generator, crop_padding: int = CROP_PADDING) -> torch.Tensor:
    """Random crop with `crop_padding` pixels of zero padding and random horizontal flip, for a whole uint8 batch.

    Random numbers come from `generator` (a CPU generator), so the result does not depend on
    the device and the generator's state can be checkpointed.
    """
    batch, _, height, width = images.shape
    padded = F.pad(images, (crop_padding,) * 4)
    offsets = torch.randint(0, 2 * crop_padding + 1, (2, batch), generator=generator).to(images.device)
    flips = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
    rows = (offsets[0, :, None] + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(width, device=images.device))[:, None, None, :]
    cols = torch.where(flips[:, None, None, None], cols.flip(-1), cols)
    batch_idx = torch.arange(batch, device=images.device)[:, None, None, None]
    channel_idx = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch_idx, channel_idx, rows, cols]


def stream_view(images: torch.Tensor, stream: str) -> torch.Tensor:
    """What the network sees of normalized images (N×3×H×W): all of them ('rgb'), their colour alone ('color': each
    COLOR_BLOCK block's mean, bilinearly upsampled) or their shape alone ('shape': the magnitude of the grayscale
    image's Sobel gradient, in all three channels, so every model takes it unchanged)."""
    if stream == "color":
        blocks = F.avg_pool2d(images, COLOR_BLOCK)
        return F.interpolate(blocks, size=images.shape[-2:], mode="bilinear", align_corners=False)
    if stream == "shape":
        gray = images.mean(1, keepdim=True)
        horizontal = torch.tensor(SOBEL, device=images.device).view(1, 1, 3, 3)
        gradients = F.conv2d(gray, torch.cat([horizontal, horizontal.transpose(2, 3)]), padding=1)
        return gradients.norm(dim=1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    return images


@data_ingredient.capture
def train_batches(split: Split, seed: int, batch_size: int, augment: bool, crop_padding: int | None,
                  num_workers: int, stream: str) -> TrainBatches:
    """The training batches of `split` as configured (augmented, normalized, the stream's view); `seed` fixes order
    and augmentation."""

    def prepare(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        padding = CROP_PADDING if crop_padding is None else crop_padding
        return stream_view(normalize(augment_batch(images, generator, padding) if augment else images), stream)

    return TrainBatches(split.images, split.labels, batch_size, seed, transform=prepare, num_workers=num_workers)


@data_ingredient.capture
def eval_batches(split: Split, eval_batch_size: int, stream: str) -> EvalBatches:
    """Normalized batches of a split (the stream's view) in order, without augmentation."""
    return EvalBatches(split.images, split.labels, eval_batch_size,
                       transform=lambda images: stream_view(normalize(images), stream))
