"""ingredients/cifar/data.py's data.stream: what the network sees of an image in each stream."""
import torch
import torch.nn.functional as F

from ingredients.cifar.data import COLOR_BLOCK, stream_view


def images():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 32, 32, generator=generator)


def test_rgb_is_the_image_itself():
    batch = images()
    assert stream_view(batch, "rgb") is batch


def test_color_keeps_each_blocks_mean_colour_and_no_detail():
    batch = images()
    view = stream_view(batch, "color")
    assert view.shape == batch.shape
    # Only the blocks' colours are left: pooled again, the view gives back the block means.
    blocks = F.avg_pool2d(batch, COLOR_BLOCK)
    assert torch.allclose(F.avg_pool2d(view, COLOR_BLOCK), blocks, atol=0.15)
    assert view.diff(dim=-1).abs().max() < batch.diff(dim=-1).abs().max() / 5


def test_shape_is_the_same_grayscale_edges_whatever_the_colour():
    gray = torch.zeros(1, 1, 32, 32)
    gray[..., 8:24, 8:24] = 1.0  # a square
    red, blue = gray * torch.tensor([3.0, 0, 0]).view(1, 3, 1, 1), gray * torch.tensor([0, 0, 3.0]).view(1, 3, 1, 1)
    edges_red, edges_blue = stream_view(red, "shape"), stream_view(blue, "shape")
    assert torch.allclose(edges_red, edges_blue)
    assert torch.equal(edges_red[:, 0], edges_red[:, 1])  # the same edges in all three channels
    assert edges_red[0, 0, 16, 16] == 0 and edges_red[0, 0, 16, 8] > 0  # flat inside, an edge on the border
