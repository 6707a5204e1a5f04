"""Images/s of the image-folder path (experiments/images.py) with 0 and 2 DataLoader workers, against the in-memory
path on the same images, side by side, with the trainer's time.data_ms (waiting for a batch) and time.step_ms.

    python benchmarks/image_folder_speed.py [--steps 60] [--workers 0 2] [--batch-size 64] [--width 16]

Each setting trains `smoke`'s network for --steps steps on the generated folder (data/synthetic-images/, 32×32 PNG
files). 'memory' decodes every image once into a uint8 tensor and trains from ingredients.batches.TrainBatches with
the same augmentation, batched; the Dataset path decodes and augments each image in the workers. The first logged
window (start-up, the workers' first batches) is left out of the times. Runs are unobserved (-u).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

import experiments.images as images  # noqa: E402
from ingredients import trainer  # noqa: E402
from ingredients.batches import EvalBatches, TrainBatches  # noqa: E402
from ingredients.cifar.data import augment_batch, normalize  # noqa: E402
from ingredients.images.data import read_image  # noqa: E402
from ingredients.images.task import ImageFolderTask  # noqa: E402
from ingredients.task import Data  # noqa: E402

WINDOWS = []  # the trainer's logged training windows (time.data_ms, time.step_ms, examples_per_s)


class InMemoryImageTask(ImageFolderTask):
    """The same folder's images, decoded once and held as tensors: the in-memory path."""

    def create_data(self, device, seed):
        datasets = super().create_data(device, seed)

        def tensors(dataset):
            images = torch.stack([read_image(dataset.root / path, dataset.size) for path in dataset.files])
            return images, torch.tensor(dataset.labels)

        train = TrainBatches(*tensors(datasets.train), datasets.batch_size, seed,
                             transform=lambda batch, generator: normalize(augment_batch(batch, generator)))
        return Data(train, *(EvalBatches(*tensors(split), datasets.eval_batch_size, transform=normalize)
                             for split in (datasets.val, datasets.test)))


def keep_windows(log_window):
    def logged(self, window, lr):
        WINDOWS.append(log_window(self, window, lr))
        return WINDOWS[-1]

    return logged


def measure(task, steps, batch_size, width, num_workers):
    images.ImageFolderTask = task
    WINDOWS.clear()
    config = {"data": {"num_workers": num_workers, "batch_size": batch_size}, "model": {"width": width},
              "trainer": {"steps": steps, "val_every": steps, "log_every": 10, "print_every": steps,
                          "checkpoint_every": steps, "progress": False}}
    started = time.perf_counter()
    images.ex.run(named_configs=["smoke"], config_updates=config,
                  options={"--unobserved": True, "--loglevel": "WARNING"})
    windows = WINDOWS[1:] or WINDOWS
    return {
        "images_per_s": statistics.mean(w["examples_per_s"] for w in windows),
        "data_ms": statistics.mean(w["time.data_ms"] for w in windows),
        "step_ms": statistics.mean(w["time.step_ms"] for w in windows),
        "wall_s": time.perf_counter() - started,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="training steps per setting (default: 60)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts (default: 0 2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="model.width of the simple CNN (default: 16)")
    args = parser.parse_args()
    trainer.Trainer.log_window = keep_windows(trainer.Trainer.log_window)
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {device}; batch {args.batch_size}, {args.steps} steps, simple CNN width {args.width}")
    settings = [("memory", InMemoryImageTask, 0)] + [(f"folder, {n} workers", ImageFolderTask, n) for n in args.workers]
    results = [(name, measure(task, args.steps, args.batch_size, args.width, n)) for name, task, n in settings]
    memory = results[0][1]["images_per_s"]
    print(f"{'path':<20} {'images/s':>9} {'vs memory':>9} {'data_ms':>8} {'step_ms':>8} {'wall_s':>7}")
    for name, result in results:
        print(f"{name:<20} {result['images_per_s']:9.0f} {result['images_per_s'] / memory:8.2f}x "
              f"{result['data_ms']:8.1f} {result['step_ms']:8.1f} {result['wall_s']:7.1f}")


if __name__ == "__main__":
    main()
