"""ingredients/examples.py: thumbnails of an image folder's test examples, PNGs as data: URIs, only from the data on
disk whose test split has the digest the run recorded."""
import base64
import io

from PIL import Image

from ingredients.examples import SIZE, thumbnails
from ingredients.fingerprint import files_fingerprint
from ingredients.images.data import scan_folder
from ingredients.images.synthetic import write_synthetic_folder

SPLITTING = dict(batch_size=1, val_fraction=0.2, test_fraction=0.2, split_seed=0)


def test_an_image_folders_test_examples_become_pngs_only_when_the_digest_matches(tmp_path):
    folder = write_synthetic_folder(tmp_path / "images", images_per_class=5)
    scanned = scan_folder(str(folder), **SPLITTING)
    files = [path for path, _ in scanned.splits["test"]]
    digest = files_fingerprint(folder, {"test": files}, "size")["splits"]["test"]
    config = {"data": {"root": str(folder), "size": 32, **SPLITTING}}
    found, note = thumbnails(config, digest, [0, 3])
    assert note is None and sorted(found) == [0, 3]
    header, encoded = found[3].split(",")
    assert header == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(encoded)), formats=["PNG"]) as picture:
        assert picture.size == (SIZE, SIZE) and picture.mode == "RGB"
        expected = Image.open(folder / files[3]).convert("RGB").resize((32, 32), Image.BILINEAR)
        assert picture.resize((32, 32), Image.NEAREST).getpixel((0, 0)) == expected.getpixel((0, 0))
    assert thumbnails(config, "0" * 16, [0]) == ({}, f"no thumbnails: the data on disk (split digest {digest}) is not "
                                                     f"what the run evaluated on ({'0' * 16})")
    missing = {"data": {**config["data"], "root": str(tmp_path / "gone")}}
    assert thumbnails(missing, digest, [0]) == ({}, f"no thumbnails: the run's data is not on disk here "
                                                    f"({tmp_path / 'gone'})")
    assert thumbnails({"data": {"n": 3}}, digest, [0]) == ({}, None)
