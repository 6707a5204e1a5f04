"""Thumbnails of a run's examples of one split, by example id (its position in the split), for the paired verdict's
most-disagreeing examples (tracker report, tracker ui): PNGs made with PIL, as data: URIs.

They are read from the data on disk that the run's config names (CIFAR's data.dataset and data.root, or an image
folder's data.root), never generated or downloaded, and only when the split's fingerprint on disk is the digest the
run recorded with its predictions; otherwise a note says why there are none."""
from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    # (id -> uint8 3×H×W image, the test split's digest), or (None, the missing folder)
    TestImages = tuple[Callable[[int], np.ndarray], str] | tuple[None, Path]

SIZE = 48  # pixels a side of a thumbnail


def thumbnails(config: Mapping[str, Any], digest: str | None, ids: Iterable[int]) -> tuple[dict[int, str], str | None]:
    """({id: data URI of a PNG}, None), or ({}, a note saying why there are none), for the examples `ids` of the
    test split that a run with `config` evaluated, whose fingerprint it recorded as `digest`; ({}, None) for data
    that are not images."""
    data = config.get("data") or {}
    from runstore.errors import UserError

    try:
        if "dataset" in data and "limit" in data:
            images, found = _cifar_test(data)
        elif "split_seed" in data and "size" in data:
            images, found = _folder_test(data)
        else:
            return {}, None
    except UserError as error:  # the folder on disk is no longer what the run read
        return {}, f"no thumbnails: {error}"
    if images is None:
        return {}, f"no thumbnails: the run's data is not on disk here ({found})"
    if found != digest:
        return {}, (f"no thumbnails: the data on disk (split digest {found}) is not what the run evaluated on "
                    f"({digest})")
    return {int(index): _data_uri(images(int(index))) for index in ids}, None


def _cifar_test(data: Mapping[str, Any]) -> TestImages:
    """(id -> uint8 3×H×W image, the test split's digest), or (None, the missing folder). The test split is the
    test batch's first data.limit images (ingredients.cifar.data.load_splits)."""
    from ingredients.batches import EvalBatches
    from ingredients.cifar.data import FOLDER, read_split, resolve
    from ingredients.fingerprint import split_digest

    folder = resolve(data["root"]) / ("synthetic" if data["dataset"] == "synthetic" else "") / FOLDER
    if not folder.is_dir():
        return None, folder
    images, labels, _ = read_split(False, data["dataset"], data["root"])
    images, labels = images[:data["limit"]], labels[:data["limit"]]
    return (lambda index: images[index].numpy()), split_digest(EvalBatches(images, labels, len(labels)))


def _folder_test(data: Mapping[str, Any]) -> TestImages:
    """(id -> uint8 3×H×W image, the test split's digest), or (None, the missing folder)."""
    from ingredients.fingerprint import files_fingerprint
    from ingredients.images.data import REPO_ROOT, SYNTHETIC, image_folder, read_image, scan_folder
    from runstore.settings import project_root

    folder = project_root(REPO_ROOT) / SYNTHETIC if data["root"] is None else image_folder(data["root"])
    if not folder.is_dir():
        return None, folder
    scanned = scan_folder(str(folder), data["batch_size"], data["val_fraction"], data["test_fraction"],
                          data["split_seed"])
    files = [path for path, _ in scanned.splits["test"]]
    digest = files_fingerprint(scanned.root, {"test": files}, "size")["splits"]["test"]
    return (lambda index: read_image(scanned.root / files[index], data["size"]).numpy()), digest


def _data_uri(image: np.ndarray) -> str:
    """A uint8 3×H×W image as a data: URI of a SIZE×SIZE PNG."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).resize(
        (SIZE, SIZE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
