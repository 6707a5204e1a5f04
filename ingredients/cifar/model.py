"""The `model` ingredient of CIFAR-10: the image classifier being trained, chosen by `model.arch`."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from sacred import Ingredient

from ingredients.checks import check_bool, check_choice, check_number, check_positive_int
from ingredients.cifar.data import normalize

if TYPE_CHECKING:
    import logging

WHITENING_IMAGES = 5000  # training images whose 2×2 patches set airbench's whitening layer

model_ingredient = Ingredient("model", base_dir=Path(__file__).resolve().parents[2])


@model_ingredient.config
def config() -> None:
    arch = "resnet18"  # 'simple' (a small CNN), 'resnet18' (CIFAR-style ResNet-18) or 'airbench' (airbench94's net)
    width = 64  # channels of the first stage; later stages double it (airbench: width, 4·width, 4·width)
    dropout = 0.0  # dropout before the classifier
    label_smoothing = 0.0  # cross-entropy label smoothing (airbench94: 0.2)
    tta = False  # evaluate on the mean of the outputs for the image, its mirror and their 1-pixel translations


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(in_features, num_classes))


def simple_cnn(width: int, dropout: float, num_classes: int) -> nn.Sequential:
    """Three conv stages (width, 2·width, 4·width), each halving the resolution."""
    return nn.Sequential(
        conv_bn_relu(3, width),
        conv_bn_relu(width, width),
        nn.MaxPool2d(2),
        conv_bn_relu(width, 2 * width),
        nn.MaxPool2d(2),
        conv_bn_relu(2 * width, 4 * width),
        nn.MaxPool2d(2),
        classifier(4 * width, num_classes, dropout),
    )


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels, stride),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def resnet18(width: int, dropout: float, num_classes: int) -> nn.Sequential:
    """ResNet-18 for 32×32 inputs: a 3×3 stem without max-pooling, then four stages of two blocks."""
    layers: list[nn.Module] = [conv_bn_relu(3, width)]
    in_channels = width
    for stage, channels in enumerate([width, 2 * width, 4 * width, 8 * width]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(in_channels, channels, stride))
            in_channels = channels
    layers.append(classifier(in_channels, num_classes, dropout))
    return nn.Sequential(*layers)


class Airbench(nn.Module):
    """airbench94's network (Keller Jordan): a frozen 2×2 patch-whitening convolution, then three groups of
    conv → max-pool → BatchNorm → GELU → conv → BatchNorm → GELU, a global max-pool and an unbiased linear layer.

    The whitening filters are set from training patches by `init_whitening` (see CifarTask.create_model).
    """

    WHITENING_KERNEL = 2
    OUTPUT_SCALE = 1 / 9  # airbench scales the logits down; its learning rates assume it

    def __init__(self, width: int, dropout: float, num_classes: int) -> None:
        super().__init__()
        patch_size = 3 * self.WHITENING_KERNEL**2
        # Each eigenvector of the patch covariance and its negative: GELU keeps both signs' information.
        self.whiten = nn.Conv2d(3, 2 * patch_size, self.WHITENING_KERNEL, bias=True)
        self.whiten.weight.requires_grad_(False)
        widths = [2 * patch_size, width, 4 * width, 4 * width]
        self.groups = nn.Sequential(*[self.conv_group(a, b) for a, b in zip(widths, widths[1:])])
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(widths[-1], num_classes, bias=False))

    @staticmethod
    def conv_group(in_channels: int, out_channels: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.MaxPool2d(2),
            nn.BatchNorm2d(out_channels, momentum=0.4, eps=1e-12), nn.GELU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=0.4, eps=1e-12), nn.GELU(),
        )

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Whitening filters from the 2×2 patches of `images` (normalized, N×3×H×W): the patch covariance's
        eigenvectors scaled by 1/sqrt(eigenvalue + eps), so the first layer's outputs are decorrelated."""
        patches = F.unfold(images.float(), self.WHITENING_KERNEL).transpose(1, 2).reshape(-1, self.whiten.in_channels
                                                                                            * self.WHITENING_KERNEL**2)
        patches = patches - patches.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors / torch.sqrt(eigenvalues + eps)).T.reshape(-1, *self.whiten.weight.shape[1:])
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))
        self.whiten.bias.zero_()  # type: ignore[union-attr]  # never None: the layer is made with bias=True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.groups(F.gelu(self.whiten(x)))) * self.OUTPUT_SCALE


def airbench(width: int, dropout: float, num_classes: int) -> Airbench:
    return Airbench(width, dropout, num_classes)


ARCHITECTURES = {"simple": simple_cnn, "resnet18": resnet18, "airbench": airbench}


@model_ingredient.config_hook
def validate(config: dict[str, Any], command_name: str, logger: logging.Logger) -> dict[str, Any]:
    cfg = config["model"]
    check_choice("model.arch", cfg["arch"], ARCHITECTURES)
    check_positive_int("model.width", cfg["width"], example=64)
    check_number("model.dropout", cfg["dropout"], low=0, high=1)
    check_number("model.label_smoothing", cfg["label_smoothing"], low=0, high=1, example=0.2)
    check_bool("model.tta", cfg["tta"])
    return {}


@model_ingredient.capture
def build_model(num_classes: int, arch: str, width: int, dropout: float,
                train_images: torch.Tensor | None = None) -> nn.Module:
    """The network named by `arch`, for `num_classes` outputs; `train_images` (uint8) set airbench's whitening."""
    model: Any = ARCHITECTURES[arch](width, dropout, num_classes)  # an Airbench (init_whitening) for 'airbench'
    if arch == "airbench" and train_images is not None:
        model.init_whitening(normalize(train_images[:WHITENING_IMAGES]))
    return model


@model_ingredient.capture
def make_loss(label_smoothing: float) -> nn.CrossEntropyLoss:
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


@model_ingredient.capture
def predict(model: nn.Module, images: torch.Tensor, tta: bool) -> torch.Tensor:
    """The model's outputs for a batch of images; with `tta`, the mean over the image, its mirror and both
    translated by one pixel up-left and down-right (edges repeated), as airbench evaluates."""
    if not tta:
        return model(images)
    return torch.stack([model(view) for view in tta_views(images)]).mean(0)


def tta_views(images: torch.Tensor) -> list[torch.Tensor]:
    """The image, then translated up-left and down-right by one pixel, each also mirrored: 6 views."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    shifted = [images, padded[..., :height, :width], padded[..., 2:, 2:]]
    return [view for image in shifted for view in (image, image.flip(-1))]
