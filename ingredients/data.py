"""The `data` ingredient: CIFAR-10 (or a generated CIFAR-10-format stand-in) as in-memory tensors.

Each split is held whole as a uint8 tensor; augmentation (random crop with padding, horizontal
flip) runs batched on tensors, on the training device, instead of per sample through PIL.
"""
import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from sacred import Ingredient
from torch.utils.data import DataLoader
from torchvision.datasets import CIFAR10

from ingredients.synthetic import write_synthetic_cifar
from observers.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("cifar10", "synthetic")
# Per-channel statistics of the CIFAR-10 training set, used for both datasets.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CROP_PADDING = 4

data_ingredient = Ingredient("data", base_dir=REPO_ROOT)


@data_ingredient.config
def config():
    dataset = "cifar10"  # 'cifar10' (torchvision's files, downloaded when possible) or 'synthetic' (generated offline)
    root = "data"  # folder holding cifar-10-batches-py/ (synthetic data goes to <root>/synthetic/)
    batch_size = 128  # training and evaluation batch size
    num_workers = 0  # DataLoader worker processes gathering batches (data on the CPU only)
    augment = True  # random crop (padding 4) and horizontal flip of training batches
    val_fraction = 0.1  # share of the training images held out as the validation split
    limit = None  # at most this many images per split, for quick runs (None: all)


@data_ingredient.config_hook
def validate(config, command_name, logger):
    cfg = config["data"]
    if cfg["dataset"] not in DATASETS:
        raise UserError(
            f"data.dataset={cfg['dataset']!r} is unknown; choose one of {', '.join(DATASETS)}"
        )
    if not _is_int(cfg["batch_size"]) or cfg["batch_size"] < 1:
        raise UserError(f"data.batch_size={cfg['batch_size']!r} must be a positive integer, e.g. with data.batch_size=128")
    if not _is_int(cfg["num_workers"]) or cfg["num_workers"] < 0:
        raise UserError(f"data.num_workers={cfg['num_workers']!r} must be an integer >= 0")
    if not isinstance(cfg["val_fraction"], (int, float)) or not 0 < cfg["val_fraction"] < 1:
        raise UserError(f"data.val_fraction={cfg['val_fraction']!r} must be a number between 0 and 1, e.g. 0.1")
    if cfg["limit"] is not None and (not _is_int(cfg["limit"]) or cfg["limit"] < 1):
        raise UserError(f"data.limit={cfg['limit']!r} must be a positive integer or None")
    if not isinstance(cfg["augment"], bool):
        raise UserError(f"data.augment={cfg['augment']!r} must be True or False")
    return {}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class SyntheticCIFAR10(CIFAR10):
    """torchvision's CIFAR-10 reader pointed at generated files: same format, so no fixed checksums."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


@data_ingredient.capture
def read_split(train, dataset, root):
    """Read one split from disk through torchvision's reader: (uint8 N×3×32×32, int64 labels, class names)."""
    root = Path(root)
    if dataset == "synthetic":
        root = root / "synthetic"
        write_synthetic_cifar(root / CIFAR10.base_folder)
        reader = SyntheticCIFAR10(root, train=train)
    else:
        reader = _read_cifar10(root, train)
    images = torch.from_numpy(reader.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(reader.targets, dtype=torch.int64), list(reader.classes)


def _read_cifar10(root, train):
    folder = root / CIFAR10.base_folder
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints every download attempt
            return CIFAR10(root, train=train, download=True)
    except Exception as error:  # noqa: BLE001 - any failure here means: no usable data
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"CIFAR-10 is not in {folder}/ and could not be downloaded ({reason}); "
            f"put the extracted cifar-10-python.tar.gz there, or run offline with 'with data.dataset=synthetic' "
            f"(or 'with smoke')"
        ) from None


@dataclass
class Split:
    """One split held whole in memory: images as uint8 N×3×32×32, labels as int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self):
        return len(self.labels)

    def to(self, device):
        return Split(self.images.to(device), self.labels.to(device))


@data_ingredient.capture
def load_splits(device, batch_size, val_fraction, limit):
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


def normalize(images):
    """uint8 images to float tensors with CIFAR-10's per-channel mean and std removed."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1)
    return (images.float().div_(255) - mean) / std


def augment_batch(images, generator):
    """Random crop with zero padding and random horizontal flip, for a whole uint8 batch at once.

    Random numbers come from `generator` (a CPU generator), so the result does not depend on
    the device and the generator's state can be checkpointed.
    """
    batch, _, height, width = images.shape
    padded = F.pad(images, (CROP_PADDING,) * 4)
    offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, batch), generator=generator).to(images.device)
    flips = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
    rows = (offsets[0, :, None] + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(width, device=images.device))[:, None, None, :]
    cols = torch.where(flips[:, None, None, None], cols.flip(-1), cols)
    batch_idx = torch.arange(batch, device=images.device)[:, None, None, None]
    channel_idx = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch_idx, channel_idx, rows, cols]


class _GatherBatches(torch.utils.data.Dataset):
    """Dataset whose items are whole batches: index lists in, stacked uint8 images and labels out."""

    def __init__(self, split):
        self.split = split

    def __len__(self):
        return len(self.split)

    def __getitem__(self, indices):
        return self.split.images[indices], self.split.labels[indices]


class TrainBatches:
    """Shuffled, augmented training batches, addressable by (epoch, batch) so a run can resume mid-epoch."""

    def __init__(self, split, batch_size, augment, seed, num_workers=0):
        self.split = split
        self.batch_size = batch_size
        self.augment = augment
        self.seed = seed
        self.num_workers = num_workers
        self.batches_per_epoch = len(split) // batch_size  # the last, incomplete batch is dropped
        self.augment_generator = torch.Generator().manual_seed(seed)

    def epoch_order(self, epoch):
        """The index batches of `epoch`: a permutation that depends only on the seed and the epoch."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.split), generator=generator)
        return list(order[: self.batches_per_epoch * self.batch_size].split(self.batch_size))

    def iterate(self, epoch, start_batch=0):
        """Yield normalized (images, labels) batches of `epoch`, starting at batch `start_batch`."""
        index_batches = self.epoch_order(epoch)[start_batch:]
        if self.split.images.device.type == "cpu":
            batches = DataLoader(
                _GatherBatches(self.split),
                sampler=index_batches,
                batch_size=None,
                num_workers=self.num_workers,
                # Its own generator: each new iterator draws a worker seed, which must not advance the global
                # RNG (dropout uses it), or a run resumed mid-epoch would diverge from an uninterrupted one.
                generator=torch.Generator(),
            )
        else:  # the data already lives on the accelerator: gather there, no worker processes
            batches = ((self.split.images[indices], self.split.labels[indices]) for indices in index_batches)
        for images, labels in batches:
            if self.augment:
                images = augment_batch(images, self.augment_generator)
            yield normalize(images), labels


def eval_batches(split, batch_size):
    """Normalized (images, labels) batches of a split in order, without augmentation."""
    for start in range(0, len(split), batch_size):
        yield normalize(split.images[start : start + batch_size]), split.labels[start : start + batch_size]



@data_ingredient.capture
def train_batches(split, seed, batch_size, augment, num_workers):
    """The training batches of `split` as configured; `seed` fixes their order and augmentation."""
    return TrainBatches(split, batch_size, augment, seed, num_workers)
