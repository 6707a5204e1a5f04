"""A stored run is data: the paths and config values it holds are checked before a rerun or an export uses them."""
import os
from pathlib import PurePath
from types import SimpleNamespace

import pytest

from runstore.errors import UserError
from tracker.export import safe_relative
from tracker.options import given_data_root
from tracker.launch import (SHOWN_VALUE_CHARS, check_config_keys, check_data_root, differences, inside_checkout,
                            relative_inside)


@pytest.mark.parametrize("value", ["experiments/cifar.py", "a/./b.py", "cifar.py"])
def test_relative_paths_inside_a_checkout_are_taken(value):
    assert relative_inside("run 3", "mainfile", value) == PurePath(value)


@pytest.mark.parametrize("value", ["/etc/passwd", "../elsewhere/x.py", "experiments/../../x.py", "", None, 3])
def test_absolute_escaping_or_missing_paths_are_refused(value):
    with pytest.raises(UserError, match=rf"^run 3's mainfile {value!r} is not a relative path inside a checkout; "
                                        "it was not run"):
        relative_inside("run 3", "mainfile", value)


def test_a_path_leading_out_of_the_checkout_through_a_link_is_refused(tmp_path):
    checkout, outside = tmp_path / "checkout", tmp_path / "outside"
    (checkout / "experiments").mkdir(parents=True)
    outside.mkdir()
    (outside / "evil.py").write_text("")
    (checkout / "experiments" / "run.py").write_text("")
    os.symlink(outside / "evil.py", checkout / "experiments" / "linked.py")
    assert inside_checkout("run 3", "mainfile", "experiments/run.py", [checkout]) == checkout / "experiments" / "run.py"
    with pytest.raises(UserError, match=r"run 3's mainfile 'experiments/linked.py' is outside .*checkout; it was not "
                                        r"run.* \(commit it\)$"):
        inside_checkout("run 3", "mainfile", "experiments/linked.py", [checkout], fix="commit it")


def test_the_second_checkout_is_tried_too(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    os.symlink(second / "x.py", first / "x.py")
    assert inside_checkout("run 3", "mainfile", "x.py", [first, second]) == second / "x.py"


def stored(config):
    return SimpleNamespace(label="run 3", config=config)


DEFAULTS = {"lr": 0.1, "data": {"root": "data/cifar", "limit": None}, "trainer": {"steps": 100}}


@pytest.mark.parametrize("root, updates", [
    ("data/cifar", []), ("data/cifar/subset", []), ("/anywhere", ["data.root=/anywhere"]), (None, []),
])
def test_data_roots_inside_the_data_folder_or_given_on_the_command_line_pass(root, updates):
    config = {"data": {"root": root}} if root else {"data": {}}
    check_data_root(stored(config), DEFAULTS, updates)


@pytest.mark.parametrize("root", ["/etc", "data/cifar/../../src", "data", "elsewhere/cifar", "", 5])
def test_a_stored_data_root_outside_the_data_folder_is_refused(root):
    with pytest.raises(UserError, match=rf"^run 3's data.root {root!r} is outside the experiment's data folder "
                                        r"'data/cifar'; .* \(with data.root=PATH\)$"):
        check_data_root(stored({"data": {"root": root}}), DEFAULTS, ["lr=0.2"])


def test_config_keys_the_code_no_longer_has_are_refused():
    check_config_keys(stored({"lr": 0.2, "trainer": {"steps": 5}}), DEFAULTS)
    with pytest.raises(UserError, match=r"^run 3's config has model.depth, trainer.old, which this checkout's code no "
                                        r"longer has; add --at-commit to run the original code$"):
        check_config_keys(stored({"lr": 0.2, "trainer": {"old": 1}, "model": {"depth": 3}}), DEFAULTS)


def test_what_a_rerun_runs_is_said_in_one_line():
    config = {"lr": 0.2, "data": {"root": "data/cifar", "limit": None}, "trainer": {"steps": 100},
              "note": "x" * 100}
    line = differences(config, DEFAULTS)
    assert line == f'config differing from its defaults: lr=0.2, note="{"x" * (SHOWN_VALUE_CHARS - 2)}…'
    assert differences(DEFAULTS, DEFAULTS) == "its default config"
    assert differences(config, None).startswith("the script ignores its command line")


@pytest.mark.parametrize("path", ["/etc/passwd", "../x.py", "a/../../x.py", ""])
def test_exports_write_source_files_only_inside_the_export(path):
    with pytest.raises(UserError, match="stores a source file at .* outside its experiment's folder; it was not "
                                        "exported"):
        safe_relative(path, "run 3")
    assert str(safe_relative("ingredients/task.py", "run 3")) == "ingredients/task.py"


@pytest.mark.parametrize("arguments, updates",
                         [([], []), (["with", "data.root=/data/tiles"], ["data.root=/data/tiles"])])
def test_a_continued_run_or_sweep_takes_only_where_its_data_is(arguments, updates):
    assert given_data_root(arguments, "it continues", "tracker sweep --continue 3") == updates


@pytest.mark.parametrize("arguments", [["with", "lr=0.5"], ["data.root=/data/tiles"], ["experiments/cifar.py"]])
def test_other_arguments_to_a_continued_run_or_sweep_are_refused_in_one_line(arguments):
    with pytest.raises(UserError, match=r"^it continues; only where its data is may be given, e.g. tracker sweep "
                                        r"--continue 3 with data.root=PATH$"):
        given_data_root(arguments, "it continues", "tracker sweep --continue 3")
