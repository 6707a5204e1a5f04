"""Finding the best run: `tracker runs`, `tracker compare`, runstore.query (DataFrames) and sys.* metrics."""
import datetime
import json
import os
import re
import subprocess
import sys
import uuid

import pymongo
import pytest
from conftest import COMPUTED_METRICS, REPO_ROOT, metric, python_env, run_experiment, run_tracker

from runstore.errors import UserError
from runstore.query import metric_history, plotted_metric, runs
from observers.system_metrics import gpu_handles
from runstore.settings import Settings
from runstore.layout import PLOT_POINTS, pack_points, read_metric, series_arrays

LRS = (0.01, 0.05, 0.1)
TINY = ["with", "smoke", "trainer.steps=20", "trainer.val_every=10", "data.limit=1000", "trainer.progress=False",
        "trainer.deterministic=True", "seed=7"]


@pytest.fixture(scope="session")
def lr_runs(mongo_url, workdir):
    """Three tiny runs with lr 0.01, 0.05 and 0.1, sampling system metrics every 0.2 s; {lr: run document}."""
    db_name = f"query_{uuid.uuid4().hex[:10]}"
    for lr in LRS:
        result = run_experiment([*TINY, f"lr={lr}"], workdir, mongo_url, db_name, SYSTEM_METRICS_S=0.2)
        assert result.returncode == 0, result.stdout + result.stderr
    client = pymongo.MongoClient(mongo_url)
    db = client[db_name]
    yield {"db": db, "db_name": db_name, "runs": {run["config"]["lr"]: run for run in db.runs.find()}}
    client.drop_database(db_name)
    client.close()


def tracker(args, lr_runs, tmp_path, mongo_url):
    """`tracker ARGS` on the runs of `lr_runs`, from an empty folder (so no other test's runs/ is listed)."""
    return run_tracker(args, tmp_path, mongo_url, lr_runs["db_name"])


def settings_for(mongo_url, db_name, runs_dir):
    return Settings(mongo_url=mongo_url, db_name=db_name, runs_dir=runs_dir)


def test_the_best_completed_run_as_json(lr_runs, tmp_path, mongo_url):
    best = max(lr_runs["runs"].values(), key=lambda run: run["result"])

    result = tracker(["runs", "--where", "status=COMPLETED", "--sort", "-result", "--limit", "1", "--format", "json"],
                     lr_runs, tmp_path, mongo_url)

    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["id"], row["result"], row["config.lr"]) == (best["_id"], best["result"], best["config"]["lr"])


def test_the_table_shows_differing_config_and_chosen_summaries(lr_runs, tmp_path, mongo_url):
    db = lr_runs["db"]
    result = tracker(["runs", "--metrics", "val.acc.max,train.loss.last,val.acc.argmax"], lr_runs, tmp_path, mongo_url)

    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["id", "experiment", "status", "start", "duration", "result", "config.lr",
                              "val.acc.max", "train.loss.last", "val.acc.argmax"]
    assert len(lines) == 3  # newest first
    assert [int(line.split()[0]) for line in lines] == sorted((run["_id"] for run in lr_runs["runs"].values()),
                                                              reverse=True)
    for line in lines:
        cells = line.split()
        run_id, lr, acc_max, loss_last, argmax = int(cells[0]), float(cells[-4]), *map(float, cells[-3:])
        val_acc, train_loss = metric(db, run_id, "val.acc"), metric(db, run_id, "train.loss")
        assert lr == lr_runs["runs"][lr]["config"]["lr"] and lr_runs["runs"][lr]["_id"] == run_id
        assert acc_max == pytest.approx(max(val_acc.values()), rel=1e-3)
        assert loss_last == pytest.approx(train_loss[max(train_loss)], rel=1e-3)
        assert argmax == max(val_acc, key=lambda step: (val_acc[step], -step))


