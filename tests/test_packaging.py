"""The built wheel holds every package: installed into a fresh virtual environment, away from this checkout, its
`tracker` command and a short smoke run of its CIFAR experiment work from an empty folder, which holds what they
write."""
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO_ROOT, python_env


def test_the_installed_wheel_runs_tracker_and_a_smoke_run(tmp_path, mongo_url, db_name):
    def run(*command, cwd=tmp_path, **env):
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                                env={**python_env(**env), "PYTHONPATH": ""})
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
        str(REPO_ROOT))
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ingredients/cifar/data.py" in names and "ingredients/signals/task.py" in names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/"))]

    # Torch and the other dependencies come from this interpreter; the project itself only from the wheel.
    run(sys.executable, "-m", "venv", "--system-site-packages", str(tmp_path / "venv"))
    python = tmp_path / "venv" / "bin" / "python"
    run(str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel))
    location = run(str(python), "-c", "import experiments; print(experiments.__file__)")
    assert location.startswith(str(tmp_path / "venv")), location

    tracker = str(tmp_path / "venv" / "bin" / "tracker")
    assert "sweep" in run(tracker, "--help")
    # From an empty folder outside any checkout, with no database: the run and its data go there, not into
    # site-packages, and `tracker runs` there lists the run.
    empty = tmp_path / "empty"
    empty.mkdir()
    output = run(str(python), "-m", "experiments.cifar", "with", "smoke", "trainer.steps=20", "trainer.val_every=10",
                 "data.limit=500", "trainer.progress=False", cwd=empty, MONGO_URL="mongodb://127.0.0.1:1")
    assert "Validation at step 20/20" in output
    assert (empty / "runs" / "1" / "run.json").is_file() and (empty / "data" / "synthetic").is_dir()
    site_packages = Path(location).parent.parent
    assert not (site_packages / "runs").exists() and not (site_packages / "data").exists()
    listed = run(tracker, "runs", cwd=empty, MONGO_URL="mongodb://127.0.0.1:1")
    assert "runs/1" in listed and "COMPLETED" in listed, listed
