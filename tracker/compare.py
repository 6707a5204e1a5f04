"""`tracker compare RUN RUN [...]`: runs side by side (config differences, result, metric summaries, commit), and
optionally one metric of each overlaid in a figure; `--paired`, two runs example by example, and `--group-by KEY`,
two values of KEY over runs paired by seed (runstore.paired), each with its verdict."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstore.environment import differences
from runstore.errors import UserError
from runstore.paired import ALPHA, POWER, SIGN_FLIP_SEEDS, paired_comparison, seed_comparison
from runstore.predictions import SPLIT
from runstore.query import (by_experiment, check_keys, differing_keys, differing_keys_within_experiments,
                            metric_history, rows_of)
from runstore.run_store import open_run
from tracker.runs import HEADERS, cell, render_table
from tracker.selection import add_selection_arguments, selected

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

    from runstore.paired import ClassDifference, Interval, PairVerdict, SeedVerdict

RUN_KEYS = ["experiment", "status", "start", "duration_s", "commit", "result"]
# What each run trained on (ingredients.fingerprint): the data, then each split's membership.
DATA_KEYS = ["info.data.digest", "info.data.splits.train", "info.data.splits.val", "info.data.splits.test"]
SUMMARIES = ("last", "min", "max")
LABEL_KEYS = 3  # config keys at most in a legend entry; the table lists every differing one


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare runs side by side; overlay a metric of each in a figure",
        description=(
            "Show runs side by side: the config keys that differ (all of them with --all), status, git commit, "
            "result, the digests of the data and splits they trained on, the last, min and max of every metric, and "
            "where their environments differ (env.torch, env.packages.NAME, ...); a warning names runs that trained "
            "on different data or splits. With --plot, also draw one metric of every run (all its points) in one "
            "figure."
        ),
    )
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run ids (as in Omniboard) or run folders (runs/3)")
    parser.add_argument("--all", action="store_true", help="show every config key, not only those that differ")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a figure of --metric for every run")
    parser.add_argument("--metric", help="the metric to plot, e.g. val.acc")
    paired = parser.add_mutually_exclusive_group()
    paired.add_argument("--paired", action="store_true",
                        help="two runs example by example, on their stored predictions: the difference with a paired "
                             "bootstrap 95%% CI, McNemar's exact test (Wilcoxon's for a regression), per-class "
                             "differences with Holm-adjusted p-values, the examples they disagree on most")
    paired.add_argument("--group-by", metavar="KEY",
                        help="two values of KEY (e.g. data.stream) over the runs given or selected (--sweep, "
                             "--where, ...), paired by seed: the mean paired difference with its CI, the sign-flip "
                             "permutation p-value, P(A > B), the seeds 80%% power needs, the per-class picture")
    parser.add_argument("--values", metavar="A,B", help="with --group-by: the two values to compare, A first")
    parser.add_argument("--split", default=SPLIT, help=f"with --paired or --group-by: the split (default: {SPLIT})")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.paired:
        return run_paired(args)
    if args.group_by:
        return run_grouped(args)
    if len(args.runs) < 2:
        raise UserError("give at least two runs to compare, e.g. tracker compare 3 4")
    if (args.plot is None) != (args.metric is None):
        raise UserError("--plot FILE.png and --metric NAME go together, e.g. --plot val_acc.png --metric val.acc")
    rows = rows_of(args.runs)
    config_keys = (sorted({k for row in rows for k in row if k.startswith("config.")}) if args.all
                   else differing_keys(rows))
    metrics = sorted({key.rsplit(".", 1)[0] for row in rows for key in row if key.endswith(".last")})
    data_keys = [key for key in DATA_KEYS if any(key in row for row in rows)]
    keys = RUN_KEYS + data_keys + config_keys + [f"{metric}.{stat}" for metric in metrics for stat in SUMMARIES]
    header = [""] + [str(row["id"]) for row in rows]
    lines = [[HEADERS.get(key, key)] + [_short(cell(row.get(key), key), key) for row in rows] for key in keys]
    environments = [open_run(reference).info.get("environment") or {} for reference in args.runs]
    for key, values in differences(environments).items():
        lines.append([f"env.{key}"] + [cell(value, key) for value in values])
    written = plot(rows, args.metric, args.plot) if args.plot else None
    print(render_table([header] + lines), end="")
    warning = data_warning(rows)
    if warning:
        print(warning)
    if written:
        print(written)
    return 0


def data_warning(rows: list[dict[str, Any]]) -> str | None:
    """A line naming the runs that trained on other data, or on other splits of it, than the first; None if none."""
    recorded = [row for row in rows if "info.data.digest" in row]  # runs from before fingerprints have none
    for keys, what in ((DATA_KEYS[:1], "different data"), (DATA_KEYS[1:], "different splits of the data")):
        differing = [key for key in keys if len({row.get(key) for row in recorded}) > 1]
        if differing:
            return (f"WARNING: runs {', '.join(str(row['id']) for row in recorded)} trained on {what} "
                    f"({', '.join(differing)} differ); their results are not directly comparable")
    return None


def legend_label(row: dict[str, Any], label_keys: list[str], several_experiments: bool) -> str:
    """'run 3 (lr=0.01)', or 'run 3 (cifar, lr=0.01)' beside runs of other experiments."""
    settings = [f"{key.removeprefix('config.')}={row.get(key)}" for key in label_keys if key in row][:LABEL_KEYS]
    details = ", ".join([row["experiment"]] * several_experiments + settings)
    return f"run {row['id']}" + (f" ({details})" if details else "")


def plot(rows: list[dict[str, Any]], metric: str, path: str) -> str:
    """Draw every point of `metric` of each run in one figure at `path`; a line saying what was written."""
    from matplotlib.figure import Figure  # here, not at the top: every tracker command starts faster without it

    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.subplots()
    points = 0
    # Keys that only one experiment has tell the runs apart no better than the experiment's name.
    label_keys = differing_keys_within_experiments(rows)
    several_experiments = len(by_experiment(rows)) > 1
    logged = [row for row in rows if f"{metric}.last" in row]
    if not logged:  # names the closest metrics of the first run
        metric_history(rows[0]["id"], metric)
    for row in logged:
        history = metric_history(row["id"], metric)
        axes.plot(history.step, history.value, label=legend_label(row, label_keys, several_experiments))
        points += len(history)
    axes.set(xlabel="step", ylabel=metric, title=f"{metric} of runs {', '.join(str(row['id']) for row in logged)}")
    axes.legend()
    figure.savefig(path, dpi=100)
    missing = [str(row["id"]) for row in rows if row not in logged]
    without = f"; runs without {metric}, not drawn: {', '.join(missing)}" if missing else ""
    return f"wrote {path}: {len(axes.get_lines())} curves of {metric}, {points} points{without}"


def _short(text: str, key: str) -> str:
    return text[:12] if key == "commit" else text


# ---- paired verdicts --------------------------------------------------------------------------------------------
METRIC_NAMES = {"acc": "accuracy", "mae": "mean absolute error"}
Table = list[list[str]]  # rows of text, the first the header
Section = tuple[str, Table]  # (heading, table)


def run_paired(args: argparse.Namespace) -> int:
    if len(args.runs) != 2:
        raise UserError("--paired compares two runs, e.g. tracker compare 3 4 --paired")
    first, second = args.runs
    verdict = paired_comparison(first, second, split=args.split)
    lines, classes, disagreements = pair_verdict_parts(verdict, first, second, args.split)
    print("\n".join(lines))
    for heading, table in (classes, disagreements):
        if table:
            print(f"\n{heading}")
            print(render_table(table), end="")
    return 0


def pair_verdict_parts(verdict: PairVerdict, first: object, second: object,
                       split: str) -> tuple[list[str], Section, Section]:
    """(summary lines, (heading, per-class table), (heading, most-disagreeing table)) of a PairVerdict, tables as
    lists of rows of text (empty when there is nothing to show): what `--paired` prints and the ui's compare view
    shows."""
    lines = [f"run {first} (A) against run {second} (B), paired by example: {verdict.n} examples of the {split} split",
             f"{METRIC_NAMES[verdict.metric]}: A {verdict.a:.4f}, B {verdict.b:.4f}",
             f"A - B: {_interval(verdict.overall)} (paired bootstrap over examples); {verdict.test}: "
             f"p = {verdict.overall.p_value:.3g}",
             f"verdict: {verdict_line(verdict.overall, verdict.metric, 'A', 'B', 'paired by example')}"]
    classes = (f"per class, A's largest advantage first (CI: bootstrap over the class's examples; p: McNemar's, "
               f"Holm-adjusted over {len(verdict.classes)} classes):",
               class_rows(verdict.classes, "A", "B") if verdict.classes else [])
    return lines, classes, disagreement_parts(verdict, split, "")


def disagreement_parts(verdict: PairVerdict | SeedVerdict, split: str, pooled: str) -> Section:
    """(heading, table as rows of text) of a PairVerdict's or SeedVerdict's most-disagreeing examples; an empty
    table when there are none."""
    scored = "score of the label" if verdict.metric == "acc" else "absolute error"
    table: Table = []
    if verdict.disagreements:
        table = [["id", "label" if verdict.metric == "acc" else "target", "A predicted", "B predicted",
                  f"A {scored}", f"B {scored}"]]
        names = verdict.names
        named = (lambda label: names[int(label)]) if names else cell
        table += [[str(item.id), named(item.label), named(item.predicted_a), named(item.predicted_b),
                   f"{item.score_a:.3f}", f"{item.score_b:.3f}"] for item in verdict.disagreements]
    return f"examples where they disagree most{pooled} (id: position in the {split} split; {scored}):", table


def run_grouped(args: argparse.Namespace) -> int:
    rows = rows_of(args.runs) if args.runs else selected(args)[0]
    key = args.group_by if args.group_by in set().union(*rows) else f"config.{args.group_by}"
    check_keys(rows, [key], "--group-by")
    values = [_typed(value, key, rows) for value in args.values.split(",")] if args.values else None
    value_a, value_b, runs, verdict = seed_comparison(rows, key, values, args.split)
    lines, seeds, classes, disagreements = seed_verdict_parts(verdict, key, value_a, value_b, runs, args.split)
    print(lines[0])
    print(render_table(seeds), end="")
    print("\n".join(lines[1:]))
    for heading, table in (classes, disagreements):
        if table:
            print(f"\n{heading}")
            print(render_table(table), end="")
    return 0


def seed_verdict_parts(verdict: SeedVerdict, key: str, value_a: Any, value_b: Any,
                       runs: dict[Any, tuple[Any, Any]], split: str) -> tuple[list[str], Table, Section, Section]:
    """(summary lines, the per-seed table, (heading, per-class table), (heading, most-disagreeing table)) of a
    SeedVerdict, tables as lists of rows of text; the per-seed table goes after the first line: what `--group-by`
    prints and `tracker report` shows."""
    name = key.removeprefix("config.")
    lines = [f"{name}={value_a} (A) against {name}={value_b} (B), paired by seed: {len(verdict.seeds)} seeds, "
             f"{METRIC_NAMES[verdict.metric]} on the {split} split",
             f"mean: A {verdict.a:.4f}, B {verdict.b:.4f}; A - B: {_interval(verdict.overall)} (Student's t over "
             f"seeds); sign-flip permutation p = {verdict.overall.p_value:.3g}; P(A > B) over seeds = "
             f"{verdict.p_a_better:.2f}",
             f"verdict: {verdict_line(verdict.overall, verdict.metric, value_a, value_b, 'paired by seed')}"]
    if verdict.warning:
        lines.append(verdict.warning)
    if verdict.seeds_for_power is not None:
        lines.append(f"power: {verdict.seeds_for_power} seeds would detect a difference of "
                     f"{abs(verdict.overall.difference):.4f} with {POWER:.0%} power (paired t-test at alpha {ALPHA}, "
                     f"with the spread seen over these seeds; at least {SIGN_FLIP_SEEDS}, the fewest with which the "
                     f"sign-flip test can reach it)")
    seeds = [["seed", "run A", "run B", "A - B"]]
    seeds += [[str(seed), *map(str, runs[seed]), f"{difference:+.4f}"]
              for seed, difference in zip(verdict.seeds, verdict.differences)]
    classes = (f"per class, pooled over the seeds, {value_a}'s largest advantage first (each example's difference "
               f"averaged over seeds; CI: bootstrap over examples; p: sign test, Holm-adjusted over "
               f"{len(verdict.classes)} classes):", class_rows(verdict.classes, value_a, value_b) if verdict.classes
               else [])
    return lines, seeds, classes, disagreement_parts(verdict, split, ", scores averaged over the seeds")


def verdict_line(interval: Interval, metric: str, name_a: object, name_b: object, how: str) -> str:
    """Which is better, or that the test found no difference, at ALPHA."""
    if interval.p_value >= ALPHA or interval.low <= 0 <= interval.high:
        return f"no difference established at alpha {ALPHA} (p = {interval.p_value:.3g}, {how})"
    a_better = (interval.difference > 0) == (metric == "acc")
    return f"{name_a if a_better else name_b} is better (p < {ALPHA}, {how}, the CI excludes 0)"


def class_rows(classes: list[ClassDifference], name_a: object, name_b: object) -> Table:
    """The per-class differences as rows of text, with the better side where its Holm-adjusted p is below ALPHA."""
    lines = [["class", "n", str(name_a), str(name_b), "A - B", "95% CI", "p", "p (Holm)", "better"]]
    for item in classes:
        better = (name_a if item.difference > 0 else name_b) if item.p_holm < ALPHA else "-"
        lines.append([item.name, str(item.n), f"{item.a:.3f}", f"{item.b:.3f}", f"{item.difference:+.3f}",
                      f"[{item.low:+.3f}, {item.high:+.3f}]", f"{item.p_value:.2g}", f"{item.p_holm:.2g}",
                      str(better)])
    return lines


def _interval(interval: Interval) -> str:
    return f"{interval.difference:+.4f}, 95% CI [{interval.low:+.4f}, {interval.high:+.4f}]"


def _typed(text: str, key: str, rows: list[dict[str, Any]]) -> Any:
    """--values' `text` as the type of `key`'s values (numbers as numbers)."""
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return type(value)(text)
            except ValueError:
                return text
    return text
