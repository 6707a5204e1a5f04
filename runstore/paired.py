"""Is A really better than B, and where? Paired statistics of two models evaluated on the same examples.

Two runs evaluated on the same split are paired by example; runs of two configurations trained with the same seeds are
paired by seed too. A paired test sees differences that an unpaired one misses, and does not call noise significant
(Dror et al. 2018; Bouthillier et al. 2021). Differences are always A - B, of accuracy for classification and of the
mean absolute error for regression.

    compare_pair(a, b)        one pair of runs' Predictions (runstore.predictions): the difference with a paired
                              bootstrap 95 % CI over examples, McNemar's exact test (classification) or Wilcoxon's
                              signed-rank test on the per-example errors (regression), per-class differences with CIs
                              and Holm-adjusted p-values, and the examples where the two disagree most
    compare_seeds(pairs)      pairs of runs matched by seed: the mean paired difference with Student's t CI, the
                              sign-flip permutation p-value, P(A > B) over seeds, the per-class picture pooled over
                              seeds (Holm-corrected), a warning under MIN_SEEDS seeds, the seeds that 80 % power
                              needs to detect the observed difference, and the examples where the two disagree
                              most, pooled over seeds

Tests are two-sided at ALPHA. scipy.stats gives the tests; the bootstrap is written here, with the reason, Holm's
adjustment in runstore.groups, and tests/unit/test_paired.py checks every figure against scipy.stats and statsmodels.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from runstore.errors import UserError
from runstore.groups import completed, describe, holm
from runstore.predictions import SPLIT, Predictions, read_predictions
from runstore.run_store import open_run

if TYPE_CHECKING:
    from runstore.run_store import StoredRun
    from runstore.settings import Settings

ALPHA = 0.05
RESAMPLES = 10_000  # bootstrap resamples of each confidence interval
MIN_SEEDS = 5  # fewer seeds than this say little about a difference between configurations
POWER = 0.8  # the power that the seeds-needed line aims at
MAX_SEEDS = 10_000  # the most seeds the power line considers
SIGN_FLIP_SEEDS = math.ceil(math.log2(2 / ALPHA))  # 6: fewer seeds' two-sided sign-flip p-values never reach ALPHA
DISAGREEING = 5  # examples listed where the two models disagree most


@dataclass(frozen=True)
class Interval:
    """An estimate of A - B with its 95 % confidence interval and two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class ClassDifference:
    """A - B on the examples of one class (their accuracy: the class's recall), p-value Holm-adjusted over classes."""

    label: int
    name: str
    n: int  # examples of the class (per seed)
    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    p_holm: float


@dataclass(frozen=True)
class Disagreement:
    """One example where the two models disagree: what each predicted and the score each gave the true label
    (regression: the prediction and its absolute error)."""

    id: int
    label: float
    predicted_a: float
    predicted_b: float
    score_a: float
    score_b: float


@dataclass(frozen=True)
class PairVerdict:
    """Two runs compared example by example (compare_pair)."""

    metric: str  # 'acc' (higher is better) or 'mae' (lower is better)
    test: str  # the paired test's name
    n: int  # examples
    a: float
    b: float
    overall: Interval
    classes: list[ClassDifference]  # sorted by difference, A's largest advantage first; empty for regression
    disagreements: list[Disagreement]
    names: tuple[str, ...] | None  # the class names, if known


@dataclass(frozen=True)
class SeedVerdict:
    """Pairs of runs matched by seed (compare_seeds)."""

    metric: str
    seeds: list[Any]  # the seeds, in the order of `differences`
    differences: list[float]  # A - B per seed
    a: float  # mean over seeds
    b: float
    overall: Interval  # the mean paired difference, Student's t CI, sign-flip permutation p-value
    p_a_better: float  # share of seeds where A beats B (ties count half)
    seeds_for_power: int | None  # seeds that detect the observed difference with POWER; None when it is 0 or unknown
    warning: str | None
    classes: list[ClassDifference]
    disagreements: list[Disagreement]  # pooled over seeds (most_disagreeing)
    names: tuple[str, ...] | None


