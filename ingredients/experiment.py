"""`trainer_experiment(ex)`: what every experiment that trains with the trainer ingredient shares.

The experiment's file holds its research (its ingredients, config, named configs and `main`); this adds the rest:
- its recording (observers.track), which also gives it `--resume=CHECKPOINT` for `tracker resume`;
- the check of its top-level `lr`, which the trainer's own config hook cannot see (ingredients.trainer.validate_lr);
- the `rebuild` command, through which `tracker`'s load_model and export build a run's network (ingredients.rebuild).
"""
from observers.track import track  # first: it imports Sacred without its pkg_resources warning

from ingredients.rebuild import add_rebuild_command
from ingredients.trainer import validate_lr


def trainer_experiment(ex, make_task=None):
    """`ex` (a sacred.Experiment with the trainer ingredient among its ingredients), tracked and checked; returns it.

    `make_task()` returns the experiment's ingredients.task.Task as its `main` creates it; given, `ex` gets the
    `rebuild` command.
    """
    ex.config_hook(validate_lr)
    if make_task is not None:
        add_rebuild_command(ex, make_task)
    return track(ex)
