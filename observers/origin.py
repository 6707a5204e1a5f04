"""How `tracker rerun` and `tracker resume` tell a new run where it comes from.

Sacred's command line sets config values only, so these travel as environment variables of the new process.
"""
RUN_INFO_ENV = "TRACKER_RUN_INFO"  # JSON merged into the new run's info: rerun_of, resumed_from, ...
RESUME_CHECKPOINT_ENV = "TRACKER_RESUME_CHECKPOINT"  # a checkpoint.pt file for the trainer to continue from
PRUNING_ENV = "TRACKER_PRUNING"  # JSON naming a pruned sweep's Optuna study and trial (ingredients.pruning)
PRUNED_TAG = "pruned"  # the Omniboard tag of a run its sweep's pruner stopped early; listings show it as PRUNED
