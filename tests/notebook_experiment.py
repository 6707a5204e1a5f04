"""An experiment run as in a Jupyter notebook: `@ex.main`, then `ex.run(config_updates=...)`; no command line."""
from sacred import Experiment

from observers.track import track

ex = track(Experiment("notebook"))


@ex.config
def config():
    steps = 3  # how many points to log


@ex.main
def main(steps, _run):
    for step in range(steps):
        _run.log_scalar("x", step, step)
    return steps


ex.run(config_updates={"steps": 5})
