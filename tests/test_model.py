"""The model ingredient: architectures, their config, and errors for unknown ones."""
import pytest
import torch

from experiments.cifar import ex
from ingredients.cifar.model import ARCHITECTURES, build_model
from runstore.errors import UserError


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_map_cifar_images_to_class_scores(arch):
    model = build_model(num_classes=10, arch=arch, width=8, dropout=0.1)
    scores = model(torch.randn(4, 3, 32, 32))
    assert scores.shape == (4, 10)
    scores.sum().backward()  # trainable end to end


def test_width_scales_the_network():
    def count(width):
        return sum(p.numel() for p in build_model(num_classes=10, arch="resnet18", width=width, dropout=0).parameters())

    assert count(16) < count(32)
    assert 11_000_000 < count(64) < 11_300_000  # the standard CIFAR ResNet-18 has ~11.2M parameters


def test_dropout_is_configurable():
    model = build_model(num_classes=10, arch="simple", width=8, dropout=0.5)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())


def test_unknown_arch_is_an_error_listing_the_choices():
    with pytest.raises(UserError, match="model.arch='nope' is unknown; choose one of simple, resnet18"):
        ex.run("print_config", config_updates={"model": {"arch": "nope"}})