def test_filters_combine_and_the_dataframe_matches_the_cli(lr_runs, mongo_url, tmp_path):
    middle = lr_runs["runs"][0.05]
    where = ["config.lr>=0.05", "config.lr<0.1", "experiment~^cif", f"val.acc.max>={middle['result']}"]
    result = tracker(["runs", "--format", "csv", "--since", "2020-01-01", "--experiment", "cifar",
                      *[arg for condition in where for arg in ("--where", condition)]], lr_runs, tmp_path, mongo_url)
    assert result.returncode == 0, result.stderr
    assert [line.split(",")[0] for line in result.stdout.splitlines()[1:]] == [str(middle["_id"])]

    frame = runs(where=where, since="2020-01-01", experiment="cifar",
                 settings=settings_for(mongo_url, lr_runs["db_name"], tmp_path / "runs"))
    assert frame.id.tolist() == [middle["_id"]]

    everything = runs(settings=settings_for(mongo_url, lr_runs["db_name"], tmp_path / "runs"))
    assert sorted(everything.id) == sorted(run["_id"] for run in lr_runs["runs"].values())  # one row per run
    for column in ("id", "experiment", "status", "start", "stop", "duration_s", "result", "host", "commit",
                   "config.lr", "config.model.arch", "config.trainer.steps", "val.acc.last", "val.acc.min",
                   "val.acc.max", "train.loss.last", "sys.cpu_percent.max"):
        assert column in everything.columns, column
    row = everything.set_index("id").loc[middle["_id"]]
    assert (row["config.lr"], row.result, row.commit) == (0.05, middle["result"],
                                                          middle["experiment"]["repositories"][0]["commit"])
    duration = middle["stop_time"] - middle["start_time"]
    assert row.duration_s == pytest.approx(duration.total_seconds(), abs=1e-3)


def test_compare_shows_lr_as_the_difference_and_plots_two_curves(lr_runs, mongo_url, tmp_path):
    first, second = lr_runs["runs"][0.01], lr_runs["runs"][0.1]
    png = tmp_path / "val_acc.png"

    result = tracker(["compare", str(first["_id"]), str(second["_id"]), "--plot", str(png), "--metric", "val.acc"],
                     lr_runs, tmp_path, mongo_url)

    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:] if line.strip()}
    assert [key for key in lines if key.startswith("config.")] == ["config.lr"]
    assert lines["config.lr"] == ["0.01", "0.1"]
    assert lines["result"] == [f"{first['result']:.4g}", f"{second['result']:.4g}"]
    assert lines["commit"] == [first["experiment"]["repositories"][0]["commit"][:12]] * 2
    assert lines["val.acc.max"] == [f"{max(metric(lr_runs['db'], run['_id'], 'val.acc').values()):.4g}"
                                    for run in (first, second)]
    assert f"wrote {png}: 2 curves of val.acc, 4 points" in result.stdout
    assert png.read_bytes().startswith(b"\x89PNG")


def test_metric_history_reads_every_point_beyond_the_plotted_document(mongo_db, mongo_url, db_name, tmp_path):
    """A series longer than its `metrics` document (an even sample) is read whole from `metric_points`."""
    total = PLOT_POINTS + 50
    series = {"steps": list(range(total)), "values": [step / 7 for step in range(total)],
              "timestamps": [datetime.datetime(2026, 11, 1, 0, 0, step % 60).isoformat() for step in range(total)]}
    mongo_db.runs.insert_one({"_id": 1, "experiment": {"name": "long"}, "status": "COMPLETED", "config": {},
                              "info": {"metrics": [{"name": "loss", "id": "x"}]}})
    mongo_db.metric_points.insert_one({"run_id": 1, "name": "loss", "chunk": 0, "points": total,
                                       **pack_points(*series_arrays(series))})  # one chunk: total < CHUNK_POINTS

    history = metric_history(1, "loss", settings=settings_for(mongo_url, db_name, tmp_path / "runs"))

    assert history.step.tolist() == series["steps"] and history.value.tolist() == series["values"]
    assert list(history.columns) == ["step", "value", "timestamp"]
    with pytest.raises(UserError, match="run 1 has no metric 'los'; did you mean loss"):
        metric_history(1, "los", settings=settings_for(mongo_url, db_name, tmp_path / "runs"))


