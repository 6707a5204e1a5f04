"""The generated image folder is written aside in a folder no other user can have made first, then renamed."""
import os

from ingredients.cifar.synthetic import CLASSES
from ingredients.images.synthetic import write_synthetic_folder


def test_a_folder_planted_at_the_process_name_is_never_written_through(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = tmp_path / "data" / f".images.{os.getpid()}"  # where the folder was once written aside
    planted.mkdir(parents=True)
    os.symlink(elsewhere, planted / CLASSES[0])
    folder = write_synthetic_folder(tmp_path / "data" / "images", images_per_class=1)
    assert not any(elsewhere.iterdir())
    assert sorted(path.name for path in folder.iterdir()) == sorted(CLASSES)
    assert folder.stat().st_mode & 0o777 == 0o755
