"""`trainer_experiment(ex)`: what every experiment that trains with the trainer ingredient shares.

The experiment's file holds its research (its ingredients, config, named configs and `main`); this adds the rest:
- its recording (observers.track), which also gives it `--resume=CHECKPOINT` for `tracker resume`;
- its top-level `lr`, with the experiment's default, and its check, which the trainer's own config hook cannot see
  (ingredients.trainer.validate_lr). `lr` is top-level, not `trainer.lr`: Sacred evaluates ingredient configs
  before the experiment's, so a trainer.lr could not follow `with lr=...` and the config would hold two values;
- the `rebuild` command, through which `tracker`'s load_model and export build a run's network from the task its
  `main` gives the trainer (ingredients.rebuild).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from observers.track import track  # first: it imports Sacred without its pkg_resources warning

from compat.sacred import add_documented_config

from ingredients.rebuild import add_rebuild_command
from ingredients.trainer import validate_lr

if TYPE_CHECKING:
    from sacred import Experiment

LR_DOC = "learning rate of the optimizer (before the trainer's schedule)"


def trainer_experiment(ex: Experiment, lr: float) -> Experiment:
    """`ex` (a sacred.Experiment with the trainer ingredient among its ingredients, whose `main` calls
    ingredients.trainer.train), tracked and checked, with the `rebuild` command; returns it.

    `lr` is the default of its top-level learning rate.
    """
    add_documented_config(ex, "lr", lr, LR_DOC)
    ex.config_hook(validate_lr)
    add_rebuild_command(ex)
    return track(ex)