def test_plotted_metric_reads_the_plotted_document_by_the_id_the_run_lists(mongo_db, mongo_url, db_name, tmp_path):
    """The report's curves: the `metrics` document that Omniboard plots (here a sample of a longer series), found by
    the id in the run's info.metrics; not the points in `metric_points`."""
    from bson import ObjectId

    metric_id = ObjectId()
    mongo_db.runs.insert_one({"_id": 1, "experiment": {"name": "long"}, "status": "COMPLETED", "config": {},
                              "info": {"metrics": [{"name": "loss", "id": str(metric_id)}]}})
    mongo_db.metrics.insert_one({"_id": metric_id, "run_id": 1, "name": "loss", "steps": [0, 50, 99],
                                 "values": [1.0, 0.5, 0.25], "timestamps": [datetime.datetime(2026, 11, 1)] * 3})
    every = {"steps": list(range(100)), "values": [1.0] * 100,
             "timestamps": [datetime.datetime(2026, 11, 1).isoformat()] * 100}
    mongo_db.metric_points.insert_one({"run_id": 1, "name": "loss", "chunk": 0, "points": 100,
                                       **pack_points(*series_arrays(every))})
    settings = settings_for(mongo_url, db_name, tmp_path / "runs")

    assert plotted_metric(1, "loss", settings=settings) == ([0, 50, 99], [1.0, 0.5, 0.25])
    with pytest.raises(UserError, match="run 1 has no metric 'los'; did you mean loss"):
        plotted_metric(1, "los", settings=settings)


def test_tags_and_local_runs(mongo_db, mongo_url, db_name, tmp_path):
    """Tags set in Omniboard filter runs; a run still waiting in runs/ is listed too, marked local."""
    started = datetime.datetime(2026, 11, 2, 10, 0)
    for run_id, tags in ((1, ["baseline"]), (2, [])):
        mongo_db.runs.insert_one({"_id": run_id, "experiment": {"name": "cifar"}, "status": "COMPLETED",
                                  "start_time": started, "config": {"lr": 0.1 * run_id}, "result": 0.5,
                                  "omniboard": {"tags": tags}, "metric_summaries": []})
    local = tmp_path / "runs" / "1"
    local.mkdir(parents=True)
    (local / "run.json").write_text(json.dumps({
        "experiment": {"name": "cifar"}, "host": {"hostname": "laptop"}, "status": "COMPLETED", "result": 0.6,
        "start_time": "2026-11-03T09:00:00", "stop_time": "2026-11-03T09:01:00", "artifacts": []}))
    (local / "config.json").write_text(json.dumps({"lr": 0.3}))
    (local / "metrics.json").write_text(json.dumps({"val.acc": {
        "steps": [10, 20], "values": [0.6, 0.5], "timestamps": ["2026-11-03T09:00:30", "2026-11-03T09:01:00"]}}))

    tagged = run_tracker(["runs", "--tag", "baseline", "--format", "json"], tmp_path, mongo_url, db_name)
    listed = run_tracker(["runs", "--sort", "-result", "--metrics", "val.acc.argmax"], tmp_path, mongo_url, db_name)
    as_csv = run_tracker(["runs", "--sort", "-result", "--format", "csv"], tmp_path, mongo_url, db_name)

    assert [row["id"] for row in json.loads(tagged.stdout)] == [1]
    header, *lines = listed.stdout.splitlines()
    assert header.split() == ["id", "experiment", "status", "start", "duration", "result", "local", "config.lr",
                              "val.acc.argmax"]
    assert lines[0].split() == ["runs/1", "cifar", "COMPLETED", "2026-11-03", "09:00:00",
                                "1m00s", "0.6", "True", "0.3", "10"]
    assert [line.split()[7] for line in lines[1:]] == ["False", "False"]  # as CSV says it
    local_column = as_csv.stdout.splitlines()[0].split(",").index("local")
    assert [line.split(",")[local_column] for line in as_csv.stdout.splitlines()[1:]] == ["True", "False", "False"]


