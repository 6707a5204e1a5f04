"""runstore/query.py's pure part: --where conditions, and selecting, sorting and comparing run rows."""
import datetime
import math

import pytest

from runstore.direction import mixed_directions
from runstore.errors import UserError
from runstore.query import (Condition, conditions, differing_keys, differing_keys_within_experiments,
                            parse_condition, rank_best, select)


@pytest.mark.parametrize("text, parsed", [
    ("config.lr>=0.01", ("config.lr", ">=", "0.01")),
    ("status=COMPLETED", ("status", "=", "COMPLETED")),
    ("  val.acc.max  <  0.5 ", ("val.acc.max", "<", "0.5")),
    ("config.data.root!=/tmp/a b", ("config.data.root", "!=", "/tmp/a b")),
    ("sys.gpu-0/util>1", ("sys.gpu-0/util", ">", "1")),
    ("experiment~^ci(far)?$", ("experiment", "~", "^ci(far)?$")),
    ("host=", ("host", "=", "")),
    ("note=a=b", ("note", "=", "a=b")),
])
def test_conditions_parse_into_key_operator_and_text(text, parsed):
    condition = parse_condition(text)
    assert (condition.key, condition.op, condition.text) == parsed
    assert str(condition) == "".join(parsed)


@pytest.mark.parametrize("text, message", [
    ("config.lr", "is not a condition; write KEY OP VALUE"),
    (">=0.1", "is not a condition"),
    ("1lr=3", "is not a condition"),
    ("lr>>1", "'>>' is not an operator; use one of = != < <= > >= ~, e.g. lr>=1"),
    ("lr=<1", "'=<' is not an operator"),
    ("lr==1", "'==' is not an operator"),
    ("experiment~(", "'(' is not a regular expression"),
])
def test_malformed_conditions_are_one_line_errors(text, message):
    with pytest.raises(UserError) as error:
        parse_condition(text)
    assert message in str(error.value) and repr(text) in str(error.value) and "\n" not in str(error.value)


START = datetime.datetime(2026, 11, 1, 14, 30)
ROW = {"id": 7, "status": "COMPLETED", "result": 0.5, "config.lr": 0.01, "config.flag": True, "start": START,
       "tags": ["sweep-1", "pruned"], "config.name": "resnet", "host": None}


@pytest.mark.parametrize("text, matches", [
    ("config.lr>=0.01", True), ("config.lr>0.01", False), ("config.lr=1e-2", True), ("config.lr!=0.01", False),
    ("result<1", True), ("result<=0.5", True), ("id=7", True), ("id=7.0", True),
    ("config.flag=true", True), ("config.flag=False", False), ("config.flag!=false", True),
    ("start>=2026-11-01", True), ("start<2026-11-01T14:30", False), ("start=2026-11-01T14:30:00", True),
    ("config.name=resnet", True), ("config.name>abc", True), ("config.name~^res", True), ("config.name~NET", False),
    ("tags=pruned", True), ("tags=sweep-2", False), ("tags~^sweep-", True),
    ("host=anything", False), ("host!=anything", False),  # a missing value meets no condition
    ("config.lr=fast", False), ("config.lr!=fast", True),  # = and != compare as text what is not a number
    ("result~^0\\.5$", True),
])
def test_conditions_compare_numbers_bools_and_times_by_type(text, matches):
    assert parse_condition(text).matches(ROW) is matches


@pytest.mark.parametrize("text, message", [
    ("config.lr>fast", "config.lr holds number values, and 'fast' is not one; compare it with a number, "
                       "e.g. config.lr>0.5"),
    ("config.flag<maybe", "holds true or false values"),
    ("start>=yesterday", "holds time values, and 'yesterday' is not one; compare it with a time, "
                         "e.g. start>=2026-11-01T14:30"),
])
def test_an_ordering_against_a_value_of_another_type_is_an_error(text, message):
    with pytest.raises(UserError, match=message):
        parse_condition(text).matches(ROW)


def test_options_become_conditions():
    assert conditions(["result>0"], experiment="cifar", tag="best", since="2026-11-01") == [
        Condition("result", ">", "0"), Condition("experiment", "=", "cifar"), Condition("tags", "=", "best"),
        Condition("start", ">=", "2026-11-01")]
    assert conditions() == []


ROWS = [
    {"id": 1, "experiment": "cifar", "result": 0.7, "config.lr": 0.1, "config.seed": 1},
    {"id": 2, "experiment": "cifar", "result": None, "config.lr": 0.01, "config.seed": 2},
    {"id": 3, "experiment": "cifar", "result": 0.9, "config.lr": 0.1, "config.seed": 3},
    {"id": 4, "experiment": "cifar", "result": math.nan, "config.lr": 1.0, "config.seed": 4},
]


def ids(rows):
    return [row["id"] for row in rows]


def test_select_sorts_with_missing_values_last_and_limits():
    assert ids(select(ROWS, sort="result")) == [1, 3, 4, 2]  # NaN after the numbers, the missing value last
    assert ids(select(ROWS, sort="-result")) == [3, 1, 4, 2]  # a diverged run is never ranked first
    assert ids(select(ROWS, [parse_condition("config.lr=0.1")], sort="-result", limit=1)) == [3]
    assert ids(select(ROWS, limit=0)) == []


def test_select_names_the_closest_keys_of_an_unknown_one():
    with pytest.raises(UserError, match=r"--where: no run has 'config.lrr'; did you mean config.lr"):
        select(ROWS, [parse_condition("config.lrr>0")])
    with pytest.raises(UserError, match=r"--sort: no run has 'zzz'; `tracker runs --format csv` shows every column"):
        select(ROWS, sort="-zzz")


def test_best_ranks_each_experiment_by_its_own_direction():
    rows = [{"id": 1, "experiment": "loss", "result": 0.3, "higher_is_better": False},
            {"id": 2, "experiment": "acc", "result": 0.6},
            {"id": 3, "experiment": "loss", "result": 0.1, "higher_is_better": False},
            {"id": 4, "experiment": "acc", "result": 0.8},
            {"id": 5, "experiment": "acc", "result": math.nan},
            {"id": 6, "experiment": "acc", "result": True}]  # a bool is no result
    assert ids(rank_best(rows)) == [4, 2, 5, 6, 3, 1]
    assert "higher is better (acc) and where lower is better (loss)" in mixed_directions(rows)
    assert mixed_directions(rows[1::2]) is None


def test_a_mix_of_directions_is_noted_with_what_the_chosen_sort_does(capsys):
    rows = [{"id": 1, "experiment": "loss", "result": 0.3, "higher_is_better": False},
            {"id": 2, "experiment": "acc", "result": 0.6}]
    mix = "NOTE: these runs mix results where higher is better (acc) and where lower is better (loss)"
    select(rows, sort="best")
    assert capsys.readouterr().err == f"{mix}; each experiment is ranked by its own\n"
    select(rows, sort="-result")
    assert capsys.readouterr().err == f"{mix}; --sort best ranks each by its own\n"


def test_differing_keys_leave_out_the_seed_and_what_no_run_changes():
    assert differing_keys(ROWS) == ["config.lr"]
    assert differing_keys(ROWS[:1]) == []
    rows = [{"experiment": "a", "config.lr": 1, "config.a_only": 1}, {"experiment": "a", "config.lr": 2},
            {"experiment": "b", "config.b_only": 5}, {"experiment": "b", "config.b_only": 5, "config.seed": 9}]
    # a key missing from one run of an experiment differs; one that only another experiment has does not
    assert differing_keys_within_experiments(rows) == ["config.a_only", "config.lr"]
