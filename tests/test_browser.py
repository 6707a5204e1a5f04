"""Runs as a researcher sees them in Omniboard (`tracker board`) on the test server, driven in headless Chromium.

On nx-27017 (the embedded store, the default without TEST_MONGO_URL) this checks what localdb/nx_adapter.py adapts:
durations, settings and metric columns (dotted collections), compare, and deleting a run.
Screenshots go to each test's tmp_path and are copied to .tracker/screenshots/ (git-ignored) for a look afterwards.
"""
import importlib.util
import os
import re
import shutil
import time
import uuid

import pymongo
import pytest

from conftest import REPO_ROOT, require_tool, run_experiment, run_tracker, start_board, with_token

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is not used
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SCREENSHOT_DIR = REPO_ROOT / ".tracker" / "screenshots"
UI_TIMEOUT_MS = 30_000
# Two short runs with different learning rates: enough for the table, the detail view and Compare.
TINY_ARGS = ["with", "smoke", "trainer.steps=20", "trainer.val_every=10", "trainer.log_every=5", "data.limit=1000"]


@pytest.fixture(scope="module")
def two_runs(mongo_url, workdir):
    db_name = f"browser_{uuid.uuid4().hex[:10]}"
    for lr in ("0.01", "0.05"):
        result = run_experiment([*TINY_ARGS, f"lr={lr}"], workdir, mongo_url, db_name)
        assert result.returncode == 0, result.stderr
    client = pymongo.MongoClient(mongo_url)
    db = client[db_name]
    yield {"db": db, "db_name": db_name, "runs": list(db.runs.find(sort=[("_id", 1)]))}
    client.drop_database(db_name)
    client.close()


@pytest.fixture(scope="module")
def smoke_run(two_runs):
    """The first run, in the shape of conftest's smoke_run, which these tests used to share."""
    return {"db": two_runs["db"], "run": two_runs["runs"][0], "db_name": two_runs["db_name"]}


@pytest.fixture(scope="module")
def board_url(two_runs, mongo_url):
    board, url = start_board(mongo_url, two_runs["db_name"])
    yield with_token(url, board.token)
    board.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    require_tool(CHROMIUM, "apt install chromium")
    if importlib.util.find_spec("playwright") is None:
        if os.environ.get("CI"):
            pytest.fail("playwright is missing in CI; it is in the `test` extra")
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            viewport={"width": 4000, "height": 1000},  # wide enough that the table shows every column
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser, board_url):
    page = browser.new_page()
    page.goto(board_url)
    yield page
    page.close()


def screenshot(page, tmp_path, name):
    path = tmp_path / name
    page.screenshot(path=path)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOT_DIR / name)


def table_rows(page):
    """The runs table, once loaded, as one list of cell texts per run."""
    page.locator("[role=row][aria-rowindex='2']").wait_for()  # the first run below the header row
    rows = page.get_by_role("row").all()[1:]
    return [[cell.strip() for cell in row.get_by_role("gridcell").all_inner_texts()] for row in rows]


def open_run(page, run_id):
    """Expand the run's row into its detail view."""
    page.get_by_role("row").filter(has=page.get_by_role("gridcell").get_by_text(str(run_id), exact=True)).click()
    page.get_by_text(f"(Id: {run_id})").wait_for()


def test_runs_table_shows_the_run_with_its_status_and_result(page, smoke_run, tmp_path):
    run = smoke_run["run"]
    rows = table_rows(page)
    screenshot(page, tmp_path, "runs.png")
    row = next((cells for cells in rows if str(run["_id"]) in cells), None)
    assert row is not None, f"run {run['_id']} is not in the runs table: {rows}"
    assert "COMPLETED" in row
    assert any(is_number_close(cell, run["result"]) for cell in row), f"result {run['result']} not in {row}"


