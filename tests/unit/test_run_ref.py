"""runstore/run_ref.py and observers/origin.py's Handoff: how a run is named, and how a started run names itself."""
import json
from pathlib import Path

import pytest

from observers.origin import HANDOFF_ENV, Handoff, received_handoff
from runstore.errors import UserError
from runstore.run_ref import RunRef


@pytest.mark.parametrize("reference, expected", [
    ("3", RunRef(database_id=3)),
    ("runs/3", RunRef(folder=Path("runs/3"))),
    ("./3", RunRef(folder=Path("3"))),
    ("/abs/runs/12", RunRef(folder=Path("/abs/runs/12"))),
    ("\u00b2", RunRef(folder=Path("\u00b2"))),  # a superscript two is a digit to str.isdigit, but no run id
])
def test_a_number_is_a_run_id_and_anything_else_a_folder(reference, expected):
    assert RunRef.parse(reference) == expected


def test_an_empty_reference_is_a_one_line_error():
    with pytest.raises(UserError, match="e.g. 3"):
        RunRef.parse("")


def test_a_run_ref_names_something():
    with pytest.raises(ValueError):
        RunRef()


@pytest.mark.parametrize("stored", [None, [], "3", {"database_id": "3"}, {"database_id": True},
                                    {"folder": 3}, {"folder": ""}, {"database_id": None, "folder": None}])
def test_a_stored_run_ref_of_another_shape_names_no_run(stored):
    assert RunRef.from_json(stored) is None


def test_a_handoff_carries_its_values_and_the_answer_back(tmp_path, monkeypatch):
    handoff = Handoff.create(tmp_path, {"rerun_of": 4}, ["config.json", "lr=0.1"], {"trial": 2})
    assert handoff.answered() is None  # the run has not named itself yet
    monkeypatch.setenv(HANDOFF_ENV, str(handoff.path))
    received = received_handoff()
    assert (received.info, received.rerun_arguments, received.pruning) == (
        {"rerun_of": 4}, ["config.json", "lr=0.1"], {"trial": 2})

    received.answer(RunRef(7, tmp_path / "runs" / "1"))
    assert handoff.answered() == RunRef(7, tmp_path / "runs" / "1")
    received.answer(RunRef(7))  # the run's end: its folder was uploaded and removed
    assert handoff.answered() == RunRef(7)
    assert Handoff.read(handoff.path).info == {"rerun_of": 4}  # the answer keeps what was handed over


def test_a_handoff_file_is_data(tmp_path):
    path = tmp_path / "handoff.json"
    path.write_text(json.dumps({"info": "x", "rerun_arguments": ["a", 1], "pruning": [1], "run": {"folder": 5}}))
    handoff = Handoff.read(path)
    assert (handoff.info, handoff.rerun_arguments, handoff.pruning, handoff.answered()) == ({}, None, None, None)
    path.write_text(json.dumps({"rerun_arguments": []}))  # no stored config file to compare with
    assert Handoff.read(path).rerun_arguments is None
    path.write_text("[1, 2]")
    assert Handoff.read(path).info == {} and Handoff(path).answered() is None


def test_an_unreadable_handoff_costs_the_run_only_its_origin(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(HANDOFF_ENV, str(tmp_path / "gone" / "handoff.json"))  # its command's folder was removed
    assert received_handoff() is None
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"WARNING: {HANDOFF_ENV}=") and "without the origin" in warning


def test_no_handoff_outside_a_tracker_command(monkeypatch):
    monkeypatch.delenv(HANDOFF_ENV, raising=False)
    assert received_handoff() is None
