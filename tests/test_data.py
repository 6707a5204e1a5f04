"""The data ingredient: generated CIFAR-10-format files, the shared reader, splits and batched augmentation."""
import pickle

import numpy as np
import pytest
import torch

from sacred import Experiment

from ingredients.batches import TrainBatches
from ingredients.cifar.data import (Split, augment_batch, data_ingredient, eval_batches, load_splits, normalize,
                                    read_split)
from ingredients.cifar.synthetic import CLASSES, IMAGES_PER_FILE, write_synthetic_cifar
from runstore.errors import UserError


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_synthetic_files_have_cifar10_format(data_root):
    folder = write_synthetic_cifar(data_root / "synthetic" / "cifar-10-batches-py")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                     "data_batch_5", "test_batch"]
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert batch["data"].dtype == np.uint8 and batch["data"].shape == (IMAGES_PER_FILE, 3072)
    assert len(batch["labels"]) == IMAGES_PER_FILE and set(batch["labels"]) == set(range(10))
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"] == CLASSES


def test_reader_returns_channel_first_uint8_images(data_root):
    images, labels, classes = read_split(train=True, dataset="synthetic", root=str(data_root))
    assert images.dtype == torch.uint8 and images.shape == (5 * IMAGES_PER_FILE, 3, 32, 32)
    assert labels.dtype == torch.int64 and classes == CLASSES
    test_images, _, _ = read_split(train=False, dataset="synthetic", root=str(data_root))
    assert test_images.shape == (IMAGES_PER_FILE, 3, 32, 32)


def test_generation_is_deterministic(tmp_path):
    first = write_synthetic_cifar(tmp_path / "a", images_per_file=50)
    second = write_synthetic_cifar(tmp_path / "b", images_per_file=50)
    assert (first / "test_batch").read_bytes() == (second / "test_batch").read_bytes()


def test_missing_cifar10_names_the_folder_and_the_offline_alternative(tmp_path):
    with pytest.raises(UserError) as error:
        read_split(train=True, dataset="cifar10", root=str(tmp_path))
    message = str(error.value)
    assert f"{tmp_path}/cifar-10-batches-py" in message and "data.dataset=synthetic" in message
    assert "\n" not in message


def splits_for(**data_config):
    """load_splits() inside a Sacred run whose data config is `data_config`."""
    ex = Experiment("splits", ingredients=[data_ingredient])
    ex.main(lambda: load_splits(device="cpu"))
    return ex.run(config_updates={"data": {"dataset": "synthetic", **data_config}}).result


def test_splits_are_disjoint_and_limited(data_root):
    train, val, test, classes = splits_for(root=str(data_root), val_fraction=0.1)
    assert (len(train), len(val), len(test)) == (9000, 1000, IMAGES_PER_FILE)
    train_and_val = torch.cat([train.images, val.images]).flatten(1)
    assert len(torch.unique(train_and_val, dim=0)) == len(train_and_val)  # no image in both
    limited = splits_for(root=str(data_root), limit=500)
    assert [len(s) for s in limited[:3]] == [500, 500, 500]


def test_batch_larger_than_the_training_split_is_a_user_error(data_root):
    with pytest.raises(UserError, match="data.batch_size=600"):
        splits_for(root=str(data_root), batch_size=600, limit=500)


def test_augmentation_crops_and_flips_every_image_independently():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 32, 32)
    images = images.repeat(64, 1, 1, 1)
    out = augment_batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for i in range(len(images)):  # each output is some 32×32 window of its padded input, maybe mirrored
        windows = padded[i].unfold(1, 32, 1).unfold(2, 32, 1).permute(1, 2, 0, 3, 4)
        matches = (windows == out[i]).flatten(2).all(-1) | (windows == out[i].flip(-1)).flatten(2).all(-1)
        assert matches.any()
    assert not torch.equal(out[0], out[2])  # different random crops for identical inputs


def test_training_order_depends_only_on_seed_and_epoch():
    split = Split(torch.zeros(100, 3, 32, 32, dtype=torch.uint8), torch.arange(100))
    a = TrainBatches(split.images, split.labels, batch_size=16, seed=1)
    b = TrainBatches(split.images, split.labels, batch_size=16, seed=1)
    assert [x.tolist() for x in a.epoch_order(3)] == [x.tolist() for x in b.epoch_order(3)]
    assert a.epoch_order(0)[0].tolist() != a.epoch_order(1)[0].tolist()
    assert a.batches_per_epoch == 6  # the incomplete last batch is dropped
    labels = [y for _, y in a.iterate(epoch=0, start_batch=4)]
    assert [y.tolist() for y in labels] == [x.tolist() for x in a.epoch_order(0)[4:]]


def test_worker_processes_deliver_the_same_batches():
    split = Split(torch.randint(0, 255, (64, 3, 32, 32), dtype=torch.uint8), torch.arange(64))
    in_process = list(TrainBatches(split.images, split.labels, 16, seed=5).iterate(0))
    with_workers = list(TrainBatches(split.images, split.labels, 16, seed=5, num_workers=2).iterate(0))
    for (x1, y1), (x2, y2) in zip(in_process, with_workers, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_normalize_and_eval_batches_cover_the_split_in_order():
    split = Split(torch.full((10, 3, 32, 32), 255, dtype=torch.uint8), torch.arange(10))
    batches = list(eval_batches(split, 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert torch.cat([y for _, y in batches]).tolist() == list(range(10))
    assert torch.allclose(batches[0][0][0, 0], normalize(split.images[:1])[0, 0])
