"""runstore/plain_json.py: stored values and `with` arguments are plain JSON (jsonpickle tags refused), configs flatten
to dotted keys."""
import pytest

from runstore.errors import UserError
from runstore.plain_json import dotted_keys, dotted_values, plain_arguments, plain_values


def test_plain_values_come_back_as_they_are():
    config = {"lr": 0.1, "model": {"arch": "resnet", "widths": [8, 16], "py": "a key named py is fine"},
              "note": "py/object is only text here", "3": None, "empty": {}, "rows": [[1, {"a": True}]]}
    assert plain_values(config, "run 3", "config") is config


@pytest.mark.parametrize("value, where", [
    ({"py/object": "os.system"}, "config.py/object"),
    ({"model": {"init": {"py/reduce": [{"py/function": "os.system"}, ["id"]]}}}, "config.model.init.py/reduce"),
    ({"steps": [1, 2, {"py/tuple": [1]}]}, "config.steps[2].py/tuple"),
    ({"grid": [[0], [1, [{"ok": 1}, {"py/id": 1}]]]}, "config.grid[1][1][1].py/id"),
    ({"a": {"b": 1}, "c": {"py/state": {}}, "d": {"py/type": "x"}}, "config.c.py/state"),  # the first one is named
    # Sacred reads with jsonpickle's keys=True, which decodes such a key, e.g. json://{"py/reduce": ...}, as jsonpickle
    ({"model": {'json://{"py/id": 1}': 2}}, 'config.model.json://{"py/id": 1}'),
])
def test_a_jsonpickle_tag_anywhere_is_refused_with_its_path(value, where):
    with pytest.raises(UserError) as error:
        plain_values(value, "run 3", "config")
    message = str(error.value)
    assert message.startswith(f"run 3's config holds the jsonpickle tag at {where}, which would run code when read")
    assert "\n" not in message


def test_the_message_names_what_was_read():
    with pytest.raises(UserError, match=r"^runs/5's info holds the jsonpickle tag at info\.py/object"):
        plain_values({"py/object": "x"}, "runs/5", "info")


def test_nested_configs_flatten_to_the_keys_the_command_line_takes():
    config = {"lr": 0.1, "trainer": {"steps": 100, "schedule": {"kind": "triangle", "warmup": 0.2}},
              "model": {"widths": [8, 16]}, "extra": {}}
    assert dotted_values(config) == {"lr": 0.1, "trainer.steps": 100, "trainer.schedule.kind": "triangle",
                                     "trainer.schedule.warmup": 0.2, "model.widths": [8, 16], "extra": {}}
    assert list(dotted_keys(config)) == ["lr", "trainer.steps", "trainer.schedule.kind", "trainer.schedule.warmup",
                                         "model.widths", "extra"]
    assert dotted_values({}) == {}


@pytest.mark.parametrize("value, where, problem", [
    ({"lr": 1j}, "config.lr", "a value of type complex, not a plain JSON value"),
    ({"grid": [1, {2: "x"}]}, "config.grid[1].2", "a key that is not text, not a plain JSON value"),
])
def test_values_json_cannot_hold_are_refused(value, where, problem):
    with pytest.raises(UserError) as error:
        plain_values(value, "run 3", "config")
    assert str(error.value).startswith(f"run 3's config holds {problem.split(',')[0]} at {where}, not a plain JSON")


def test_with_arguments_are_read_as_sacred_reads_them_before_the_check():
    fine = ["smoke", "lr=[0.01,0.1]", "model.arch=resnet", "lr=loguniform(1e-3,0.3)", "shape=(1, 2)", "note=py/x"]
    assert plain_arguments(fine, "sweep 1", "record in MongoDB", path="arguments") is fine
    planted = ["smoke", "trainer.steps={'py/reduce': [{'py/function': 'os.system'}, {'py/tuple': ['id']}]}"]
    with pytest.raises(UserError, match=r"^sweep 1's record in MongoDB holds the jsonpickle tag at "
                                        r"arguments\.trainer\.steps\.py/reduce, which would run code when read"):
        plain_arguments(planted, "sweep 1", "record in MongoDB", path="arguments")
    with pytest.raises(UserError,
                       match=r"^sweep 1's record holds 'smoke' at arguments, not a list of `with` arguments"):
        plain_arguments("smoke", "sweep 1", "record", path="arguments")
