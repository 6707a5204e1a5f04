"""A sweep trial's link to its Optuna study: it reports validation scores and learns whether to stop early.

`tracker sweep --optuna N --prune median|hyperband` starts each trial with a Handoff (observers.origin) whose
pruning link names the study's journal (one file in the sweep's folder, shared by every trial process, local or on
SLURM), the study and the trial. The
trainer calls `report_score` at every validation; an experiment without the trainer calls it itself:

    from ingredients.pruning import report_score
    if report_score(_run, step, val_score):  # True once the study prunes this trial
        break                                # stop training and return normally: the run keeps what it logged

A pruned run ends COMPLETED, with `info.pruned_at_step` and the Omniboard tag "pruned"; outside such a sweep
`report_score` does nothing and returns False (Optuna is not even imported).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from observers.origin import received_handoff
from runstore.layout import PRUNED_TAG

if TYPE_CHECKING:
    import os

    import optuna
    from optuna.storages import JournalStorage
    from sacred.run import Run

PRUNERS = ("median", "hyperband")


def make_pruner(kind: str) -> optuna.pruners.BasePruner:
    """Optuna's pruner for `--prune kind`: the same object in the sweep and in every trial process."""
    import optuna

    if kind == "median":
        # A trial stops when its score at a validation step is worse than the median of earlier trials' at that
        # step; the first 3 trials always run to the end, so there is a median to compare with.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner()
    raise ValueError(f"unknown pruner {kind!r}")


def open_journal(path: str | os.PathLike[str]) -> JournalStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


@functools.cache
def _sweep_trial(journal: str, study_name: str, number: int, pruner: str) -> optuna.trial.Trial:
    """The Optuna trial that a Handoff's pruning link names (tracker.sweep.Sweep.pruning_link), opened once per
    process."""
    import optuna

    from compat.optuna import existing_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_journal(journal)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(pruner))
    study_id = storage.get_study_id_from_name(study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return existing_trial(study, trial_id)


def report_score(run: Run, step: int, score: float) -> bool:
    """Report `score` (the validation metric the sweep optimises) at `step`; True when the trial is pruned.

    The score's direction is the run's info.higher_is_better (observers.track; the trainer sets it from its task).

    A pruned run's info records pruned_at_step, and its info tags (Omniboard's) include "pruned".
    """
    handoff = received_handoff()
    if handoff is None or handoff.pruning is None:
        return False
    link = handoff.pruning
    from optuna.study import StudyDirection

    trial = _sweep_trial(link["journal"], link["study"], link["trial"], link["pruner"])
    # A study whose direction was not given maximizes (tracker.sweep): a lower-is-better score is reported negated.
    maximizes = trial.study.direction == StudyDirection.MAXIMIZE
    trial.report(score if maximizes == run.info.get("higher_is_better", True) else -score, step)
    if not trial.should_prune():
        return False
    run.info["pruned_at_step"] = step
    run.info["tags"] = [*run.info.get("tags", []), PRUNED_TAG]
    return True