def test_run_detail_shows_the_loss_plot_the_output_and_the_artifacts(page, smoke_run, tmp_path):
    run = smoke_run["run"]
    table_rows(page)
    open_run(page, run["_id"])

    # The metrics plot (the detail view's first tab) draws train.loss with every recorded point.
    plot = page.locator(".js-plotly-plot")
    plot.locator(".legendtext", has_text="train.loss").wait_for()
    plotted = plot.evaluate("plot => Object.fromEntries(plot.data.map(trace => [trace.name, trace.y]))")
    recorded = smoke_run["db"].metrics.find_one({"run_id": run["_id"], "name": "train.loss"})
    assert plotted["train.loss"] == pytest.approx(recorded["values"])
    screenshot(page, tmp_path, "run_metrics.png")

    page.get_by_role("button", name="Captured Out", exact=True).click()
    captured = page.locator("#captured_out")
    captured.get_by_text("Iteration", exact=False).first.wait_for()
    screenshot(page, tmp_path, "run_captured_out.png")

    page.get_by_role("button", name="Artifacts", exact=True).click()
    artifact_names = page.locator("#artifacts .accordion__title h5")
    artifact_names.first.wait_for()
    names = [name.strip() for name in artifact_names.all_inner_texts()]
    screenshot(page, tmp_path, "run_artifacts.png")
    assert "model_best.pt" in names and "results.json" in names, names


def test_every_other_tab_of_a_run_shows_its_content(page, smoke_run, tmp_path):
    """Config, Run Info, Experiment Details, Host Info and Source Files, each answered by the embedded store."""
    run = smoke_run["run"]
    table_rows(page)
    open_run(page, run["_id"])
    expected = {  # tab: (its panel, a text of this run that the panel shows)
        "Config": ("config", str(run["config"]["lr"])),
        "Run Info": ("run_info", run["info"]["result_metric"]),
        "Experiment Details": ("experiment", run["experiment"]["mainfile"]),
        "Host Info": ("host_info", run["host"]["hostname"]),
        "Source Files": ("source_files", run["experiment"]["mainfile"]),
    }
    for tab, (panel, text) in expected.items():
        page.get_by_role("button", name=tab, exact=True).click()
        page.locator(f"#{panel}").get_by_text(text, exact=False).first.wait_for()
        screenshot(page, tmp_path, f"run_{tab.lower().replace(' ', '_')}.png")


def test_a_failed_runs_fail_trace_tab_shows_its_error(browser, mongo_url, workdir, tmp_path):
    db_name = f"browser_failed_{uuid.uuid4().hex[:10]}"
    result = run_experiment(["with", "smoke", "data.limit=10"], workdir, mongo_url, db_name)
    assert result.returncode == 1 and "data.batch_size=64 is larger" in result.stderr, result.stderr
    client = pymongo.MongoClient(mongo_url)
    run = client[db_name].runs.find_one()
    board, url = start_board(mongo_url, db_name)
    page = browser.new_page()
    try:
        page.goto(with_token(url, board.token))
        table_rows(page)
        open_run(page, run["_id"])
        page.get_by_role("button", name="Fail Trace", exact=True).click()
        page.locator("#fail_trace").get_by_text("data.batch_size=64 is larger", exact=False).first.wait_for()
        screenshot(page, tmp_path, "run_fail_trace.png")
    finally:
        page.close()
        board.kill()
        client.drop_database(db_name)
        client.close()


def is_number_close(text, value):
    try:
        return abs(float(text) - value) < 1e-3
    except ValueError:
        return False


def column(page, header):
    """{run id: cell text} of the runs table's column `header`."""
    rows = table_rows(page)
    headers = [text.strip() for text in page.get_by_role("columnheader").all_inner_texts()]
    return {int(row[headers.index("Id")]): row[headers.index(header)] for row in rows}


def choose(page, select_input, option):
    """Pick `option` in one of Omniboard's drop-downs (react-select) by typing it."""
    select_input.fill(option)
    page.keyboard.press("Enter")


