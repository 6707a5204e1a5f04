"""Is A really better than B, and where? Predictions stored by the trainer, `tracker compare --paired` and
`tracker compare --group-by` over a `--seeds 3` sweep of CIFAR's two streams, the refusal of runs evaluated on
different data (runstore/paired.py; its figures are checked against scipy in tests/unit/test_paired.py), and every
command of docs/paired.md, run as written."""
import html
import json
import re
import shlex
import urllib.request

import numpy as np
import pytest
from scipy import stats

from conftest import EXPERIMENT, REPO_ROOT, TrackerCommand, free_port, run_experiment, run_tracker
from test_answers import database, sweep_id_of  # noqa: F401 - database: a fixture, one database for the module
from test_experiment import artifact_bytes

from runstore.predictions import Predictions

DOC = REPO_ROOT / "docs" / "paired.md"
SMOKE = ["with", "smoke", "trainer.steps=30", "trainer.val_every=30", "data.limit=600", "trainer.progress=False"]


def documented():
    """[(command as arguments after `tracker`, its output as the page shows it)] of docs/paired.md's console blocks."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for command, output in re.findall(r"^\$ tracker (.*)\n((?:(?!\$ ).*\n)*)", block, re.M):
            found.append((shlex.split(command), output))
    return found


# The page's sweep: two streams of the smoke model, 3 seeds each, 30 steps on 600 generated images.
[STREAM_SWEEP] = [[str(EXPERIMENT) if arg == "experiments/cifar.py" else arg for arg in command]
                  for command, _ in documented() if command[0] == "sweep"]


@pytest.fixture(scope="module")
def stream_sweep(database, mongo_url, workdir):
    """The sweep's id, its runs, {(stream, seed): run document}, and its output."""
    result = run_tracker(STREAM_SWEEP, workdir, mongo_url, database.name, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_id = sweep_id_of(result.stdout)
    runs = {(run["config"]["data"]["stream"], run["config"]["seed"]): run
            for run in database.runs.find({"info.sweep.id": sweep_id})}
    assert len(runs) == 6 and all(run["status"] == "COMPLETED" for run in runs.values())
    return sweep_id, runs, result.stdout


def predictions(database, run, split="test"):
    return Predictions.from_bytes(artifact_bytes(database, run, f"predictions.{split}.npz"))


def test_the_trainer_stores_predictions_and_per_class_metrics(stream_sweep, database, mongo_url, workdir):
    _, runs, _ = stream_sweep
    run = next(iter(runs.values()))
    stored = predictions(database, run)
    assert stored.digest == run["info"]["data"]["splits"]["test"] and stored.split == "test"
    assert len(stored.ids) == 600 and stored.scores.shape == (600, 10) and stored.scores.dtype == np.float16
    assert stored.names[1] == "disc"
    test_acc = [value for value in database.metrics.find_one({"run_id": run["_id"], "name": "test.acc"})["values"]]
    assert stored.correct().mean() == pytest.approx(test_acc[-1])
    per_class = run["info"]["per_class"]["test"]
    members = stored.targets == 1
    assert per_class["disc"]["recall"] == pytest.approx(stored.correct()[members].mean())
    results = json.loads(artifact_bytes(database, run, "results.json"))
    val = predictions(database, run, "val")  # the outputs of the validation that chose the best model
    assert len(val.ids) == 600 and val.correct().mean() == pytest.approx(results["best_val_acc"])
    assert results["test_per_class_of_best"] == per_class
    listing = run_tracker(["runs", "--where", f"id={run['_id']}", "--metrics", "info.per_class.test.disc.recall"],
                          workdir, mongo_url, database.name)
    assert listing.returncode == 0, listing.stderr
    assert "info.per_class.test.disc.recall" in listing.stdout
    assert f"{per_class['disc']['recall']:.4g}" in listing.stdout


def test_a_run_can_leave_out_its_predictions(stream_sweep, database, mongo_url, workdir):
    result = run_experiment([*SMOKE, "trainer.steps=5", "trainer.val_every=5", "trainer.save_predictions=False"],
                            workdir, mongo_url, database.name)
    assert result.returncode == 0, result.stderr
    run = database.runs.find_one({"config.trainer.save_predictions": False})
    assert not [a for a in run["artifacts"] if a["name"].startswith("predictions")]
    other = next(iter(stream_sweep[1].values()))["_id"]
    compared = run_tracker(["compare", str(other), str(run["_id"]), "--paired"], workdir, mongo_url, database.name)
    assert compared.returncode == 1
    assert compared.stderr == (f"error: run {run['_id']} stored no predictions.test.npz; runs store their predictions "
                               f"at the end of training unless trainer.save_predictions=False (an experiment without "
                               f"the trainer calls observers.predictions.save_predictions)\n")


def test_two_runs_compared_example_by_example(stream_sweep, database, mongo_url, workdir):
    _, runs, _ = stream_sweep
    seed = sorted({seed for _, seed in runs})[0]
    shape, color = runs[("shape", seed)], runs[("color", seed)]
    result = run_tracker(["compare", str(shape["_id"]), str(color["_id"]), "--paired"], workdir, mongo_url,
                         database.name)
    assert result.returncode == 0, result.stderr
    a, b = predictions(database, shape), predictions(database, color)
    only_a = int(np.sum(a.correct() & ~b.correct()))
    discordant = only_a + int(np.sum(~a.correct() & b.correct()))
    p_value = stats.binomtest(only_a, discordant).pvalue
    difference = a.correct().mean() - b.correct().mean()
    assert f"A - B: {difference:+.4f}, 95% CI [" in result.stdout
    assert f"McNemar's exact test: p = {p_value:.3g}" in result.stdout
    assert re.search(r"^verdict: ", result.stdout, re.M)
    table = result.stdout.split("per class")[1]
    assert all(name in table for name in a.names) and "p (Holm)" in table
    assert "examples where they disagree most" in result.stdout


def test_a_seeded_sweep_of_the_two_streams_gives_a_grouped_paired_verdict(stream_sweep, database, mongo_url,
                                                                          workdir):
    sweep_id, runs, _ = stream_sweep
    result = run_tracker(["compare", "--group-by", "data.stream", "--sweep", str(sweep_id), "--values", "color,shape"],
                         workdir, mongo_url, database.name)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("data.stream=color (A) against data.stream=shape (B), paired by seed: 3 seeds")
    differences = []
    for seed in sorted({seed for _, seed in runs}, key=str):
        a, b = predictions(database, runs[("color", seed)]), predictions(database, runs[("shape", seed)])
        differences.append(a.correct().mean() - b.correct().mean())
        assert re.search(rf"^\s*{seed}\s+{runs[('color', seed)]['_id']}\s+{runs[('shape', seed)]['_id']}\s+"
                         rf"{differences[-1]:+.4f}$", out, re.M)
    p_value = stats.permutation_test((np.array(differences),), np.mean, permutation_type="samples").pvalue
    assert f"sign-flip permutation p = {p_value:.3g}" in out
    assert "WARNING: only 3 seeds" in out
    table = out.split("per class, pooled over the seeds")[1].split("\n\n")[0].splitlines()[1:]
    assert table[0].split() == ["class", "n", "color", "shape", "A", "-", "B", "95%", "CI", "p", "p", "(Holm)",
                                "better"]
    assert len(table) == 11


def test_runs_evaluated_on_different_data_are_refused(stream_sweep, database, mongo_url, workdir):
    _, runs, _ = stream_sweep
    other = run_experiment([*SMOKE, "trainer.steps=5", "trainer.val_every=5", "data.limit=500"], workdir, mongo_url,
                           database.name)
    assert other.returncode == 0, other.stderr
    other_id = database.runs.find_one({"config.data.limit": 500})["_id"]
    first = next(iter(runs.values()))["_id"]
    result = run_tracker(["compare", str(first), str(other_id), "--paired"], workdir, mongo_url, database.name)
    assert result.returncode == 1
    assert re.fullmatch(rf"error: runs {first} and {other_id} were evaluated on different data \(digests \w+ and "
                        rf"\w+\); compare runs evaluated on the same split of the same data\n", result.stderr)


def test_the_report_and_the_ui_show_the_same_verdicts(stream_sweep, database, mongo_url, workdir, tmp_path):
    """The sweep's report shows `compare --group-by`'s verdict; `tracker ui`'s compare view shows `--paired`'s of two
    runs, and the refusal of runs evaluated on different data."""
    sweep_id, runs, _ = stream_sweep
    report = tmp_path / "report.html"
    written = run_tracker(["report", "--sweep", str(sweep_id), "--out", str(report)], workdir, mongo_url, database.name)
    assert written.returncode == 0, written.stderr
    grouped = run_tracker(["compare", "--group-by", "data.stream", "--sweep", str(sweep_id)], workdir, mongo_url,
                          database.name)
    text = report.read_text()
    lines = grouped.stdout.splitlines()
    shown = [line for line in lines if line.startswith(("data.stream=", "mean: ", "verdict: ", "WARNING: ", "power: "))]
    assert len(shown) >= 4 and all(f'<p class="verdict">{html.escape(line)}</p>' in text for line in shown)
    start = lines.index(next(line for line in lines if line.startswith("per class"))) + 2
    per_class = [line.split()[0] for line in lines[start:lines.index("", start)]]
    assert len(per_class) == 10
    assert all(f"<td>{html.escape(name)}</td>" in text for name in per_class) and "p (Holm)" in text
    assert all(thumbnail(id) in text for id in disagreeing(lines))

    seed = sorted({seed for _, seed in runs}, key=str)[0]
    color, shape = (str(runs[(stream, seed)]["_id"]) for stream in ("color", "shape"))
    if database.runs.find_one({"config.data.limit": 500}) is None:  # the refusal's test ran this run already
        assert run_experiment([*SMOKE, "trainer.steps=5", "trainer.val_every=5", "data.limit=500"], workdir,
                              mongo_url, database.name).returncode == 0
    other = str(database.runs.find_one({"config.data.limit": 500})["_id"])
    paired = run_tracker(["compare", color, shape, "--paired"], workdir, mongo_url, database.name)
    refused = run_tracker(["compare", color, other, "--paired"], workdir, mongo_url, database.name)
    command = TrackerCommand("ui", "--port", str(free_port()), cwd=workdir, MONGO_URL=mongo_url,
                             SACRED_DB=database.name, RUNS_DIR=tmp_path)
    try:
        url = command.wait_for(r"open (http://\S+)", 60)[1]
        base, token = url.split("?")[0], url.split("token=")[1]
        pages = [board_page(f"{base}compare?id={a}&id={b}", token) for a, b in ((color, shape), (color, other))]
    finally:
        command.kill()
    lines = paired.stdout.splitlines()
    assert all(f'<p class="verdict">{html.escape(line)}</p>' in pages[0] for line in lines[:4])
    assert "examples where they disagree most" in pages[0] and "p (Holm)" in pages[0]
    assert all(thumbnail(id) in pages[0] for id in disagreeing(lines))
    assert html.escape(refused.stderr.removeprefix("error: ").strip()) in pages[1]


def disagreeing(lines):
    """The example ids of the most-disagreeing table that `tracker compare` printed as `lines`."""
    start = lines.index(next(line for line in lines if "disagree most" in line)) + 2
    ids = [line.split()[0] for line in lines[start:]]
    assert ids and all(id.isdigit() for id in ids), lines[start:]
    return ids


def thumbnail(id):
    return f'<img class="thumbnail" alt="example {id}" src="data:image/png;base64,'


def board_page(url, token):
    request = urllib.request.Request(url, headers={"Cookie": f"tracker_ui_token={token}"})
    with urllib.request.urlopen(request) as response:
        return response.read().decode()


def without_figures(text):
    """The lines of `text` that hold no digit (the figures of a smoke run differ between machines), spaces collapsed."""
    return {" ".join(line.split()) for line in text.splitlines() if line.strip() and not re.search(r"\d", line)}


def test_every_command_of_the_page_runs_and_prints_what_it_shows(stream_sweep, database, mongo_url, workdir):
    """The page's sweep is the `stream_sweep` fixture's; the others run here, on its runs, with this session's sweep
    id (the page's sweep is sweep 1) and, for the pair, the run ids of the first seed's pair (the page's 1 and 4)."""
    sweep_id, runs, sweep_output = stream_sweep
    commands = documented()
    assert [command[0] for command, _ in commands] == ["sweep", "compare", "compare", "runs"]
    assert without_figures(commands[0][1]) <= without_figures(sweep_output)
    seed = sorted({seed for _, seed in runs}, key=str)[0]
    pair = {"1": str(runs[("color", seed)]["_id"]), "4": str(runs[("shape", seed)]["_id"])}
    for command, shown in commands[1:]:
        if "--paired" in command:
            command = [pair.get(arg, arg) for arg in command]
        command = [str(sweep_id) if previous == "--sweep" else arg.replace("sweep-1", f"sweep-{sweep_id}")
                   for previous, arg in zip(["", *command], command)]
        result = run_tracker(command, workdir, mongo_url, database.name)
        assert result.returncode == 0, result.stderr
        assert without_figures(shown) <= without_figures(result.stdout), command
