"""The `model` ingredient of CIFAR-10: the image classifier being trained, chosen by `model.arch`."""
from pathlib import Path

import torch.nn as nn
from sacred import Ingredient

from ingredients.checks import check_choice, check_number, check_positive_int

model_ingredient = Ingredient("model", base_dir=Path(__file__).resolve().parents[2])


@model_ingredient.config
def config():
    arch = "resnet18"  # 'simple' (a small CNN) or 'resnet18' (CIFAR-style ResNet-18)
    width = 64  # channels of the first stage; later stages double it
    dropout = 0.0  # dropout before the classifier


def conv_bn_relu(in_channels, out_channels, stride=1):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def classifier(in_features, num_classes, dropout):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_features, num_classes))


def simple_cnn(width, dropout, num_classes):
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

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels, stride),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def resnet18(width, dropout, num_classes):
    """ResNet-18 for 32×32 inputs: a 3×3 stem without max-pooling, then four stages of two blocks."""
    layers = [conv_bn_relu(3, width)]
    in_channels = width
    for stage, channels in enumerate([width, 2 * width, 4 * width, 8 * width]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(in_channels, channels, stride))
            in_channels = channels
    layers.append(classifier(in_channels, num_classes, dropout))
    return nn.Sequential(*layers)


ARCHITECTURES = {"simple": simple_cnn, "resnet18": resnet18}


@model_ingredient.config_hook
def validate(config, command_name, logger):
    cfg = config["model"]
    check_choice("model.arch", cfg["arch"], ARCHITECTURES)
    check_positive_int("model.width", cfg["width"], example=64)
    check_number("model.dropout", cfg["dropout"], low=0, high=1)
    return {}


@model_ingredient.capture
def build_model(num_classes, arch, width, dropout):
    """The network named by `arch`, for `num_classes` outputs."""
    return ARCHITECTURES[arch](width, dropout, num_classes)