def test_the_first_screen_shows_the_differing_config_key_and_the_best_score(page, two_runs, tmp_path):
    # `tracker board` stored these columns (tracker/board_columns.py): the runs differ in lr, their score is val.acc.
    best, lr = column(page, "Best Val Acc"), column(page, "Lr")
    screenshot(page, tmp_path, "first_screen.png")
    for run in two_runs["runs"]:
        recorded = two_runs["db"].metrics.find_one({"run_id": run["_id"], "name": "val.acc"})["values"]
        assert is_number_close(best[run["_id"]], max(recorded)), best
        assert is_number_close(lr[run["_id"]], run["config"]["lr"]), lr
    headers = [text.strip() for text in page.get_by_role("columnheader").all_inner_texts()]
    assert "Tags" in headers, headers  # a sweep's trials carry its tag there


def visible_headers(page):
    table_rows(page)
    return [text.strip() for text in page.get_by_role("columnheader").all_inner_texts() if text.strip()]


def test_a_fresh_browser_shows_the_result_first_and_plots_the_score_and_the_losses(browser, two_runs, mongo_url,
                                                                                   tmp_path):
    board, url = start_board(mongo_url, two_runs["db_name"])  # another port: an origin without settings here
    page = browser.new_page()
    page.set_viewport_size({"width": 1440, "height": 900})  # a laptop's screen
    try:
        page.goto(with_token(url, board.token))
        headers = visible_headers(page)
        screenshot(page, tmp_path, "first_screen_1440.png")
        assert headers == ["Id", "Experiment Name", "Status", "Start Time", "Duration", "Lr", "Best Val Acc", "Tags"]
        score = page.get_by_role("columnheader", name="Best Val Acc").bounding_box()
        assert score["x"] + score["width"] <= 1440, score  # on the first screen, no scrolling

        run = two_runs["runs"][0]
        open_run(page, run["_id"])
        plot = page.locator(".js-plotly-plot")
        plot.locator(".legendtext").first.wait_for()
        plotted = plot.evaluate("plot => plot.data.map(trace => trace.name)")
        plotted = [name for name in plotted if not name.endswith(".unsmoothed")]  # Omniboard draws both
        screenshot(page, tmp_path, "run_plot_1440.png")
        recorded = two_runs["db"].metrics.distinct("name", {"run_id": run["_id"]})
        assert "time.step_ms" in recorded and len(recorded) > len(plotted), recorded
        assert sorted(plotted) == sorted(name for name in recorded if "loss" in name or name == "val.acc")
    finally:
        page.close()
        board.kill()


def test_runs_table_shows_durations(page, two_runs, tmp_path):
    durations = column(page, "Duration")
    screenshot(page, tmp_path, "runs_durations.png")
    for run in two_runs["runs"]:
        seconds = (run["heartbeat"] - run["start_time"]).total_seconds()
        assert seconds > 1 and durations[run["_id"]] not in ("", "0", "0s"), durations
        assert float(re.findall(r"[\d.]+", durations[run["_id"]])[0]) > 0, durations


def test_a_metric_column_added_in_the_ui_shows_each_runs_best_value(page, two_runs, tmp_path):
    table_rows(page)
    page.get_by_role("button", name="+/- Metric Columns").click()
    page.locator("[test-attr=add-column-btn]").click()
    row = page.locator(".modal-body form .row").last
    row.locator("[test-attr^=column-name-text-]").fill("top_val_acc")
    drop_downs = row.locator("input[id^=react-select]")
    choose(page, drop_downs.nth(0), "val.acc")
    choose(page, drop_downs.nth(1), "max")
    page.locator("[test-attr=apply-btn]").click()
    page.get_by_role("columnheader", name="Top Val Acc").wait_for()
    page.reload()  # the column is stored in omniboard.metric.columns, not only in the page
    best = column(page, "Top Val Acc")
    screenshot(page, tmp_path, "runs_metric_column.png")
    for run in two_runs["runs"]:
        recorded = two_runs["db"].metrics.find_one({"run_id": run["_id"], "name": "val.acc"})["values"]
        assert is_number_close(best[run["_id"]], max(recorded)), best


def stored_time_zone(db):
    setting = db["omniboard.settings"].find_one({"name": "timezone"})
    return setting and setting["value"]


