"""tracker/search_space.py: `with` arguments split into fixed and swept ones, grids, draws, seeds."""
import ast
import random

import optuna
import pytest

from runstore.errors import UserError
from tracker.search_space import Parameter, as_updates, grid, new_seeds, split_arguments


def test_fixed_arguments_pass_through_unchanged_in_order():
    arguments = ["smoke", "lr=0.05", "model.arch='resnet'", "data.root=/tmp/my data", "tags='[x]'"]
    fixed, parameters = split_arguments(arguments)
    assert fixed == arguments
    assert parameters == []


@pytest.mark.parametrize("argument, parameter", [
    ("lr=[0.01,0.05,0.1]", Parameter("lr", "grid", (0.01, 0.05, 0.1))),
    ("model.width=[8, 16]", Parameter("model.width", "grid", (8, 16))),
    ("optimizer=[adam,sgd]", Parameter("optimizer", "grid", ("adam", "sgd"))),  # unquoted words, as Sacred reads them
    ("flag=[True,False]", Parameter("flag", "grid", (True, False))),
    ("shape=[(1,2),(3,4)]", Parameter("shape", "grid", ((1, 2), (3, 4)))),
    ("lr=loguniform(1e-3,0.3)", Parameter("lr", "loguniform", (1e-3, 0.3))),
    ("dropout=uniform(0,0.5)", Parameter("dropout", "uniform", (0, 0.5))),
    ("model.width=intuniform(8,64)", Parameter("model.width", "intuniform", (8, 64))),
    ("model.width=choice(16,32)", Parameter("model.width", "choice", (16, 32))),
    ("act=choice(relu, gelu)", Parameter("act", "choice", ("relu", "gelu"))),
])
def test_swept_arguments_are_parsed_as_python_values(argument, parameter):
    fixed, parameters = split_arguments(["smoke", argument])
    assert fixed == ["smoke"] and parameters == [parameter]


@pytest.mark.parametrize("argument, message", [
    ("lr=[0.01,0.1", "does not end with ]"),
    ("lr=uniform(0,1", "does not end with )"),
    ("lr=[]", "lists no values"),
    ("lr=normal(0,1)", "unknown distribution 'normal'; use one of loguniform, uniform, intuniform, choice"),
    ("width=choice()", "gives no values to choose from"),
    ("lr=uniform(1,0)", "needs two numbers low < high, e.g. lr=uniform(0,0.5)"),
    ("lr=uniform(1,1)", "needs two numbers low < high"),
    ("lr=uniform(0,1,2)", "needs two numbers low < high"),
    ("lr=uniform(a,b)", "needs two numbers"),
    ("lr=uniform(False,True)", "needs two numbers"),
    ("lr=loguniform(0,1)", "low < high above 0, e.g. lr=loguniform(1e-3,0.3)"),
    ("lr=loguniform(-1,1)", "above 0"),
    ("width=intuniform(8,64.5)", "needs two integers low < high, e.g. width=intuniform(8,64)"),
    ("lr=[0.1,(0.2]", "is malformed; write values as in Python"),
    ("name=['a,b]", "is malformed"),
])
def test_malformed_sweep_specs_are_one_line_errors_naming_the_argument(argument, message):
    with pytest.raises(UserError) as error:
        split_arguments([argument])
    assert message in str(error.value) and repr(argument) in str(error.value) and "\n" not in str(error.value)


def test_a_key_swept_twice_is_an_error():
    with pytest.raises(UserError, match="lr is swept twice"):
        split_arguments(["lr=[0.1,0.2]", "model.width=[8]", "lr=uniform(0,1)"])


def test_grid_is_every_combination_in_argument_order():
    _, parameters = split_arguments(["lr=[0.1,0.2]", "width=[8,16,32]"])
    combinations = grid(parameters)
    assert len(combinations) == 6
    assert combinations[:3] == [{"lr": 0.1, "width": 8}, {"lr": 0.1, "width": 16}, {"lr": 0.1, "width": 32}]
    assert grid([]) == [{}]  # nothing swept: one trial of the fixed arguments


def test_grid_refuses_distributions_and_says_which_option_draws_them():
    _, parameters = split_arguments(["width=[8,16]", "lr=loguniform(1e-3,0.3)"])
    with pytest.raises(UserError, match=r"lr=loguniform\(\.\.\.\) is drawn at random; add --random N or --optuna N"):
        grid(parameters)


def test_updates_read_back_as_the_same_values():
    params = {"lr": 0.1, "optimizer": "adam", "shape": (1, 2), "flag": False, "text": "it's \"quoted\""}
    updates = as_updates(params)
    assert updates[0] == "lr=0.1"
    assert {u.split("=", 1)[0]: ast.literal_eval(u.split("=", 1)[1]) for u in updates} == params


@pytest.mark.parametrize("argument", [
    "lr=loguniform(1e-3,0.3)", "dropout=uniform(0,0.5)", "width=intuniform(8,64)", "width=choice(16,32)",
    "lr=[0.01,0.1]",
])
def test_draws_stay_within_the_distribution(argument):
    (parameter,) = split_arguments([argument])[1]
    rng = random.Random(0)
    drawn = [parameter.sample(rng) for _ in range(300)]
    if parameter.kind in ("grid", "choice"):
        assert set(drawn) == set(parameter.values)
    else:
        low, high = parameter.values
        assert all(low <= value <= high for value in drawn)
        assert all(isinstance(value, int) for value in drawn) == (parameter.kind == "intuniform")
        assert len(set(drawn)) > 20
    again = random.Random(0)
    assert drawn == [parameter.sample(again) for _ in range(300)]  # a seeded rng draws the same


def test_log_uniform_draws_spread_evenly_over_the_orders_of_magnitude():
    (parameter,) = split_arguments(["lr=loguniform(1e-4,1)"])[1]
    rng = random.Random(1)
    drawn = [parameter.sample(rng) for _ in range(4000)]
    below = sum(value < 1e-2 for value in drawn) / len(drawn)
    assert below == pytest.approx(0.5, abs=0.05)  # uniform would put 1 % below 1e-2


@pytest.mark.parametrize("argument, value", [
    ("lr=loguniform(1e-3,0.3)", 0.01), ("width=intuniform(8,64)", 9), ("act=choice(relu,gelu)", "gelu"),
    ("lr=[0.01,0.1]", 0.1),
])
def test_optuna_trials_suggest_within_the_parameter(argument, value):
    (parameter,) = split_arguments([argument])[1]
    assert parameter.suggest(optuna.trial.FixedTrial({parameter.key: value})) == value


def test_optuna_refuses_a_value_outside_a_choice():
    (parameter,) = split_arguments(["act=choice(relu,gelu)"])[1]
    with pytest.raises(ValueError):
        parameter.suggest(optuna.trial.FixedTrial({"act": "tanh"}))


def test_new_seeds_are_distinct_in_sacreds_range_and_avoid_taken_ones():
    taken = set(range(1, 1000))
    seeds = new_seeds(50, taken)
    assert len(seeds) == len(set(seeds)) == 50
    assert all(1 <= seed <= 10**9 and seed not in taken for seed in seeds)
    assert new_seeds(0) == []
