"""observers/origin.py: a rerun whose script ignored its command line is told apart from one that got its config."""
import json

import pytest

from observers.origin import config_not_given

STORED = {"lr": 0.01, "seed": 7, "trainer": {"steps": 100, "device": "cpu"}, "model": {"widths": [8, 16]}}


@pytest.fixture
def rerun(tmp_path):
    """The arguments `tracker rerun` passes (Handoff.rerun_arguments): the stored config's file, then the changes."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(STORED))
    return lambda *changes: [str(config_file), *changes]


def test_a_run_that_is_no_rerun_is_not_checked():
    assert config_not_given({"lr": 5}, {}, "run 3", None) is None


def test_a_run_whose_command_line_carried_the_arguments_passes(rerun):
    arguments = rerun("lr=0.1")
    assert config_not_given({"anything": 1}, {"options": {"UPDATE": arguments}}, "run 3", arguments) is None


def test_a_run_with_the_stored_config_passes_even_without_the_options(rerun):
    config = {**STORED, "trainer": dict(STORED["trainer"])}
    assert config_not_given(config, {}, "run 3", rerun()) is None


def test_an_ignored_command_line_names_what_differs_and_what_was_left_out(rerun):
    arguments = rerun("lr=0.1", "trainer.steps=5")
    # A tuple equals the stored list: configs compare as JSON.
    got = {"lr": 0.02, "seed": 8, "trainer": {"steps": 100}, "model": {"widths": (8, 16)}, "extra": True}
    message = config_not_given(got, {"options": {"UPDATE": ["lr=0.02"]}}, "run 4", arguments)
    assert message.startswith("run 4's config differs from the stored one in extra, lr, seed, trainer.device "
                              "and leaves out the changes lr=0.1 trainer.steps=5, because its script ignores its "
                              "command line (it calls ex.run itself); the run was stopped")
    assert "\n" not in message


def test_ignored_changes_alone_are_reported(rerun):
    assert config_not_given(STORED, {}, "run 5", rerun("lr=0.1")).startswith(
        "run 5's config differs from the stored one in nothing and leaves out the changes lr=0.1")
