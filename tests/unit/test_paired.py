"""runstore/paired.py: every figure of a paired comparison checked against scipy.stats and statsmodels, and the
calibration of its verdicts on simulated predictions."""
import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from runstore.paired import (ALPHA, MIN_SEEDS, bootstrap_mean_interval, compare_pair, compare_seeds, mcnemar_p,
                             seed_interval, seeds_for_power)
from runstore.predictions import Predictions, classification, regression

CLASSES = 10


def simulated_correctness(rng, n, accuracy_a, accuracy_b, disagreement=0.1, simulations=None):
    """Right (True) or wrong of two models on `n` examples: they disagree on about `disagreement` of them, as two
    models trained on the same data do, and have the given accuracies. Shape (simulations, n) when given."""
    shape = (n,) if simulations is None else (simulations, n)
    only_a = (disagreement + accuracy_a - accuracy_b) / 2  # A right, B wrong
    only_b = (disagreement - accuracy_a + accuracy_b) / 2
    both = accuracy_a - only_a
    draw = rng.random(shape)
    correct_a = (draw < both) | ((draw >= both) & (draw < both + only_a))
    correct_b = (draw < both) | ((draw >= both + only_a) & (draw < both + only_a + only_b))
    return correct_a, correct_b


def predictions_of(correct, labels, rng, digest="d"):
    """Classification Predictions that are right exactly where `correct` says."""
    wrong = (labels + rng.integers(1, CLASSES, len(labels))) % CLASSES
    predicted = np.where(correct, labels, wrong)
    outputs = rng.normal(0, 1, (len(labels), CLASSES))
    outputs[np.arange(len(labels)), predicted] += 5
    return classification("test", digest, np.arange(len(labels)), labels, outputs)


@pytest.fixture
def pair():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, CLASSES, 2_000)
    correct_a, correct_b = simulated_correctness(rng, 2_000, 0.82, 0.78)
    return predictions_of(correct_a, labels, rng), predictions_of(correct_b, labels, rng)


def test_mcnemar_is_statsmodels_exact_test(pair):
    a, b = pair
    correct_a, correct_b = a.correct(), b.correct()
    table = [[np.sum(correct_a & correct_b), np.sum(correct_a & ~correct_b)],
             [np.sum(~correct_a & correct_b), np.sum(~correct_a & ~correct_b)]]
    assert mcnemar_p(correct_a, correct_b) == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9)
    assert mcnemar_p(correct_a, correct_a) == 1.0


@pytest.mark.parametrize("values", [
    np.random.default_rng(2).choice([-1.0, 0.0, 1.0], 3_000, p=[0.05, 0.88, 0.07]),
    np.random.default_rng(3).normal(0.1, 1.0, 500),  # continuous: resampled example by example
])
def test_bootstrap_interval_is_scipys(values):
    low, high = bootstrap_mean_interval(values, np.random.default_rng(0))
    expected = stats.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                               random_state=0).confidence_interval
    width = expected.high - expected.low
    assert low == pytest.approx(expected.low, abs=0.03 * width)
    assert high == pytest.approx(expected.high, abs=0.03 * width)


def test_pair_verdict_figures(pair):
    a, b = pair
    verdict = compare_pair(a, b, names=[f"class{i}" for i in range(CLASSES)])
    correct_a, correct_b = a.correct(), b.correct()
    assert verdict.metric == "acc" and verdict.n == 2_000
    assert verdict.a == pytest.approx(correct_a.mean()) and verdict.b == pytest.approx(correct_b.mean())
    assert verdict.overall.difference == pytest.approx(correct_a.mean() - correct_b.mean())
    assert verdict.overall.low < verdict.overall.difference < verdict.overall.high
    assert verdict.overall.p_value == pytest.approx(mcnemar_p(correct_a, correct_b))
    differences = [item.difference for item in verdict.classes]
    assert differences == sorted(differences, reverse=True)
    raw = []
    for item in verdict.classes:
        members = a.targets == item.label
        assert item.name == f"class{item.label}" and item.n == members.sum()
        assert item.difference == pytest.approx(correct_a[members].mean() - correct_b[members].mean())
        only_a = np.sum(correct_a[members] & ~correct_b[members])
        only_b = np.sum(~correct_a[members] & correct_b[members])
        assert item.p_value == pytest.approx(stats.binomtest(only_a, only_a + only_b).pvalue)
        raw.append(item.p_value)
    assert [item.p_holm for item in verdict.classes] == pytest.approx(multipletests(raw, method="holm")[1])
    gaps = np.abs(a.label_scores() - b.label_scores())
    assert [item.id for item in verdict.disagreements] == list(np.argsort(-gaps, kind="stable")[:5])
    first = verdict.disagreements[0]
    assert (first.label, first.predicted_a, first.predicted_b) == (a.targets[first.id], a.predicted[first.id],
                                                                   b.predicted[first.id])


def test_regression_pair_uses_wilcoxon_on_errors():
    rng = np.random.default_rng(4)
    targets = rng.normal(0, 1, 400)
    a = regression("test", "d", np.arange(400), targets, targets + rng.normal(0, 0.5, 400))
    b = regression("test", "d", np.arange(400), targets, targets + rng.normal(0, 0.6, 400))
    verdict = compare_pair(a, b)
    errors_a, errors_b = np.abs(a.predicted - a.targets), np.abs(b.predicted - b.targets)
    assert verdict.metric == "mae" and verdict.classes == []
    assert verdict.overall.difference == pytest.approx(np.mean(errors_a - errors_b), rel=1e-5)
    assert verdict.overall.p_value == pytest.approx(stats.wilcoxon(errors_a, errors_b).pvalue)
    assert verdict.disagreements[0].id == np.argmax(np.abs(errors_a - errors_b))


