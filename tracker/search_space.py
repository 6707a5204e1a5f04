"""What a sweep varies: `with` arguments split into fixed updates and swept parameters, and trials drawn from them.

    lr=0.05                       fixed (passed to every trial as it is; so is a named config such as `smoke`)
    lr=[0.01,0.05,0.1]            swept: every value (grid), or one of them (--random, --optuna)
    lr=loguniform(1e-3,0.3)       swept: log-uniform float in [low, high]   (--random, --optuna)
    dropout=uniform(0,0.5)        swept: uniform float in [low, high]
    model.width=intuniform(8,64)  swept: integer in [low, high]
    model.width=choice(16,32)     swept: one of the values
"""
from __future__ import annotations

import ast
import itertools
import math
import random
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runstore.errors import UserError

if TYPE_CHECKING:
    import optuna

DISTRIBUTIONS = ("loguniform", "uniform", "intuniform", "choice")
# A list, or a function call: what a fixed Sacred value never is.
_SWEPT = re.compile(r"^(?P<key>[A-Za-z_][\w.]*)=(?P<value>\[.*|(?P<kind>[A-Za-z_]\w*)\(.*)$", re.S)


@dataclass(frozen=True)
class Parameter:
    """One swept config key: `kind` is 'grid' (a list), or one of DISTRIBUTIONS, with its arguments."""

    key: str
    kind: str
    values: tuple[Any, ...]  # the list's or choice's values, or (low, high)

    def sample(self, rng: random.Random) -> Any:
        """A value drawn with `rng` (random.Random), for --random."""
        if self.kind in ("grid", "choice"):
            return rng.choice(self.values)
        low, high = self.values
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        return rng.randint(low, high) if self.kind == "intuniform" else rng.uniform(low, high)

    def suggest(self, trial: optuna.Trial) -> Any:
        """A value chosen by an Optuna trial, for --optuna."""
        if self.kind in ("grid", "choice"):
            return trial.suggest_categorical(self.key, list(self.values))
        low, high = self.values
        if self.kind == "intuniform":
            return trial.suggest_int(self.key, low, high)
        return trial.suggest_float(self.key, low, high, log=self.kind == "loguniform")


def split_arguments(arguments: Iterable[str]) -> tuple[list[str], list[Parameter]]:
    """(fixed, parameters): `with` arguments passed to every trial as they are, and the swept ones parsed."""
    fixed: list[str] = []
    parameters: list[Parameter] = []
    for argument in arguments:
        match = _SWEPT.match(argument)
        if match is None:
            fixed.append(argument)
        else:
            parameters.append(_parameter(argument, match))
    keys = [parameter.key for parameter in parameters]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UserError(f"{repeated[0]} is swept twice; give each key one list or distribution")
    return fixed, parameters


def _parameter(argument: str, match: re.Match[str]) -> Parameter:
    key, value, kind = match["key"], match["value"], match["kind"]
    if not value.endswith("]" if kind is None else ")"):
        raise UserError(f"{argument!r} is malformed: it does not end with {'] ' if kind is None else ') '}; "
                        f"e.g. {key}=[0.01,0.1] or {key}=loguniform(1e-3,0.3)")
    if kind is None:
        values = _values(argument, value[1:-1])
        if not values:
            raise UserError(f"{argument!r} lists no values; give at least one, e.g. {key}=[0.01,0.1]")
        return Parameter(key, "grid", values)
    values = _values(argument, value[len(kind) + 1:-1])
    if kind not in DISTRIBUTIONS:
        raise UserError(f"{argument!r}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}, "
                        f"or a list such as {key}=[1,2]")
    if kind == "choice":
        if not values:
            raise UserError(f"{argument!r} gives no values to choose from, e.g. {key}=choice(16,32)")
        return Parameter(key, kind, values)
    numbers = int if kind == "intuniform" else (int, float)
    if len(values) != 2 or not all(isinstance(v, numbers) and not isinstance(v, bool) for v in values) \
            or not values[0] < values[1] or kind == "loguniform" and values[0] <= 0:
        example = {"loguniform": "loguniform(1e-3,0.3)", "uniform": "uniform(0,0.5)", "intuniform": "intuniform(8,64)"}
        raise UserError(f"{argument!r} needs two {'integers' if kind == 'intuniform' else 'numbers'} low < high"
                        f"{' above 0' if kind == 'loguniform' else ''}, e.g. {key}={example[kind]}")
    return Parameter(key, kind, values)


def _values(argument: str, text: str) -> tuple[Any, ...]:
    """The comma-separated values of a list or distribution, read as Sacred reads a `with` value."""
    try:
        parsed = ast.literal_eval(f"[{text}]")
    except (ValueError, SyntaxError):
        # Unquoted words, as Sacred accepts them (e.g. [adam,sgd]); anything with brackets must be a literal.
        if any(bracket in text for bracket in "[]()'\""):
            raise UserError(f"{argument!r} is malformed; write values as in Python, e.g. lr=[0.01,0.1] or "
                            f"optimizer=[adam,sgd]") from None
        from compat.sacred import convert_value  # here: importing Sacred would slow every `tracker` command

        parsed = [convert_value(word.strip()) for word in text.split(",") if word.strip()]
    return tuple(parsed)


def grid(parameters: list[Parameter]) -> list[dict[str, Any]]:
    """Every combination of the listed values, as {key: value} dicts; only lists can make a grid."""
    drawn = [parameter for parameter in parameters if parameter.kind != "grid"]
    if drawn:
        raise UserError(f"{drawn[0].key}={drawn[0].kind}(...) is drawn at random; add --random N or --optuna N, "
                        f"or give a list, e.g. {drawn[0].key}=[0.01,0.1]")
    keys = [parameter.key for parameter in parameters]
    return [dict(zip(keys, values)) for values in itertools.product(*(p.values for p in parameters))]


def as_updates(params: dict[str, Any]) -> list[str]:
    """A trial's parameters as Sacred `with` updates; repr() reads back as the same value."""
    return [f"{key}={value!r}" for key, value in params.items()]


def new_seeds(count: int, taken: Collection[object] = ()) -> list[int]:
    """`count` different random seeds, none of them in `taken`, in Sacred's range of seeds."""
    rng = random.Random()
    seeds: list[int] = []
    while len(seeds) < count:
        seed = rng.randint(1, 10**9)  # sacred.randomness.SEEDRANGE
        if seed not in taken and seed not in seeds:
            seeds.append(seed)
    return seeds
