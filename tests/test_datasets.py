"""The trainer's Dataset path (ingredients.batches.DatasetBatches) and the data fingerprint, in process."""
import random

import numpy as np
import pytest
import torch

from ingredients.batches import DatasetBatches, DatasetEvalBatches, TrainBatches
from ingredients.fingerprint import files_fingerprint, fingerprint
from ingredients.images.data import ImageFiles
from ingredients.task import Data, Datasets
from runstore.errors import UserError

CPU = torch.device("cpu")


class NoisyItems(torch.utils.data.Dataset):
    """Items whose 'augmentation' draws from torch's, NumPy's and Python's global random numbers."""

    def __len__(self):
        return 22

    def __getitem__(self, index):
        noise = torch.rand(2).tolist() + [np.random.rand(), random.random()]
        return torch.tensor([float(index), *noise]), index


def batches_of(epoch, start_batch=0, num_workers=0, seed=5):
    batches = DatasetBatches(NoisyItems(), batch_size=4, seed=seed, device=CPU, num_workers=num_workers)
    return [inputs for inputs, _ in batches.iterate(epoch, start_batch)]


def test_a_resumed_epoch_with_workers_gives_the_uninterrupted_batches():
    uninterrupted = batches_of(epoch=1)
    assert len(uninterrupted) == 5  # 22 items in batches of 4: the incomplete batch is dropped
    resumed = batches_of(epoch=1, start_batch=2, num_workers=2)
    assert len(resumed) == 3
    for batch, again in zip(uninterrupted[2:], resumed):
        assert torch.equal(batch, again)


def test_order_and_augmentation_depend_on_seed_and_epoch_only():
    first = torch.cat(batches_of(epoch=0))
    assert torch.equal(first, torch.cat(batches_of(epoch=0)))
    assert not torch.equal(first[:, 0], torch.cat(batches_of(epoch=1))[:, 0])  # another order
    assert not torch.equal(first, torch.cat(batches_of(epoch=0, seed=6)))
    # The same item in two epochs is augmented differently.
    other = {row[0].item(): row[1:] for row in torch.cat(batches_of(epoch=1))}
    assert any(not torch.equal(row[1:], other[row[0].item()]) for row in first if row[0].item() in other)


def test_items_read_in_the_training_process_leave_its_random_numbers_alone():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    batches_of(epoch=0)
    assert torch.equal(torch.rand(3), expected)


def test_file_fingerprint_tells_content_and_splits_apart(tmp_path):
    for name, content in (("a/1.png", b"one"), ("a/2.png", b"two"), ("b/3.png", b"three")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(content)
    splits = {"train": ["a/1.png", "b/3.png"], "val": ["a/2.png"], "test": ["a/2.png"]}
    first = files_fingerprint(tmp_path, splits)
    assert first["counts"] == {"train": 2, "val": 1, "test": 1} and first["rule"] == "content"

    resplit = files_fingerprint(tmp_path, {"train": ["a/2.png", "b/3.png"], "val": ["a/1.png"], "test": ["a/1.png"]})
    assert resplit["digest"] == first["digest"] and resplit["splits"]["train"] != first["splits"]["train"]

    (tmp_path / "a/2.png").write_bytes(b"TWO")  # same size, other content
    changed = files_fingerprint(tmp_path, splits)
    assert changed["digest"] != first["digest"] and changed["splits"] == first["splits"]
    assert files_fingerprint(tmp_path, splits, rule="size")["digest"] == \
        files_fingerprint(tmp_path.rename(tmp_path.with_name("moved")), splits, rule="size")["digest"]


def test_tensor_and_dataset_fingerprints_follow_the_items():
    inputs, targets = torch.arange(24.0).reshape(12, 2), torch.arange(12)

    def in_memory(order):
        return fingerprint(Data(*(TrainBatches(inputs[order[i::3]], targets[order[i::3]], 2, 0) for i in range(3))))

    same, shuffled = in_memory(torch.arange(12)), in_memory(torch.arange(12).flip(0))
    assert same["digest"] == shuffled["digest"] and same["counts"] == {"train": 4, "val": 4, "test": 4}
    assert same["splits"] != shuffled["splits"]
    noisy = Datasets(NoisyItems(), NoisyItems(), NoisyItems(), batch_size=4, eval_batch_size=4)
    assert fingerprint(noisy) == fingerprint(noisy)  # random transforms are seeded alike


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataset_batches_follow_the_in_memory_order(num_workers):
    items = torch.cat([torch.cat(batches_of(epoch=3, num_workers=num_workers))])
    memory = TrainBatches(torch.arange(22), torch.arange(22), batch_size=4, seed=5)
    assert items[:, 0].long().tolist() == torch.cat([i for i, _ in memory.iterate(3)]).tolist()


def test_an_unreadable_image_read_by_a_worker_is_one_line(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "0.png").write_bytes(b"not a png")
    images = ImageFiles(tmp_path, [("cat/0.png", 0)], size=8, augment=False)
    with pytest.raises(UserError) as raised:
        list(DatasetEvalBatches(images, 1, CPU, num_workers=1))
    assert str(raised.value).startswith(f"{str(tmp_path / 'cat' / '0.png')!r} is not a readable PNG or JPEG image")
    assert len(str(raised.value).splitlines()) == 1
