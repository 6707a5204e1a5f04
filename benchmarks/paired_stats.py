"""What a paired comparison of two runs costs (runstore.paired.compare_pair), beside scipy.stats.bootstrap.

    python benchmarks/paired_stats.py [--examples 10000] [--resamples 10000]

Two simulated classifiers of 10 classes on N examples (accuracies 0.82 and 0.80, disagreeing on 10 % of them):
the paired bootstrap's 95 % CI of the accuracy difference, McNemar's exact test, 10 per-class differences (each with
its bootstrap CI and exact test, Holm-adjusted) and the 5 most disagreeing examples, timed whole, then
scipy.stats.bootstrap's percentile CI of the same difference with as many resamples, timed side by side.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from runstore import paired  # noqa: E402
from runstore.predictions import classification  # noqa: E402

REPEATS = 5
CLASSES = 10


def timed(function, repeats=REPEATS):
    """The median seconds of `repeats` calls, and the last result."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def simulated_pair(examples, rng):
    labels = rng.integers(0, CLASSES, examples)
    draw = rng.random(examples)
    right_a, right_b = draw < 0.82, (draw < 0.77) | ((draw >= 0.82) & (draw < 0.85))

    def predictions(right):
        outputs = rng.normal(0, 1, (examples, CLASSES))
        predicted = np.where(right, labels, (labels + rng.integers(1, CLASSES, examples)) % CLASSES)
        outputs[np.arange(examples), predicted] += 4
        return classification("test", "simulated", np.arange(examples), labels, outputs)

    return predictions(right_a), predictions(right_b)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10_000, help="examples per run (default: 10000)")
    parser.add_argument("--resamples", type=int, default=paired.RESAMPLES, help="bootstrap resamples (default: 10000)")
    args = parser.parse_args()
    paired.RESAMPLES = args.resamples
    a, b = simulated_pair(args.examples, np.random.default_rng(0))
    paired.compare_pair(a, b)  # imports scipy.stats once, outside the timing
    ours, verdict = timed(lambda: paired.compare_pair(a, b))
    from scipy.stats import bootstrap

    differences = a.correct().astype(float) - b.correct()
    theirs, interval = timed(lambda: bootstrap((differences,), np.mean, n_resamples=args.resamples,
                                               method="percentile", random_state=0).confidence_interval, repeats=1)
    print(f"{args.examples} examples, {args.resamples} resamples, {CLASSES} classes")
    print(f"compare_pair (bootstrap CI + McNemar + {len(verdict.classes)} per-class CIs and tests + Holm): "
          f"{ours:.3f} s (median of {REPEATS})")
    print(f"  A - B = {verdict.overall.difference:+.4f}, 95 % CI [{verdict.overall.low:+.4f}, "
          f"{verdict.overall.high:+.4f}], McNemar p = {verdict.overall.p_value:.3g}")
    print(f"scipy.stats.bootstrap, the overall CI alone: {theirs:.3f} s; CI [{interval.low:+.4f}, "
          f"{interval.high:+.4f}]; {theirs / ours:.0f}x the whole comparison")


if __name__ == "__main__":
    main()
