"""From runs to answers: sweeps with seeds, grouped statistics (checked against scipy), the result's direction,
parameter importance, and the sweep report opened in headless Chromium."""
import json
import re
import shutil
import subprocess
import sys
import uuid

import pymongo
import pytest
from scipy import stats

from conftest import EXPERIMENT, REPO_ROOT, python_env, run_experiment, run_tracker
from test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOT_DIR

QUADRATIC = REPO_ROOT / "tests" / "quadratic_experiment.py"
# The sweep, on the smoke model with 40 steps on 1000 generated images; two trials at a time, as each
# spends most of its time starting up on one core.
SEEDED_SWEEP = ["sweep", str(EXPERIMENT), "with", "smoke", "trainer.steps=40", "trainer.val_every=20",
                "data.limit=1000", "trainer.progress=False", "lr=[0.01,0.2]", "--seeds", "3", "--parallel", "2"]


def sweep_id_of(output):
    return int(re.search(r"^sweep (\d+): ", output, re.M).group(1))


@pytest.fixture(scope="module")
def database(mongo_url):
    """One database for the module's runs: a seeded CIFAR sweep (first test), then signals and quadratic runs."""
    name = f"answers_{uuid.uuid4().hex[:10]}"
    client = pymongo.MongoClient(mongo_url)
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="module")
def seeded_sweep(database, mongo_url, workdir):
    result = run_tracker(SEEDED_SWEEP, workdir, mongo_url, database.name, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return sweep_id_of(result.stdout)


@pytest.fixture(scope="module")
def quadratic_sweep(database, mongo_url, workdir):
    """A random sweep of the quadratic experiment's lr and of `unused`, which training ignores; then one run that
    diverges (FAILED), tagged as the sweep's. Every trial starts from the same point (one seed), so the result falls
    strictly as lr grows: the direction and ranking the tests assert do not hang on the draws."""
    result = run_tracker(["sweep", "--random", "10", "--parallel", "2", "--sampler-seed", "0", str(QUADRATIC), "with",
                          "lr=loguniform(1e-3,0.4)", "unused=uniform(0,1)", "seed=3"], workdir, mongo_url,
                         database.name, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_id = sweep_id_of(result.stdout)
    # Tagged as the sweep's trials are (tracker.trial).
    diverged = subprocess.run([sys.executable, str(QUADRATIC), f"--tag=sweep-{sweep_id}", "with", "lr=2.0"],
                              cwd=workdir, capture_output=True,
                              env=python_env(MONGO_URL=mongo_url, SACRED_DB=database.name), text=True, timeout=300)
    assert diverged.returncode == 1 and "diverged at step" in diverged.stderr
    failed = database.runs.find_one({"config.lr": 2.0})
    assert failed["status"] == "FAILED" and failed["omniboard"]["tags"] == [f"sweep-{sweep_id}"], failed
    return {"id": sweep_id, "output": result.stdout}


def test_seeded_sweep_groups_have_scipy_statistics(seeded_sweep, database, mongo_url, workdir):
    runs = list(database.runs.find({"info.sweep.id": seeded_sweep}))
    assert len(runs) == 6 and all(run["status"] == "COMPLETED" for run in runs)
    seeds = {lr: sorted(run["config"]["seed"] for run in runs if run["config"]["lr"] == lr) for lr in (0.01, 0.2)}
    assert seeds[0.01] == seeds[0.2] and len(set(seeds[0.01])) == 3  # the same 3 seeds for each configuration
    assert all(run["info"]["sweep"]["params"]["seed"] == run["config"]["seed"] for run in runs)

    result = run_tracker(["runs", "--tag", f"sweep-{seeded_sweep}", "--group-by", "config.lr", "--format", "json"],
                         workdir, mongo_url, database.name)

    assert result.returncode == 0, result.stderr
    groups = json.loads(result.stdout)
    results = {lr: [run["result"] for run in runs if run["config"]["lr"] == lr] for lr in (0.01, 0.2)}
    best = max(results, key=lambda lr: stats.tmean(results[lr]))  # accuracy: higher is better
    assert [group["config.lr"] for group in groups] == [best, 0.2 if best == 0.01 else 0.01]
    for group in groups:
        values = results[group["config.lr"]]
        mean, std = stats.tmean(values), stats.tstd(values)  # tstd: ddof=1
        assert group["n"] == 3 and group["result_mean"] == pytest.approx(mean)
        assert group["result_std"] == pytest.approx(std)
        assert group["result_ci95"] == pytest.approx(list(stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(values))))
        assert sorted(group["runs"]) == sorted(run["_id"] for run in runs if run["config"]["lr"] == group["config.lr"])
    assert groups[0]["p_vs_best"] == "best"
    assert groups[1]["p_vs_best"] == pytest.approx(
        stats.ttest_ind(results[best], results[groups[1]["config.lr"]], equal_var=False).pvalue)
    # --group alone: every config key but the seed, so the same two groups; a table, best first.
    table = run_tracker(["runs", "--tag", f"sweep-{seeded_sweep}", "--group"], workdir, mongo_url, database.name)
    assert table.returncode == 0, table.stderr
    header, first, second, legend = table.stdout.splitlines()
    assert legend.startswith("p_vs_best: Welch's t-test against the best group, Holm-adjusted over the 1 group tested")
    assert header.split()[:3] == ["config.lr", "n", "not_completed"] and header.split()[-1] == "p_vs_best"
    assert first.split()[0] == str(best) and first.split()[-1] == "best" and second.split()[1] == "3"


def test_single_runs_are_n_too_small_and_sort_best_ranks_each_experiment_by_its_direction(
        seeded_sweep, database, mongo_url, workdir):
    for lr in ("0.002", "0.02"):
        result = run_experiment(["with", "smoke", "trainer.steps=20", "trainer.val_every=10", "data.train_size=500",
                                 "data.eval_size=100", "data.batch_size=32", "trainer.progress=False", f"lr={lr}"],
                                workdir, mongo_url,
                                database.name, experiment="signals")
        assert result.returncode == 0, result.stderr
    signals = sorted(database.runs.find({"experiment.name": "signals"}), key=lambda run: run["result"])
    assert [run["info"]["higher_is_better"] for run in signals] == [False, False]
    cifar = sorted(database.runs.find({"experiment.name": "cifar"}), key=lambda run: -run["result"])
    assert cifar[0]["info"]["higher_is_better"] is True

    ranked = run_tracker(["runs", "--sort", "best", "--where", "experiment~^(cifar|signals)$", "--format", "json"],
                         workdir, mongo_url, database.name)

    assert ranked.returncode == 0, ranked.stderr
    assert [row["id"] for row in json.loads(ranked.stdout)] == [run["_id"] for run in cifar + signals]
    assert ranked.stderr.count("\n") == 1 and "mix results where higher is better (cifar) and where lower is " \
                                               "better (signals)" in ranked.stderr
    single = run_tracker(["runs", "--experiment", "signals", "--group-by", "config.lr", "--format", "json"], workdir,
                         mongo_url, database.name)
    groups = json.loads(single.stdout)
    assert [group["config.lr"] for group in groups] == [signals[0]["config"]["lr"], signals[1]["config"]["lr"]]
    assert [group["p_vs_best"] for group in groups] == ["best", "n too small"]
    assert groups[0]["result_std"] is None and groups[0]["result_ci95"] is None


def test_sweep_direction_defaults_to_the_experiments_and_importance_ranks_lr_first(
        quadratic_sweep, database, mongo_url, workdir):
    runs = list(database.runs.find({"info.sweep.id": quadratic_sweep["id"]}))
    best = min(runs, key=lambda run: run["result"])  # a loss: lower is better, as the experiment says
    assert re.search(rf"10/10 done, 0 running, 0 failed; best {best['result']:.4g} ", quadratic_sweep["output"])

    result = run_tracker(["importance", "--sweep", str(quadratic_sweep["id"]), "--format", "json"], workdir,
                         mongo_url, database.name)

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [item["parameter"] for item in found] == ["config.lr", "config.unused"]
    assert found[0]["importance"] > found[1]["importance"] and sum(i["importance"] for i in found) == pytest.approx(1)
    assert found[0]["effect"].startswith("-") and found[0]["better_with"] == "larger config.lr"
    table = run_tracker(["importance", "--sweep", str(quadratic_sweep["id"])], workdir, mongo_url, database.name)
    assert table.stdout.splitlines()[1].split()[:3] == ["config.lr", f"{found[0]['importance']:.3f}", "-"]


def test_report_is_one_offline_html_file_drawn_in_chromium(quadratic_sweep, database, mongo_url, workdir, tmp_path):
    out, png = tmp_path / "report.html", tmp_path / "report.png"

    result = run_tracker(["report", "--sweep", str(quadratic_sweep["id"]), "--out", str(out), "--png", str(png)],
                         workdir, mongo_url, database.name)

    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    assert not re.search(r"<script[^>]+src=|<link|@import|url\(http", text)  # nothing from the network
    assert png.read_bytes().startswith(b"\x89PNG")
    assert re.search(r"<p>(.*?)</p>", text)[1].startswith("11 runs: 10 completed, 0 pruned, 1 failed")
    assert 'class="FAILED"' in text
    assert re.search(rf'<p class="note">The sweep ran {re.escape(str(QUADRATIC))} at commit [0-9a-f]{{12}}, with the '
                     rf'fixed arguments seed=3 besides the swept parameters.</p>', text), text[:3000]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--offline"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors, requests = [], []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url) if not request.url.startswith(
            ("file:", "data:", "blob:")) else None)
        page.goto(out.as_uri())
        plots = page.locator("div.plotly-graph-div")
        # Parallel coordinates, the result against lr and against unused, the learning curves, importance.
        assert plots.count() == 5
        for index in range(plots.count()):
            plots.nth(index).locator(".main-svg").first.wait_for()
        drawn = page.evaluate("() => [...document.querySelectorAll('div.plotly-graph-div')].map("
                              "d => d._fullData ? d._fullData.length : 0)")
        # The importance bars' labels (config.unused, config.lr) are whole, inside their figure.
        clipped = page.evaluate("() => { const plot = [...document.querySelectorAll('div.plotly-graph-div')].pop();"
                                " const left = plot.getBoundingClientRect().left;"
                                " return [...plot.querySelectorAll('.ytick text')].filter("
                                "t => t.getBoundingClientRect().left < left).map(t => t.textContent); }")
        page.screenshot(path=tmp_path / "report-page.png", full_page=True)
        browser.close()
    assert all(count > 0 for count in drawn), drawn
    assert clipped == []
    assert errors == [] and requests == []
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "report-page.png", SCREENSHOT_DIR / "report.png")