def open_settings(page):
    page.locator("#settings").click()
    page.locator("[test-attr=settings-button]").click()
    return page.locator(".modal-content")


def test_the_time_zone_setting_survives_a_reload(page, two_runs, tmp_path):
    table_rows(page)
    settings = open_settings(page)
    choose(page, settings.locator("input[id^=react-select]").first, "Asia/Tokyo")
    page.locator("[test-attr=apply-btn]").click()
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while stored_time_zone(two_runs["db"]) != "Asia/Tokyo":  # saved in omniboard.settings
        assert time.monotonic() < deadline, f"the time zone was not saved: {stored_time_zone(two_runs['db'])!r}"
        time.sleep(0.2)
    page.reload()
    table_rows(page)
    settings = open_settings(page)
    settings.get_by_text("Asia/Tokyo", exact=True).wait_for()  # stored in omniboard.settings
    screenshot(page, tmp_path, "settings_time_zone.png")


def test_compare_of_two_runs_plots_both_runs(page, two_runs, tmp_path):
    table_rows(page)
    for index in (0, 1):
        page.locator(f"[test-attr=cell-row_selection-{index}]").click()
    page.get_by_role("button", name="Compare").click()
    plot = page.locator(".metrics-plot-content .js-plotly-plot")
    plot.locator(".legendtext").first.wait_for()
    plotted = plot.evaluate("plot => Object.fromEntries(plot.data.map(trace => [trace.name, trace.y]))")
    screenshot(page, tmp_path, "compare.png")
    for run in two_runs["runs"]:
        recorded = two_runs["db"].metrics.find_one({"run_id": run["_id"], "name": "train.loss"})["values"]
        assert plotted[f"{run['_id']}-train.loss"] == pytest.approx(recorded)

    modal = page.locator(".compare-runs-modal")
    modal.locator("#sidebar").get_by_text("Source Files", exact=True).click()
    sources = modal.locator("#source_files")
    sources.locator(".accordion__title h5", has_text="cifar.py").first.wait_for()  # the joined GridFS files
    sources.get_by_text(re.compile(r"Expand \d+ lines")).first.wait_for()  # and their contents, the same in both
    screenshot(page, tmp_path, "compare_source_files.png")

    modal.locator("#sidebar").get_by_text("Config", exact=True).click()
    config = modal.locator("#config")
    for run in two_runs["runs"]:
        config.get_by_text(str(run["config"]["lr"]), exact=True).first.wait_for()
    screenshot(page, tmp_path, "compare_config.png")

    modal.locator("#sidebar").get_by_text("Captured Out", exact=True).click()
    modal.locator("#captured_out").get_by_text("Iteration", exact=False).first.wait_for()  # the runs' output
    screenshot(page, tmp_path, "compare_captured_out.png")


def test_deleting_a_run_in_the_ui_leaves_nothing_behind(page, two_runs, mongo_url, workdir, tmp_path):
    """Runs last in this module: it deletes the second run."""
    db, run = two_runs["db"], two_runs["runs"][1]
    column(page, "Id")
    page.get_by_role("row").filter(has=page.get_by_role("gridcell").get_by_text(str(run["_id"]), exact=True)) \
        .locator("[test-attr^=cell-row_selection-]").click()
    page.locator("button:has-text('Delete')").first.click()
    page.locator("[test-attr=delete-btn]").click()
    page.get_by_text(f"Experiment run {run['_id']} was deleted successfully").wait_for()
    screenshot(page, tmp_path, "runs_after_delete.png")
    assert db.runs.find_one({"_id": run["_id"]}) is None
    assert db.metrics.find_one({"run_id": run["_id"]}) is None
    if os.environ.get("TEST_MONGO_URL") is None:  # on MongoDB, Omniboard leaves metric_points to `tracker gc`
        assert db.metric_points.find_one({"run_id": run["_id"]}) is None
        gc = run_tracker(["gc", "--dry-run", "--min-age", "0"], workdir, mongo_url, two_runs["db_name"])
        assert gc.returncode == 0 and gc.stdout.startswith("would free nothing"), gc.stdout + gc.stderr
