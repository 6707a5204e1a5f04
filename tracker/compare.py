"""`tracker compare RUN RUN [...]`: runs side by side (config differences, result, metric summaries, commit), and
optionally one metric of each overlaid in a figure."""
from pathlib import Path

from observers.environment import differences
from runstore.errors import UserError
from runstore.query import by_experiment, differing_keys, differing_keys_within_experiments, metric_history, rows_of
from runstore.run_store import open_run
from tracker.runs import HEADERS, cell, render_table

RUN_KEYS = ["experiment", "status", "start", "duration_s", "commit", "result"]
# What each run trained on (ingredients.fingerprint): the data, then each split's membership.
DATA_KEYS = ["info.data.digest", "info.data.splits.train", "info.data.splits.val", "info.data.splits.test"]
SUMMARIES = ("last", "min", "max")
LABEL_KEYS = 3  # config keys at most in a legend entry; the table lists every differing one


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare",
        help="compare runs side by side; overlay a metric of each in a figure",
        description=(
            "Show runs side by side: the config keys that differ (all of them with --all), status, git commit, "
            "result, the digests of the data and splits they trained on, the last, min and max of every metric, and "
            "where their environments differ (env.torch, env.packages.NAME, ...); a warning names runs that trained "
            "on different data or splits. With --plot, also draw one metric of every run (all its points) in one figure."
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run ids (as in Omniboard) or run folders (runs/3)")
    parser.add_argument("--all", action="store_true", help="show every config key, not only those that differ")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a figure of --metric for every run")
    parser.add_argument("--metric", help="the metric to plot, e.g. val.acc")
    parser.set_defaults(func=run)


def run(args):
    if len(args.runs) < 2:
        raise UserError("give at least two runs to compare, e.g. tracker compare 3 4")
    if (args.plot is None) != (args.metric is None):
        raise UserError("--plot FILE.png and --metric NAME go together, e.g. --plot val_acc.png --metric val.acc")
    rows = rows_of(args.runs)
    config_keys = sorted({k for row in rows for k in row if k.startswith("config.")}) if args.all else differing_keys(rows)
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


def data_warning(rows):
    """A line naming the runs that trained on other data, or on other splits of it, than the first; None if none."""
    recorded = [row for row in rows if "info.data.digest" in row]  # runs from before fingerprints have none
    for keys, what in ((DATA_KEYS[:1], "different data"), (DATA_KEYS[1:], "different splits of the data")):
        differing = [key for key in keys if len({row.get(key) for row in recorded}) > 1]
        if differing:
            return (f"WARNING: runs {', '.join(str(row['id']) for row in recorded)} trained on {what} "
                    f"({', '.join(differing)} differ); their results are not directly comparable")
    return None


def legend_label(row, label_keys, several_experiments):
    """'run 3 (lr=0.01)', or 'run 3 (cifar, lr=0.01)' beside runs of other experiments."""
    settings = [f"{key.removeprefix('config.')}={row.get(key)}" for key in label_keys if key in row][:LABEL_KEYS]
    details = ", ".join([row["experiment"]] * several_experiments + settings)
    return f"run {row['id']}" + (f" ({details})" if details else "")


def plot(rows, metric, path):
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


def _short(text, key):
    return text[:12] if key == "commit" else text
