"""Speed of the `fast` config (airbench94's recipe): time to 94 % on CIFAR-10 on a GPU, images/s on a CPU.

    python benchmarks/cifar_speed.py [--seeds 5] [--compile]     # CUDA: real CIFAR-10 in data/, whole `fast` runs
    python benchmarks/cifar_speed.py --steps 3                    # CPU: synthetic data, `fast` vs `smoke`'s network

On CUDA it runs `fast` once as a warm-up (cuDNN autotuning, and torch.compile with --compile), then once per seed,
and reports apart, as airbench does: the time to read the data, the warm-up run, and the training time (the
trainer's own figure: no validation, checkpoints or figures), with the test accuracy (TTA) of each run, their mean
and images/s. Without CUDA it trains `--steps` steps of `fast` (bf16 and fp32) and of `smoke` on the synthetic data
and prints their images/s side by side. Runs are unobserved (-u): this measures training, not tracking.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

import experiments.cifar as cifar  # noqa: E402
from ingredients.cifar.task import CifarTask  # noqa: E402
from ingredients.trainer import train  # noqa: E402

TARGET = 0.94


class TimedCifarTask(CifarTask):
    """CifarTask that notes how long reading the data took."""

    data_seconds = []

    def create_data(self, device, seed):
        started = time.perf_counter()
        data = super().create_data(device, seed)
        TimedCifarTask.data_seconds.append(time.perf_counter() - started)
        return data


RESULTS = []  # the trainer's results (results.json) of each run


def recording_train(task, lr):
    RESULTS.append(train(task, lr))
    return RESULTS[-1]


def run(named_configs, seed, **config_updates):
    """One unobserved run of the experiment; (the trainer's results, the run's config, wall seconds)."""
    # The experiment's main builds its task and trains through these names.
    cifar.CifarTask, cifar.train = TimedCifarTask, recording_train
    started = time.perf_counter()
    finished = cifar.ex.run(named_configs=named_configs, config_updates={"seed": seed, **config_updates},
                            options={"--unobserved": True, "--loglevel": "WARNING"})
    return RESULTS[-1], finished.config, time.perf_counter() - started


def training_seconds(config, results):
    """The trainer's training time: its examples/s counts training steps only."""
    return results["steps"] * config["data"]["batch_size"] / results["examples_per_s"]


def gpu(seeds, compile_model):
    updates = {"trainer": {"progress": False, "compile": compile_model}}
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; fast, compile={compile_model}")
    _, _, warm_wall = run(["fast"], 0, **updates)
    print(f"warm-up run (not counted): {warm_wall:.1f} s wall, of which reading the data "
          f"{TimedCifarTask.data_seconds[-1]:.2f} s")
    times, accuracies = [], []
    for seed in range(1, seeds + 1):
        results, config, wall = run(["fast"], seed, **updates)
        times.append(training_seconds(config, results))
        accuracies.append(results["test_acc_of_best"])
        print(f"seed {seed}: training {times[-1]:.2f} s, test acc {accuracies[-1]:.4f} "
              f"({results['examples_per_s']:.0f} images/s; run {wall:.1f} s wall, "
              f"data {TimedCifarTask.data_seconds[-1]:.2f} s)")
    mean_acc = statistics.mean(accuracies)
    print(f"mean over {seeds} seeds: training {statistics.mean(times):.2f} s, test acc {mean_acc:.4f} "
          f"({'reaches' if mean_acc >= TARGET else 'misses'} {TARGET:.0%})")


def cpu(steps):
    tiny = {"data": {"dataset": "synthetic"}, "trainer": {"steps": steps, "val_every": steps, "progress": False}}
    print(f"no CUDA: {steps} training steps on the synthetic data, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    speeds = {}
    for label, named, extra in [("fast (airbench, bf16)", ["fast"], {}),
                                ("fast (airbench, fp32)", ["fast"], {"trainer": {"precision": "fp32"}}),
                                ("smoke (simple CNN, fp32)", ["smoke"], {})]:
        updates = {key: {**tiny.get(key, {}), **extra.get(key, {})} for key in {*tiny, *extra}}
        results, config, _ = run(named, 0, **updates)
        speeds[label] = results["examples_per_s"]
        print(f"{label}: {speeds[label]:.1f} images/s (batch {config['data']['batch_size']})")
    base = speeds["smoke (simple CNN, fp32)"]
    for label in list(speeds)[:2]:
        print(f"{label} / smoke: {speeds[label] / base:.2f}x images/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="timed runs on CUDA")
    parser.add_argument("--compile", action="store_true", help="with trainer.compile=True (CUDA)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per network on the CPU")
    args = parser.parse_args()
    if torch.cuda.is_available():
        gpu(args.seeds, args.compile)
    else:
        cpu(args.steps)


if __name__ == "__main__":
    main()
