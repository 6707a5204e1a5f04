"""ingredients/batches.py's order of an epoch, item seeds and ranks' evaluation batches, ingredients/metrics.py's
sums, what DDP's ranks send each other (ingredients/distributed.py), and ingredients/fingerprint.py's digests.

The one unit-test file that imports torch (~2 s).
"""
import pickle
import random

import numpy as np
import pytest
import torch

from ingredients.batches import epoch_order, eval_batch_ranges, item_seed, seeded_random
from ingredients.distributed import from_bytes, to_bytes
from ingredients.metrics import RegressionMetrics
from ingredients.fingerprint import DIGITS, files_fingerprint, items_fingerprint


def as_lists(batches):
    return [batch.tolist() for batch in batches]


@pytest.mark.parametrize("num_items, batch_size", [(100, 16), (64, 16), (5, 5), (7, 1)])
def test_an_epoch_is_disjoint_full_batches_of_a_permutation(num_items, batch_size):
    batches = as_lists(epoch_order(num_items, batch_size, seed=3, epoch=2))
    assert len(batches) == num_items // batch_size and all(len(batch) == batch_size for batch in batches)
    flat = [index for batch in batches for index in batch]
    assert len(set(flat)) == len(flat) and set(flat) <= set(range(num_items))


def test_the_order_is_a_function_of_seed_and_epoch_alone():
    first = as_lists(epoch_order(50, 10, seed=1, epoch=4))
    torch.manual_seed(123)  # the global generator plays no part
    torch.rand(10)
    assert as_lists(epoch_order(50, 10, seed=1, epoch=4)) == first
    others = [as_lists(epoch_order(50, 10, seed, epoch)) for seed, epoch in ((1, 5), (2, 4), (0, 0))]
    assert all(other != first for other in others)


@pytest.mark.parametrize("num_items, batch_size, world_size", [(200, 16, 2), (200, 16, 3), (100, 50, 2), (7, 1, 4)])
def test_the_ranks_evaluate_a_single_process_batches_between_them(num_items, batch_size, world_size):
    ranks = [eval_batch_ranges(num_items, batch_size, rank, world_size) for rank in range(world_size)]
    assert [batch for rank in ranks for batch in rank] == eval_batch_ranges(num_items, batch_size)
    assert all(ranks)  # every rank evaluates


def test_with_fewer_batches_than_ranks_each_rank_evaluates_its_share_of_the_items():
    assert [eval_batch_ranges(1000, 2000, rank, 2) for rank in range(2)] == [[(0, 500)], [(500, 1000)]]


def test_metric_sums_of_float32_batches_add_up_alike_in_any_order():
    values = torch.rand(64, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 3, 64)
    forwards, backwards = RegressionMetrics(), RegressionMetrics()
    for metrics, order in ((forwards, values), (backwards, values.flip(0))):
        for value in order:
            metrics.update(value.reshape(1), torch.zeros(1), value)
    assert forwards.sums["loss"].dtype == torch.float64
    assert forwards.compute() == backwards.compute()
    assert float32_sum(values) != float32_sum(values.flip(0))  # where float32 sums depend on the order


class Payload:
    def __reduce__(self):
        return (print, ("this ran",))


def test_ranks_exchange_checkpoint_values_and_never_unpickle_code(capsys):
    value = {"torch_rng": torch.get_rng_state(), "window": {"steps": 3, "examples": [1.5, None, "x"]}}
    received = from_bytes(to_bytes(value))
    assert torch.equal(received["torch_rng"], value["torch_rng"]) and received["window"] == value["window"]
    with pytest.raises(pickle.UnpicklingError):
        from_bytes(to_bytes({"evil": Payload()}))
    assert "this ran" not in capsys.readouterr().out


def float32_sum(values):
    total = torch.zeros(())
    for value in values:
        total += value
    return total


def test_item_seeds_depend_on_seed_epoch_and_index():
    seeds = {item_seed(seed, epoch, index) for seed in (0, 1) for epoch in (0, 1) for index in (0, 1, 2)}
    assert len(seeds) == 12 and item_seed(1, 0, 2) == item_seed(1, 0, 2)
    assert all(0 <= seed < 2**32 for seed in seeds)


def test_seeded_random_repeats_its_numbers_and_leaves_the_global_ones_as_they_were():
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    expected = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    draws = []
    for _ in range(2):
        with seeded_random(42):
            draws.append((torch.rand(1).item(), np.random.rand(), random.random()))
    assert draws[0] == draws[1]
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == expected


@pytest.fixture
def files(tmp_path):
    for name, content in {"a/1.png": b"one", "a/2.png": b"two", "b/3.png": b"three", "b/4.png": b"four"}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(content)
    return tmp_path


SPLITS = {"train": ["a/1.png", "a/2.png"], "val": ["b/3.png"], "test": ["b/4.png"]}


def test_a_files_fingerprint_counts_and_digests_each_split(files):
    found = files_fingerprint(files, SPLITS)
    assert found["rule"] == "content" and found["counts"] == {"train": 2, "val": 1, "test": 1}
    digests = [found["digest"], *found["splits"].values()]
    assert all(len(digest) == DIGITS and int(digest, 16) >= 0 for digest in digests) and len(set(digests)) == 4


def test_the_data_digest_ignores_how_the_files_are_split_and_listed(files):
    found = files_fingerprint(files, SPLITS)
    resplit = files_fingerprint(files, {"train": ["a/2.png", "b/3.png", "a/1.png"], "val": ["b/4.png"], "test": []})
    assert resplit["digest"] == found["digest"] and resplit["splits"]["train"] != found["splits"]["train"]
    shuffled = files_fingerprint(files, {name: members[::-1] for name, members in SPLITS.items()})
    assert shuffled == found


def test_content_digests_see_every_byte_and_size_digests_only_sizes(files):
    before = {rule: files_fingerprint(files, SPLITS, rule) for rule in ("content", "size")}
    (files / "a/1.png").write_bytes(b"One")  # same size, other content
    after = {rule: files_fingerprint(files, SPLITS, rule) for rule in ("content", "size")}
    assert after["content"]["digest"] != before["content"]["digest"]
    assert after["size"] == before["size"] and after["size"]["rule"] == "size"
    assert after["content"]["splits"] == before["content"]["splits"]  # membership, not content
    (files / "a/1.png").write_bytes(b"longer")
    assert files_fingerprint(files, SPLITS, "size")["digest"] != before["size"]["digest"]


def test_an_items_fingerprint_ignores_item_order_but_not_membership():
    hashes = [bytes([i]) * 32 for i in range(6)]
    found = items_fingerprint({"train": hashes[:4], "val": hashes[4:5], "test": hashes[5:]})
    assert found["rule"] == "tensors" and found["counts"] == {"train": 4, "val": 1, "test": 1}
    reordered = items_fingerprint({"train": hashes[3::-1], "val": hashes[4:5], "test": hashes[5:]})
    assert reordered == found
    moved = items_fingerprint({"train": hashes[:3], "val": hashes[3:5], "test": hashes[5:]})
    assert moved["digest"] == found["digest"] and moved["splits"]["val"] != found["splits"]["val"]