@pytest.mark.parametrize("arguments, message", [
    (["runs", "--group-by", "config.lrr"], "--group-by: no run has 'config.lrr'; did you mean config.lr"),
    (["importance", "--sweep", "{sweep}", "--where", "status=FAILED"], "importance needs at least 4 completed runs"),
    (["importance", "--sweep", "{seeded}"], "importance needs at least 2 parameters that the completed runs vary, and "
                                            "they vary config.lr"),
    (["sweep", str(QUADRATIC), "with", "lr=[0.1,0.2]", "--seeds", "0"], "--seeds 0 must be at least 1"),
    (["sweep", "--optuna", "3", str(QUADRATIC), "with", "lr=loguniform(0.01,0.1)", "--seeds", "2"],
     "--seeds repeats the configurations of a grid or --random sweep"),
    (["rerun", "1", "--seeds", "0"], "--seeds 0 must be at least 1"),
    (["report", "--sweep", "{sweep}", "--out", "missing/report.html"], "the folder missing does not exist"),
])
def test_bad_input_is_one_line(arguments, message, quadratic_sweep, seeded_sweep, database, mongo_url, workdir):
    arguments = [argument.format(sweep=quadratic_sweep["id"], seeded=seeded_sweep) for argument in arguments]
    result = run_tracker(arguments, workdir, mongo_url, database.name)

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and message in result.stderr, \
        result.stderr


def test_rerun_with_seeds_repeats_the_run_with_new_seeds(reference_run, project_repo, workdir, mongo_url):
    db, original = reference_run["db"], reference_run["run"]

    result = run_tracker(["rerun", str(original["_id"]), "--seeds", "2"], workdir, mongo_url,
                         reference_run["db_name"], project=project_repo)

    assert result.returncode == 0, result.stdout + result.stderr
    reruns = list(db.runs.find({"info.rerun_of": original["_id"]}).sort("_id", -1).limit(2))  # the newest two
    seeds = [run["config"]["seed"] for run in reruns]
    assert len(set(seeds)) == 2 and original["config"]["seed"] not in seeds
    for run, seed in zip(reruns, seeds):
        assert run["status"] == "COMPLETED" and run["info"]["overrides"] == [f"seed={seed}"]
        assert {**run["config"], "seed": original["config"]["seed"]} == original["config"]