@pytest.mark.parametrize("args, message", [
    (["compare", "1", "999"], r"^error: there is no run 999 in database"),
    (["compare", "1", "2", "--plot", "x.png", "--metric", "val.acc.max"],
     r"^error: run \d has no metric 'val.acc.max'; did you mean val.acc"),
    (["runs", "--metrics", "val.acc.mx"], r"^error: --metrics: no run has 'val.acc.mx'; did you mean val.acc.max"),
    (["runs", "--where", "config.lr"], r"^error: --where 'config.lr' is not a condition; write KEY OP VALUE"),
    (["runs", "--where", "config.lrr>1"], r"^error: --where: no run has 'config.lrr'; did you mean config.lr"),
    (["runs", "--where", "config.lr>high"], r"^error: --where config.lr>high: config.lr holds number values"),
    (["runs", "--where", "status~("], r"^error: --where 'status~\(': '\(' is not a regular expression"),
    (["runs", "--where", "config.lr>>1"], r"^error: --where 'config.lr>>1': '>>' is not an operator; use one of "
                                          r"= != < <= > >= ~, e.g. config.lr>=1$"),
])
def test_bad_input_is_one_line_and_exit_1(lr_runs, tmp_path, mongo_url, args, message):
    result = tracker(args, lr_runs, tmp_path, mongo_url)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_runs_record_system_metrics_without_changing_training(lr_runs, workdir, mongo_url, mongo_db, db_name):
    db, run = lr_runs["db"], lr_runs["runs"][0.01]
    for name, low, high in (("sys.cpu_percent", 0, 100), ("sys.memory_gb", 0.01, 10_000),
                            ("sys.process_cpu_percent", 0, 100 * 1024), ("sys.process_memory_gb", 0.01, 10_000)):
        steps, values, _ = read_metric(db, run["_id"], name)
        assert len(steps) >= 2 and steps.tolist() == list(range(len(steps))), name
        assert ((low <= values) & (values <= high)).all(), (name, values)
    gpu_metrics = [name for name in db.metrics.distinct("name") if name.startswith("sys.gpu")]
    assert bool(gpu_metrics) == bool(gpu_handles()), gpu_metrics

    # The same run without the sampler computes exactly the same metrics.
    result = run_experiment([*TINY, "lr=0.01"], workdir, mongo_url, db_name, SYSTEM_METRICS_S=0)
    assert result.returncode == 0, result.stderr
    (unsampled,) = mongo_db.runs.find()
    assert not read_metric(mongo_db, unsampled["_id"], "sys.cpu_percent")[0].size
    for name in COMPUTED_METRICS:
        assert metric(mongo_db, unsampled["_id"], name) == metric(db, run["_id"], name), name


def test_a_run_shorter_than_the_interval_has_system_metrics_from_its_start_and_end(workdir, mongo_url, mongo_db,
                                                                                    db_name):
    result = run_experiment([*TINY, "lr=0.01"], workdir, mongo_url, db_name, SYSTEM_METRICS_S=3600)

    assert result.returncode == 0, result.stderr
    (run,) = mongo_db.runs.find()
    for name in ("sys.cpu_percent", "sys.memory_gb", "sys.process_cpu_percent", "sys.process_memory_gb"):
        steps, values, _ = read_metric(mongo_db, run["_id"], name)
        assert steps.tolist() == [0, 1], (name, steps)
        assert (values >= 0).all(), (name, values)
    steps, values, _ = read_metric(mongo_db, run["_id"], "sys.process_cpu_percent")
    assert values[0] > 0, values  # the first sample counts the process's CPU since it started, not nothing