# ---- one pair of runs -----------------------------------------------------------------------------------------
def compare_pair(a: Predictions, b: Predictions, names: Sequence[str] | None = None, disagreeing: int = DISAGREEING,
                 seed: int = 0) -> PairVerdict:
    """The PairVerdict of two runs' Predictions `a` and `b` of the same examples in the same order; `names` are the
    class names (default: those stored with `a`, else the labels)."""
    rng = np.random.default_rng(seed)
    names = a.names if names is None else names
    if a.is_classification:
        correct_a, correct_b = a.correct(), b.correct()
        overall = _paired_mean(correct_a.astype(float) - correct_b, rng, mcnemar_p(correct_a, correct_b))
        classes = class_differences(correct_a[None], correct_b[None], a.targets, names, rng)
        return PairVerdict("acc", "McNemar's exact test", len(correct_a), float(correct_a.mean()),
                           float(correct_b.mean()), overall, classes, most_disagreeing(a, b, disagreeing),
                           None if names is None else tuple(map(str, names)))
    error_a, error_b = a.absolute_errors(), b.absolute_errors()
    overall = _paired_mean(error_a - error_b, rng, wilcoxon_p(error_a, error_b))
    return PairVerdict("mae", "Wilcoxon's signed-rank test on the absolute errors", len(error_a),
                       float(error_a.mean()), float(error_b.mean()), overall, [], most_disagreeing(a, b, disagreeing),
                       None)


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """McNemar's exact test: the two-sided binomial test of the examples only A gets right among those exactly one
    of the two gets right; 1 when there are none."""
    from scipy.stats import binomtest

    only_a = int(np.sum(correct_a & ~correct_b))
    discordant = only_a + int(np.sum(~correct_a & correct_b))
    return 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)


def wilcoxon_p(errors_a: np.ndarray, errors_b: np.ndarray) -> float:
    """Wilcoxon's signed-rank test of the paired errors; 1 when they are all equal."""
    from scipy.stats import wilcoxon

    if np.all(errors_a == errors_b):
        return 1.0
    return float(wilcoxon(errors_a, errors_b).pvalue)


