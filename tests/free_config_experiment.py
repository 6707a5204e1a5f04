"""A tiny tracked experiment whose main takes `extra`, a config entry of any shape (a config file may add keys
inside it): tests give it configs that MongoDB cannot store.

    python tests/free_config_experiment.py with extra.json
"""
import json
from pathlib import Path

from observers.track import track  # first: it imports Sacred without its pkg_resources warning
from sacred import Experiment

ex = track(Experiment("free_config", base_dir=Path(__file__).resolve().parent.parent))


@ex.config
def config():
    extra = {}  # anything; main returns its size as JSON


@ex.main
def main(extra):
    return len(json.dumps(extra))


if __name__ == "__main__":
    ex.run_commandline()
