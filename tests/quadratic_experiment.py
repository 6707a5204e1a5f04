"""A tiny tracked experiment whose result is a loss (lower is better): gradient descent on f(w) = w^2 from a start
drawn with the run's seed. The learning rate decides the result; `unused` is a config key that training ignores.
Above lr=1 the descent diverges and the run fails. `save_result=True` also prints the result and stores it as the
artifact result.json.

    python tests/quadratic_experiment.py with lr=0.1
"""
import json
import random
import tempfile
from pathlib import Path

from observers.track import track  # first: it imports Sacred without its pkg_resources warning
from sacred import Experiment


ex = track(Experiment("quadratic", base_dir=Path(__file__).resolve().parent.parent), higher_is_better=False)


@ex.config
def config():
    lr = 0.1  # step size of gradient descent
    steps = 10  # descent steps
    unused = 0.5  # read by nothing
    save_result = False  # print the result and store it as the artifact result.json


@ex.main
def main(lr, steps, save_result, seed, _run, _seed):
    _run.info["result_metric"] = "val.loss"
    w = 1 + random.Random(_seed).random()
    for step in range(1, steps + 1):
        w -= lr * 2 * w
        _run.log_scalar("val.loss", w * w, step)
        if w * w > 1e3:
            raise RuntimeError(f"diverged at step {step}: lr={lr} is too large")
    if save_result:
        print(f"result {w * w!r} from seed {seed}")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "result.json"
            path.write_text(json.dumps({"seed": seed, "result": w * w}))
            _run.add_artifact(path)
    return w * w


if __name__ == "__main__":
    ex.run_commandline()