def bootstrap_mean_interval(differences: np.ndarray, rng: np.random.Generator,
                            resamples: int = RESAMPLES) -> tuple[float, float]:
    """The percentile 95 % interval of the mean of `differences` over `resamples` resamples of them.

    Written here because scipy.stats.bootstrap draws resamples x n indices (10^8 for 10,000 of 10,000 examples,
    about a second): the differences take few distinct values (-1, 0, 1 for right and wrong), and the count of
    each value in a resample is one multinomial draw, the same distribution as resampling the examples."""
    values, counts = np.unique(differences, return_counts=True)
    n = len(differences)
    if len(values) <= 64:
        draws = rng.multinomial(n, counts / n, size=resamples)
        means = draws @ values / n
    else:  # continuous differences (regression): resample the examples, a block of resamples at a time
        block = max(1, 2_000_000 // n)
        means = np.concatenate([differences[rng.integers(0, n, (min(block, resamples - start), n))].mean(1)
                                for start in range(0, resamples, block)])
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def _paired_mean(differences: np.ndarray, rng: np.random.Generator, p_value: float) -> Interval:
    low, high = bootstrap_mean_interval(differences, rng)
    return Interval(float(differences.mean()), low, high, p_value)


def class_differences(correct_a: np.ndarray, correct_b: np.ndarray, labels: np.ndarray, names: Sequence[str] | None,
                      rng: np.random.Generator) -> list[ClassDifference]:
    """A ClassDifference per label, A's largest advantage first. `correct_a` and `correct_b` are seeds x examples;
    each example's difference is averaged over the seeds, its CI bootstraps the examples, and its p-value is the sign
    test of the examples whose averaged difference is not 0 (McNemar's exact test when there is one seed)."""
    from scipy.stats import binomtest

    found = []
    for label in np.unique(labels):
        members = labels == label
        a, b = correct_a[:, members], correct_b[:, members]
        per_example = (a.astype(float) - b).mean(0)
        wins, losses = int(np.sum(per_example > 0)), int(np.sum(per_example < 0))
        p_value = 1.0 if wins + losses == 0 else float(binomtest(wins, wins + losses, 0.5).pvalue)
        low, high = bootstrap_mean_interval(per_example, rng)
        name = str(names[label]) if names is not None else str(label)
        found.append((int(label), name, int(members.sum()), float(a.mean()), float(b.mean()),
                      float(per_example.mean()), low, high, p_value))
    adjusted = holm(np.array([item[-1] for item in found]))
    classes = [ClassDifference(*item, float(p)) for item, p in zip(found, adjusted)]
    return sorted(classes, key=lambda item: -item.difference)


def most_disagreeing(a: Predictions | list[Predictions], b: Predictions | list[Predictions],
                     count: int) -> list[Disagreement]:
    """The `count` examples where the two models disagree most: classification, by the gap between the scores they
    give the true label (the predicted classes where there are no scores); regression, by the gap between the
    absolute errors. `a` and `b` are Predictions, or lists of them of the same examples (one per seed): the scores are
    then averaged over the seeds, and the prediction shown is the class predicted most often (a regression's: the
    mean)."""
    from scipy.stats import mode

    runs_a, runs_b = ([side] if isinstance(side, Predictions) else side for side in (a, b))
    if runs_a[0].is_classification:
        score_a, score_b = (np.mean([item.label_scores() for item in side], 0) for side in (runs_a, runs_b))
        predicted_a, predicted_b = (mode(np.array([item.predicted for item in side]), axis=0).mode
                                    for side in (runs_a, runs_b))
    else:
        score_a, score_b = (np.mean([item.absolute_errors() for item in side], 0) for side in (runs_a, runs_b))
        predicted_a, predicted_b = (np.mean([item.predicted for item in side], 0) for side in (runs_a, runs_b))
    gap = np.abs(score_a - score_b)
    chosen = [index for index in np.argsort(-gap, kind="stable")[:count] if gap[index] > 0]
    first = runs_a[0]
    return [Disagreement(int(first.ids[i]), _number(first.targets[i]), _number(predicted_a[i]), _number(predicted_b[i]),
                         float(score_a[i]), float(score_b[i])) for i in chosen]


def _number(value: Any) -> float:
    return int(value) if float(value).is_integer() else float(value)


# ---- pairs matched by seed ------------------------------------------------------------------------------------
def compare_seeds(pairs: dict[Any, tuple[Predictions, ...]], names: Sequence[str] | None = None,
                  disagreeing: int = DISAGREEING, seed: int = 0) -> SeedVerdict:
    """The SeedVerdict of `pairs`: {seed: (Predictions of A, Predictions of B)}, every one of the same examples."""
    seeds = sorted(pairs, key=str)
    first = pairs[seeds[0]][0]
    rng = np.random.default_rng(seed)
    names = first.names if names is None else names
    if first.is_classification:
        metric = "acc"
        values_a = np.array([pairs[s][0].correct() for s in seeds])
        values_b = np.array([pairs[s][1].correct() for s in seeds])
        classes = class_differences(values_a, values_b, first.targets, names, rng)
    else:
        metric = "mae"
        values_a = np.array([pairs[s][0].absolute_errors() for s in seeds])
        values_b = np.array([pairs[s][1].absolute_errors() for s in seeds])
        classes = []
    means_a, means_b = values_a.mean(1), values_b.mean(1)
    differences = means_a - means_b
    return SeedVerdict(metric, seeds, [float(d) for d in differences], float(means_a.mean()), float(means_b.mean()),
                       seed_interval(differences), float(np.mean((differences > 0) + 0.5 * (differences == 0))),
                       seeds_for_power(differences), seed_warning(len(seeds)), classes,
                       most_disagreeing([pairs[s][0] for s in seeds], [pairs[s][1] for s in seeds], disagreeing),
                       None if names is None else tuple(map(str, names)))


def seed_interval(differences: np.ndarray) -> Interval:
    """The mean of the per-seed differences, Student's t 95 % CI (runstore.groups.describe) and the sign-flip
    permutation p-value (exact: every sign pattern, for up to 2^16 of them)."""
    from scipy.stats import permutation_test

    mean, _, interval = describe(list(differences))
    assert mean is not None  # a difference per seed
    low, high = interval or (math.nan, math.nan)
    if np.all(differences == 0):
        p_value = 1.0
    else:
        p_value = float(permutation_test((differences,), np.mean, permutation_type="samples", vectorized=True,
                                         n_resamples=2 ** 16, random_state=0).pvalue)
    return Interval(mean, low, high, p_value)


def seeds_for_power(differences: np.ndarray, power: float = POWER) -> int | None:
    """The fewest seeds with which a paired t-test at ALPHA detects the observed mean difference with `power`
    (statsmodels' TTestPower on the standardized mean difference), and at least SIGN_FLIP_SEEDS, so that the sign-flip
    test can reach ALPHA at all; None without a difference or its spread, or beyond MAX_SEEDS. Searched over the
    counts: TTestPower's solver fails below 2 seeds."""
    if len(differences) < 2 or np.std(differences, ddof=1) == 0 or np.mean(differences) == 0:
        return None
    from statsmodels.stats.power import TTestPower

    effect = abs(np.mean(differences)) / np.std(differences, ddof=1)
    counts = np.arange(SIGN_FLIP_SEEDS, MAX_SEEDS + 1)
    powers = TTestPower().power(effect_size=effect, nobs=counts, alpha=ALPHA)
    # scipy's noncentral t gives NaN far in its tail, where a large effect's power is 1 within float precision
    reached = np.flatnonzero(np.nan_to_num(powers, nan=1.0) >= power)
    return int(counts[reached[0]]) if len(reached) else None


def seed_warning(count: int) -> str | None:
    if count >= MIN_SEEDS:
        return None
    return (f"WARNING: only {count} seed{'s' * (count != 1)}: the sign-flip p-value cannot go below "
            f"{2 / 2 ** count:.3g} and the CI is wide; run at least {MIN_SEEDS}, and {SIGN_FLIP_SEEDS} for the "
            f"sign-flip test to reach p < {ALPHA}, e.g. tracker sweep --seeds {SIGN_FLIP_SEEDS}")


# ---- recorded runs --------------------------------------------------------------------------------------------
def paired_comparison(run_a: object, run_b: object, split: str = SPLIT,
                      settings: Settings | None = None) -> PairVerdict:
    """The PairVerdict of two recorded runs (ids or run folders) on their stored predictions of `split`:

        from runstore.paired import paired_comparison
        verdict = paired_comparison("3", "4")   # verdict.overall.difference, .low, .high, .p_value; verdict.classes
    """
    a, b = (open_run(str(run), settings) for run in (run_a, run_b))
    return compare_stored(a, b, split)


def compare_stored(run_a: StoredRun, run_b: StoredRun, split: str = SPLIT) -> PairVerdict:
    """The PairVerdict of two opened StoredRuns on their stored predictions of `split`."""
    a, b = (read_predictions(run, split) for run in (run_a, run_b))
    check_same_examples({run_a.label.removeprefix("run "): a, run_b.label.removeprefix("run "): b})
    return compare_pair(a, b)


def seed_comparison(rows: list[dict[str, Any]], key: str, values: Iterable[Any] | None = None, split: str = SPLIT,
                    settings: Settings | None = None) -> tuple[Any, Any, dict[Any, tuple[Any, Any]], SeedVerdict]:
    """(value of A, value of B, {seed: (run of A, run of B)}, SeedVerdict): the runs among `rows` (runstore.query rows)
    with `key` (e.g. config.data.stream) at the two `values` (default: the only two there are), paired by config.seed;
    each pair's stored predictions of `split`. The completed runs of seeds that both values have are compared."""
    runs: dict[Any, dict[Any, Any]] = {}
    for row in completed(rows):
        runs.setdefault(row.get(key), {})[row.get("config.seed")] = row["id"]
    chosen = list(values) if values else sorted(runs, key=str)
    if len(chosen) != 2 or any(value not in runs for value in chosen):
        found = ", ".join(map(str, sorted(runs, key=str))) or "none"
        raise UserError(f"comparing by {key} needs two of its values among the completed runs, and they have {found}; "
                        f"choose two, e.g. --values {','.join(map(str, sorted(runs, key=str)[:2] or ['A', 'B']))}")
    seeds = [seed for seed in runs[chosen[0]] if seed in runs[chosen[1]]]
    if not seeds:
        raise UserError(f"no seed has a completed run with both {key}={chosen[0]} and {key}={chosen[1]}; run them "
                        f"with the same seeds, e.g. tracker sweep --seeds {MIN_SEEDS}")
    ids = {seed: (runs[chosen[0]][seed], runs[chosen[1]][seed]) for seed in seeds}
    pairs = {seed: tuple(read_predictions(open_run(str(run), settings), split) for run in ids[seed]) for seed in seeds}
    check_same_examples({str(run): predictions for seed in seeds for run, predictions in zip(ids[seed], pairs[seed])})
    return chosen[0], chosen[1], ids, compare_seeds(pairs)


def check_same_examples(predictions: dict[str, Predictions]) -> None:
    """UserError, one line, unless every Predictions in `predictions` ({run: Predictions}) is of the same data's
    same examples."""
    (first, reference), *others = predictions.items()
    for run, found in others:
        if found.digest != reference.digest:
            raise UserError(f"runs {first} and {run} were evaluated on different data (digests {reference.digest} "
                            f"and {found.digest}); compare runs evaluated on the same split of the same data")
        if not np.array_equal(found.ids, reference.ids) or not np.array_equal(found.targets, reference.targets):
            raise UserError(f"runs {first} and {run} were evaluated on different examples of {reference.split}; "
                            f"compare runs evaluated on the same split of the same data")
