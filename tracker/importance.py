"""`tracker importance`: which varied parameters matter for the result, from any sweep (grid, random or Optuna) or
selection of runs.

The completed runs become the trials of an in-memory Optuna study, and Optuna's fANOVA evaluator
(optuna.importance.get_param_importances), with a bounded random forest (FANOVA), splits the result's variance between
the parameters. A parameter swept `loguniform`, or positive and spanning 100x or more (tracker.selection's log
keys), enters as its log10: Optuna's fANOVA ignores a distribution's log flag, and on the linear scale the forest's
splits fall among the few largest values, so a learning rate that drives the result can rank below noise. The sign
of each effect is Spearman's rank correlation of the parameter with the result (for a
categorical one, its best value).
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, TypedDict

from runstore.direction import higher_is_better
from runstore.errors import UserError
from runstore.groups import completed, is_number
from tracker.runs import render_table
from tracker.selection import add_selection_arguments, selected

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

    import optuna
    from optuna.distributions import BaseDistribution

MIN_RUNS = 4  # fewer completed runs than this say nothing about importance
# Optuna's FanovaImportanceEvaluator with a bounded forest. Its defaults (64 trees of depth up to 64: about a leaf per
# run) take 20 s for 1,000 runs of a continuous parameter; 32 trees of depth 6 (at most 64 leaves) take 0.3 s there
# and give the same importances within 0.01 (docs/answers.md). The seed makes the same runs give the same importances.
FANOVA = {"n_trees": 32, "max_depth": 6, "seed": 0}


class Effect(TypedDict):
    """The sign of a parameter's effect on the result: Spearman's rho, or a categorical's best value."""

    effect: str  # '+ (rho +0.80)', '- (rho -0.30)' or 'best adam'
    rho: float | None  # None for a categorical parameter
    better_with: str  # 'larger lr', 'smaller lr' or 'optimizer=adam', by the runs' direction


class Importance(Effect):
    """One parameter's line of `tracker importance` (its --format json prints these as they are)."""

    parameter: str
    importance: float  # its fANOVA share of the result's variance; the shares add up to 1


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "importance",
        help="which swept parameters matter for the result (Optuna's fANOVA), and in which direction",
        description=(
            "For the selected runs (--sweep ID, or --where/--experiment/--tag), print each config key they vary "
            "(seed aside) with its share of the result's variance (fANOVA, optuna.importance, over the completed "
            f"runs; the shares add up to 1) and the sign of its effect. Needs at least {MIN_RUNS} completed runs and "
            "2 varied parameters."
        ),
    )
    add_selection_arguments(parser)
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows, parameters, log_keys = selected(args)
    found = importances(rows, parameters, log_keys)
    if args.format == "json":
        json.dump(found, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    lines = [["parameter", "importance", "effect", "better with"]]
    lines += [[item["parameter"], f"{item['importance']:.3f}", item["effect"], item["better_with"]] for item in found]
    sys.stdout.write(render_table(lines))
    return 0


def importances(rows: list[dict[str, Any]], parameters: list[str], log_keys: Collection[str] = ()) -> list[Importance]:
    """A dict per varied parameter, most important first: parameter, importance (fANOVA; they add up to 1), effect
    ('+' when larger values give larger results, '-' when smaller, with Spearman's rho; a categorical's best value)
    and better_with (larger, smaller, or the best value), by the runs' direction. The parameters in `log_keys` are
    fitted on their log10."""
    runs = completed(rows)
    varied = [key for key in parameters if len({_plain(row.get(key)) for row in runs}) > 1]
    if len(runs) < MIN_RUNS:
        raise UserError(f"importance needs at least {MIN_RUNS} completed runs with a result, and {len(runs)} of the "
                        f"selected runs are; run more trials, e.g. tracker sweep --random 16")
    if len(varied) < 2:
        raise UserError(f"importance needs at least 2 parameters that the completed runs vary, and they vary "
                        f"{', '.join(varied) or 'none'}; `tracker runs --group-by` compares the values of one "
                        f"parameter")
    higher = all(higher_is_better(row) for row in runs)
    study = _study(runs, varied, higher, [key for key in varied if key in log_keys])
    import optuna

    scores = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(**FANOVA))
    return [Importance(parameter=key, importance=float(score), **_effect(runs, key, higher))
            for key, score in scores.items()]


def _study(runs: list[dict[str, Any]], keys: list[str], higher: bool, log_keys: list[str]) -> optuna.Study:
    """An in-memory Optuna study with one completed trial per run; the `log_keys` parameters as their log10."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    positive = [key for key in log_keys if all(is_number(row.get(key)) and row[key] > 0 for row in runs)]

    def value(row: dict[str, Any], key: str) -> Any:
        return math.log10(row[key]) if key in positive else _plain(row.get(key))

    distributions = {key: _distribution([value(row, key) for row in runs]) for key in keys}
    study = optuna.create_study(direction="maximize" if higher else "minimize")
    study.add_trials([
        optuna.trial.create_trial(params={key: value(row, key) for key in keys}, distributions=distributions,
                                  value=float(row["result"]))
        for row in runs])
    return study


def _distribution(values: list[Any]) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if all(is_number(value) for value in values):
        if all(isinstance(value, int) for value in values):
            return IntDistribution(min(values), max(values))
        return FloatDistribution(min(values), max(values))
    return CategoricalDistribution(sorted(set(values), key=str))


def _plain(value: Any) -> Any:
    """A config value as an Optuna parameter: numbers and text as they are, anything else (lists, None) as JSON."""
    return value if is_number(value) or isinstance(value, str) else json.dumps(value)


def _effect(runs: list[dict[str, Any]], key: str, higher: bool) -> Effect:
    from scipy.stats import spearmanr  # already imported: fANOVA's scikit-learn imports scipy.stats

    values = [_plain(row.get(key)) for row in runs]
    results = [row["result"] for row in runs]
    if all(is_number(value) for value in values):
        rho = float(spearmanr(values, results).statistic)
        larger_is_better = (rho > 0) == higher
        return {"effect": f"{'+' if rho > 0 else '-'} (rho {rho:+.2f})", "rho": rho,
                "better_with": f"{'larger' if larger_is_better else 'smaller'} {key}"}
    means = {value: statistics.fmean([r for v, r in zip(values, results) if v == value]) for value in set(values)}
    best = (max if higher else min)(means, key=means.__getitem__)
    return {"effect": f"best {best}", "rho": None, "better_with": f"{key}={best}"}
