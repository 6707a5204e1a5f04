"""What the data fingerprint (ingredients/fingerprint.py) adds to a run's start, for an image folder of N files.

    python benchmarks/fingerprint_cost.py [--files 10000]

Writes N small PNG files (the generated shapes, 32×32, one sub-folder per class) to a temporary folder, then times,
side by side, the folder scan that every image-folder run makes anyway (ingredients.images.data.scan_folder) and the
fingerprint with each rule: 'content' (reads and hashes every file, the default) and 'size' (paths and sizes only).
The files were just written, so they are in the page cache: a first read from a cold disk is slower.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from ingredients.cifar.synthetic import CLASSES  # noqa: E402
from ingredients.fingerprint import files_fingerprint  # noqa: E402
from ingredients.images import data  # noqa: E402
from ingredients.images.synthetic import write_synthetic_folder  # noqa: E402

REPEATS = 5


def timed(function):
    """The median seconds of REPEATS calls, and the last result."""
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="PNG files in the folder (default: 10000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = write_synthetic_folder(Path(temp) / "images", images_per_class=args.files // len(CLASSES))
        megabytes = sum(path.stat().st_size for path in root.rglob("*.png")) / 1e6
        scan_s, folder = timed(lambda: data.scan_folder(str(root), 64, 0.1, 0.1, 0))
        splits = {name: [path for path, _ in items] for name, items in folder.splits.items()}
        files = sum(len(paths) for paths in splits.values())
        print(f"{files} PNG files, {megabytes:.1f} MB, median of {REPEATS}:")
        print(f"  scan of the folder (every run)      {1000 * scan_s:8.1f} ms")
        for rule in ("content", "size"):
            seconds, _ = timed(lambda: files_fingerprint(root, splits, rule))  # noqa: B023 - called in this iteration
            print(f"  fingerprint, rule '{rule}'{' ' * (11 - len(rule))}  {1000 * seconds:8.1f} ms "
                  f"({1e6 * seconds / files:.0f} µs per file, {seconds / scan_s:.1f}x the scan)")


if __name__ == "__main__":
    main()
