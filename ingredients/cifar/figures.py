"""PNG figures attached to a run: a grid of training images and the confusion matrix.

Drawn with PIL rather than matplotlib: an 8×8 grid of matplotlib subplots took 3-5 s, most of a short run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    import torch

# matplotlib's 'Blues' colormap, as its nine anchor colours (interpolated linearly, as matplotlib does).
BLUES = np.array([(247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
                  (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107)], dtype=np.float64)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def save_image_grid(images: torch.Tensor, labels: Sequence[str], path: str | os.PathLike[str], columns: int = 8,
                    scale: int = 3, title_px: int = 16, gap: int = 14) -> None:
    """Save uint8 images (N×3×H×W) with their class names above them as a grid."""
    count, _, height, width = images.shape
    rows = (count + columns - 1) // columns
    cell_w, cell_h = width * scale + gap, height * scale + title_px + gap
    canvas = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), WHITE)
    draw, title_font = ImageDraw.Draw(canvas), font(11)
    for index, (image, label) in enumerate(zip(images, labels)):
        left, top = gap + index % columns * cell_w, gap + index // columns * cell_h
        pixels = Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy()))
        canvas.paste(pixels.resize((width * scale, height * scale), Image.Resampling.NEAREST), (left, top + title_px))
        draw.text((left + width * scale / 2, top + title_px / 2), label, fill=BLACK, font=title_font, anchor="mm")
    canvas.save(path)


def blues(fractions: np.ndarray) -> np.ndarray:
    """RGB colours of the 'Blues' colormap for values in [0, 1]."""
    positions = np.clip(fractions, 0, 1) * (len(BLUES) - 1)
    low = np.minimum(positions.astype(int), len(BLUES) - 2)
    weight = (positions - low)[..., None]
    return ((1 - weight) * BLUES[low] + weight * BLUES[low + 1]).round().astype(np.uint8)


def rotated_text(text: str, text_font: ImageFont.FreeTypeFont | ImageFont.ImageFont, angle: float) -> Image.Image:
    """`text` in black on a transparent image turned by `angle` degrees (counter-clockwise)."""
    left, top, right, bottom = text_font.getbbox(text)
    # FreeTypeFont.getbbox is typed as floats but gives ints (pixel bounds).
    label = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))  # type: ignore[arg-type]
    ImageDraw.Draw(label).text((1 - left, 1 - top), text, fill=BLACK, font=text_font)
    return label.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)


def save_confusion_matrix(confusion: torch.Tensor, classes: Sequence[str], path: str | os.PathLike[str], cell: int = 48,
                          margin: tuple[int, int, int, int] = (110, 20, 30, 95)) -> None:
    """Save a confusion matrix (rows: true class, columns: predicted class) with counts in the cells."""
    counts = confusion.numpy()
    size = len(classes)
    left, top, right, bottom = margin
    canvas = Image.new("RGB", (left + size * cell + right, top + size * cell + bottom), WHITE)
    colours = blues(counts / max(counts.max(), 1))
    cells = Image.fromarray(colours).resize((size * cell, size * cell), Image.Resampling.NEAREST)
    canvas.paste(cells, (left, top))
    draw, small, large = ImageDraw.Draw(canvas), font(11), font(14)
    draw.rectangle((left - 1, top - 1, left + size * cell, top + size * cell), outline=BLACK)
    threshold = counts.max() / 2
    for row in range(size):
        for col in range(size):
            draw.text((left + (col + 0.5) * cell, top + (row + 0.5) * cell), str(counts[row, col]), font=small,
                      fill=WHITE if counts[row, col] > threshold else BLACK, anchor="mm")
    for index, name in enumerate(classes):
        centre = top + (index + 0.5) * cell
        draw.text((left - 8, centre), name, fill=BLACK, font=small, anchor="rm")
        label = rotated_text(name, small, 45)
        # The rotated label's top right corner sits under its column's centre, as matplotlib's ha='right'.
        x = left + (index + 0.5) * cell - label.width + 4
        canvas.paste(label, (int(x), top + size * cell + 6), label)
    draw.text((left + size * cell / 2, canvas.height - 12), "predicted", fill=BLACK, font=large, anchor="mm")
    ylabel = rotated_text("true", large, 90)
    canvas.paste(ylabel, (12, int(top + size * cell / 2 - ylabel.height / 2)), ylabel)
    canvas.save(path)
