"""Optuna's parts that this project uses against its advice, written for Optuna 4 and 5. Why each is needed:

- existing_trial: a sweep's trial runs in a process of its own (local or on SLURM) and reports to the trial the sweep
  asked for; Optuna hands out Trial objects only for trials it starts itself, and advises against its constructor.
"""
import optuna

from compat import Package

OPTUNA = Package("optuna", ("4", "5"), "compat/optuna.py")


def existing_trial(study, trial_id):
    """The Trial of `study` whose storage id is `trial_id`, to report to and ask whether to prune."""
    return OPTUNA.target(optuna.trial, "Trial")(study, trial_id)
