"""tracker/importance.py: which varied parameters matter, and in which direction (Spearman's rho, against scipy)."""
import itertools

import pytest
from scipy import stats

from runstore.errors import UserError
from tracker.importance import importances


def runs(result, higher_is_better=True):
    """A completed run per (lr, width, optimizer) of a small grid, with result(lr, width, optimizer)."""
    grid = itertools.product([0.001, 0.01, 0.1, 0.3], [8, 16, 32], ["adam", "sgd"])
    return [{"id": i, "status": "COMPLETED", "higher_is_better": higher_is_better, "config.lr": lr,
             "config.width": width, "config.optimizer": optimizer, "result": result(lr, width, optimizer)}
            for i, (lr, width, optimizer) in enumerate(grid)]


KEYS = ["config.lr", "config.width", "config.optimizer"]


def test_the_parameter_that_drives_the_result_ranks_first_with_scipys_rho():
    rows = runs(lambda lr, width, optimizer: 10 * lr + 0.001 * width + (0.01 if optimizer == "adam" else 0))
    found = importances(rows, KEYS)
    assert [item["parameter"] for item in found][0] == "config.lr"
    assert sum(item["importance"] for item in found) == pytest.approx(1)
    by_key = {item["parameter"]: item for item in found}
    for key in ("config.lr", "config.width"):
        rho = stats.spearmanr([row[key] for row in rows], [row["result"] for row in rows]).statistic
        assert by_key[key]["rho"] == pytest.approx(rho)
    assert by_key["config.lr"]["better_with"] == "larger config.lr" and by_key["config.lr"]["effect"].startswith("+")
    assert by_key["config.optimizer"]["better_with"] == "config.optimizer=adam"


def test_when_lower_is_better_the_direction_turns():
    rows = runs(lambda lr, width, optimizer: 10 * lr + width + (1 if optimizer == "adam" else 0),
                higher_is_better=False)
    by_key = {item["parameter"]: item for item in importances(rows, KEYS)}
    assert by_key["config.lr"]["better_with"] == "smaller config.lr"
    assert by_key["config.optimizer"]["better_with"] == "config.optimizer=sgd"


def test_too_few_runs_or_varied_parameters_are_one_line_errors():
    rows = runs(lambda lr, width, optimizer: lr)
    with pytest.raises(UserError, match=r"^importance needs at least 4 completed runs with a result, and 3 of the "
                                        r"selected runs are; run more trials"):
        importances(rows[:3] + [{**rows[3], "status": "FAILED"}], KEYS)
    with pytest.raises(UserError, match=r"^importance needs at least 2 parameters that the completed runs vary, and "
                                        r"they vary config.lr; `tracker runs --group-by` compares the values of one "
                                        r"parameter$"):
        importances([row for row in rows if row["config.width"] == 8 and row["config.optimizer"] == "adam"], KEYS)


def test_a_loguniform_lr_is_fitted_on_its_log_and_ranks_first():
    """The issue's sweep in small: lr loguniform(1e-4, 0.3) explains 75 % of the result's variance (linearly in
    log10(lr)), dropout 15 %. On the linear scale fANOVA ranked dropout first; on log10(lr), lr."""
    import numpy as np

    rng = np.random.default_rng(0)
    lr = np.exp(rng.uniform(np.log(1e-4), np.log(0.3), 300))
    dropout = rng.uniform(0, 0.5, 300)
    result = (np.sqrt(0.75) * stats.zscore(np.log10(lr)) + np.sqrt(0.15) * stats.zscore(-dropout)
              + rng.normal(0, np.sqrt(0.1), 300))
    rows = [{"id": i, "status": "COMPLETED", "result": float(r), "config.lr": float(rate), "config.dropout": float(d)}
            for i, (r, rate, d) in enumerate(zip(result, lr, dropout))]
    keys = ["config.lr", "config.dropout"]
    found = importances(rows, keys, log_keys=["config.lr"])
    assert [item["parameter"] for item in found] == keys and found[0]["importance"] > 0.7
    assert importances(rows, keys)[0]["parameter"] == "config.dropout"  # the linear scale's misranking
