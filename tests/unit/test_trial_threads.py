"""How many torch threads each trial of a sweep gets (tracker.sweep.trial_threads): the cores shared out between the
trials a local sweep runs at once, unless one runs at a time, SLURM gives each job its cores, or the user chose."""
import pytest

from tracker import sweep
from tracker.sweep import trial_threads


@pytest.fixture
def cores(monkeypatch):
    monkeypatch.setattr(sweep, "available_cores", lambda: 8)


@pytest.mark.parametrize("parallel, threads", [(2, 4), (3, 2), (8, 1), (20, 1)])
def test_trials_at_once_share_the_cores(cores, parallel, threads):
    assert trial_threads(True, parallel, {}) == threads


@pytest.mark.parametrize("local, parallel, environ", [
    (True, None, {}),  # one trial at a time
    (True, 1, {}),
    (False, 4, {}),  # SLURM jobs
    (True, 4, {"OMP_NUM_THREADS": "8"}),  # the user's choice
])
def test_torch_keeps_its_default_otherwise(cores, local, parallel, environ):
    assert trial_threads(local, parallel, environ) is None