def test_readme_example_runs(lr_runs, mongo_url, tmp_path):
    """The notebook example in README.md, exactly as written there."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Finding the best run"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]
    assert len(code.strip().splitlines()) == 5
    result = subprocess.run(
        [sys.executable, "-c", code + "\nprint('example done', len(table), len(history))"], cwd=tmp_path,
        env=python_env(MONGO_URL=mongo_url, SACRED_DB=lr_runs["db_name"], MPLBACKEND="Agg"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "example done 3 2" in result.stdout  # three runs; the best one's two val.acc points


def test_runs_of_two_experiments_get_a_table_each_with_their_own_differing_keys(mongo_db, mongo_url, db_name,
                                                                                 tmp_path):
    started = datetime.datetime(2026, 11, 2, 10, 0)
    long_note = "x" * 5000
    for run_id, experiment, config in ((1, "cifar", {"lr": 0.1, "model": {"width": 8}}),
                                       (2, "cifar", {"lr": 0.2, "model": {"width": 8}}),
                                       (3, "signals", {"window": 64, "note": "short"}),
                                       (4, "signals", {"window": 64, "note": long_note})):
        mongo_db.runs.insert_one({"_id": run_id, "experiment": {"name": experiment}, "status": "COMPLETED",
                                  "start_time": started, "config": config, "metric_summaries": []})

    table = run_tracker(["runs", "--sort", "id"], tmp_path, mongo_url, db_name)
    as_csv = run_tracker(["runs", "--sort", "id", "--format", "csv"], tmp_path, mongo_url, db_name)

    assert table.returncode == 0, table.stderr
    cifar, signals = table.stdout.split("\n\n")
    assert cifar.splitlines()[0] == "experiment cifar:" and signals.splitlines()[0] == "experiment signals:"
    assert cifar.splitlines()[1].split()[-1] == "config.lr" and "config.note" not in cifar
    assert signals.splitlines()[1].split()[-1] == "config.note" and "config.lr" not in signals
    assert signals.splitlines()[-1].endswith(" " + "x" * 39 + "…") and max(map(len, table.stdout.splitlines())) < 120
    assert as_csv.stdout.splitlines()[0].endswith(",config.lr,config.note") and long_note in as_csv.stdout


def test_a_listing_piped_into_a_reader_that_stops_ends_without_a_traceback(mongo_db, mongo_url, db_name, tmp_path):
    # `tracker runs --format csv | head -2`: head closes the pipe before the listing is written.
    mongo_db.runs.insert_one({"_id": 1, "experiment": {"name": "cifar"}, "status": "COMPLETED", "config": {},
                              "metric_summaries": []})
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "tracker", "runs", "--format", "csv"], cwd=tmp_path,
                                env=python_env(MONGO_URL=mongo_url, SACRED_DB=db_name), stdout=write,
                                stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)

    assert (result.returncode, result.stderr) == (141, "")


def test_the_table_fits_the_terminal_and_names_the_columns_left_out(mongo_db, mongo_url, db_name, tmp_path):
    started = datetime.datetime(2026, 11, 2, 10, 0)
    for run_id in (1, 2, 3):
        config = {"lr": 0.1 * run_id, **{f"option_{letter}": run_id * 1000 for letter in "abcdefgh"}}
        mongo_db.runs.insert_one({"_id": run_id, "experiment": {"name": "cifar"}, "status": "COMPLETED",
                                  "start_time": started, "stop_time": started + datetime.timedelta(seconds=220),
                                  "result": 0.5, "config": config, "metric_summaries": []})

    table = run_tracker(["runs", "--sort", "id"], tmp_path, mongo_url, db_name, COLUMNS="100")

    assert table.returncode == 0, table.stderr
    header, *rows, note = table.stdout.splitlines()
    assert header.split()[:7] == ["id", "experiment", "status", "start", "duration", "result", "config.lr"]
    assert rows[0].split()[4:6] == ["10:00:00", "3m40s"]
    assert max(map(len, table.stdout.splitlines()[:-1])) <= 100
    shown = header.split()
    left_out = [f"config.option_{letter}" for letter in "abcdefgh" if f"config.option_{letter}" not in shown]
    assert left_out and note == (f"({len(left_out)} columns left out to fit 100 characters: {', '.join(left_out)}; "
                                 f"--format csv shows all)")


def test_compare_plot_draws_the_runs_that_logged_the_metric_and_names_the_others(tmp_path, mongo_url, db_name):
    folders = [str(folder_run(tmp_path, number, "cifar", {"lr": number / 10}, logged)) for number, logged in
               ((1, True), (2, False), (3, True))]

    result = run_tracker(["compare", *folders, "--plot", "loss.png", "--metric", "val.loss"], tmp_path, mongo_url,
                         db_name)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (f"wrote loss.png: 2 curves of val.loss, 4 points; runs without "
                                              f"val.loss, not drawn: {folders[1]}")


def folder_run(tmp_path, number, experiment, config, logged=True):
    """A completed run of `experiment` in the file store tmp_path/runs/NUMBER, with two points of val.loss if
    `logged`."""
    folder = tmp_path / "runs" / str(number)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "experiment": {"name": experiment}, "status": "COMPLETED", "start_time": "2026-11-03T09:00:00",
        "stop_time": "2026-11-03T09:01:00", "artifacts": []}))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps({"val.loss": {
        "steps": [10, 20], "values": [0.6, 0.5], "timestamps": ["2026-11-03T09:00:30", "2026-11-03T09:01:00"]}}
        if logged else {}))
    return folder


def test_compare_plot_of_two_experiments_has_a_short_legend(tmp_path, mongo_url, db_name):
    folders = [str(folder_run(tmp_path, number, experiment, config)) for number, (experiment, config) in
               enumerate((("cifar", {"lr": 0.1, "model": {"width": 8, "depth": 3}}),
                          ("signals", {"window": 64, "hidden": 32, "noise": 0.1})), 1)]

    result = run_tracker(["compare", *folders, "--plot", "loss.svg", "--metric", "val.loss"], tmp_path, mongo_url,
                         db_name)

    assert result.returncode == 0 and result.stderr == "", result.stderr  # no constrained_layout warning
    figure = (tmp_path / "loss.svg").read_text()
    assert f"<!-- run {folders[0]} (cifar) -->" in figure and f"<!-- run {folders[1]} (signals) -->" in figure
    assert "config.window" in result.stdout  # the differing keys are in the table