def test_seed_interval_is_scipys_sign_flip_and_t():
    differences = np.array([0.012, 0.004, 0.02, -0.003, 0.009, 0.015])
    found = seed_interval(differences)
    expected = stats.permutation_test((differences,), np.mean, permutation_type="samples").pvalue
    assert found.p_value == pytest.approx(expected)
    interval = stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(), scale=stats.sem(differences))
    assert (found.low, found.high) == pytest.approx(interval)
    needed = TTestPower().solve_power(effect_size=differences.mean() / differences.std(ddof=1), alpha=0.05,
                                      power=0.8)
    assert seeds_for_power(differences) == max(int(np.ceil(needed)), 6)
    assert seeds_for_power(differences / 10) == seeds_for_power(differences)  # the same effect size
    small = differences - 0.0085  # a smaller effect: more seeds than the sign-flip test's least
    effect = small.mean() / small.std(ddof=1)
    assert seeds_for_power(small) == int(np.ceil(TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8)))
    assert seeds_for_power(small) > 6
    assert seeds_for_power(np.array([-0.2467, -0.1817, -0.1833])) == 6  # an effect of 5.5 sds: scipy's tail is NaN


def test_seed_verdict_pairs_by_seed_and_pools_classes():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, CLASSES, 1_000)
    pairs = {}
    for seed in range(3):
        correct_a, correct_b = simulated_correctness(rng, 1_000, 0.8, 0.75)
        pairs[seed] = predictions_of(correct_a, labels, rng), predictions_of(correct_b, labels, rng)
    verdict = compare_seeds(pairs)
    differences = [pairs[s][0].correct().mean() - pairs[s][1].correct().mean() for s in range(3)]
    assert verdict.differences == pytest.approx(differences)
    assert verdict.overall.difference == pytest.approx(np.mean(differences))
    assert verdict.p_a_better == np.mean(np.array(differences) > 0)
    assert verdict.overall.p_value >= 2 / 2 ** 3  # the smallest two-sided sign-flip p-value of 3 seeds
    assert verdict.warning.startswith("WARNING: only 3 seeds: the sign-flip p-value cannot go below 0.25")
    assert f"run at least {MIN_SEEDS}, and 6 for the sign-flip test to reach p < 0.05" in verdict.warning
    cat = next(item for item in verdict.classes if item.label == 3)
    members = labels == 3
    pooled = np.mean([pairs[s][0].correct()[members].mean() - pairs[s][1].correct()[members].mean()
                      for s in range(3)])
    assert cat.difference == pytest.approx(pooled)


def test_aa_comparisons_are_significant_about_alpha_of_the_time():
    rng = np.random.default_rng(6)
    correct_a, correct_b = simulated_correctness(rng, 10_000, 0.8, 0.8, simulations=1_000)
    p_values = np.array([mcnemar_p(a, b) for a, b in zip(correct_a, correct_b)])
    intervals = [bootstrap_mean_interval(a.astype(float) - b, rng, resamples=2_000)
                 for a, b in zip(correct_a, correct_b)]
    excluding_zero = np.mean([low > 0 or high < 0 for low, high in intervals])
    assert np.mean(p_values < ALPHA) <= 0.065
    assert excluding_zero <= 0.065


def test_a_planted_two_point_difference_is_found():
    rng = np.random.default_rng(7)
    correct_a, correct_b = simulated_correctness(rng, 10_000, 0.80, 0.78, simulations=1_000)
    p_values = np.array([mcnemar_p(a, b) for a, b in zip(correct_a, correct_b)])
    assert np.mean(p_values < ALPHA) >= 0.95


def test_predictions_round_trip_through_their_file(pair):
    a, _ = pair
    back = Predictions.from_bytes(a.to_bytes())
    assert (back.split, back.digest) == ("test", "d")
    assert np.array_equal(back.ids, a.ids) and np.array_equal(back.scores, a.scores)
    assert back.scores.dtype == np.float16


class RecordingRun:
    """What save_predictions uses of Sacred's `_run`: its info and add_artifact."""

    def __init__(self):
        self.info = {"data": {"splits": {"test": "0123abcd"}}}
        self.artifacts = {}

    def add_artifact(self, filename, name, content_type=None):
        with open(filename, "rb") as file:
            self.artifacts[name] = file.read()


def test_an_experiment_without_the_trainer_stores_predictions_in_one_call():
    from observers.predictions import save_predictions

    run = RecordingRun()
    logits = np.array([[2.0, 0.1, 0.3], [0.0, 1.0, 3.0]])
    save_predictions(run, "test", np.array([0, 1]), logits, names=["cat", "dog", "eel"])
    save_predictions(run, "val", np.array([0.5, 1.5]), np.array([0.4, 1.0]), digest="given")
    stored = Predictions.from_bytes(run.artifacts["predictions.test.npz"])
    assert stored.digest == "0123abcd" and stored.names == ("cat", "dog", "eel")
    assert list(stored.predicted) == [0, 2] and list(stored.correct()) == [True, False]
    assert stored.scores[1] == pytest.approx(np.exp(logits[1]) / np.exp(logits[1]).sum(), abs=1e-3)
    regression_stored = Predictions.from_bytes(run.artifacts["predictions.val.npz"])
    assert not regression_stored.is_classification and regression_stored.digest == "given"
    assert regression_stored.absolute_errors() == pytest.approx([0.1, 0.5])
