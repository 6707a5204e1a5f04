"""`tracker ui` as a researcher uses it, in headless Chromium, on both stores: the file store alone (no database at
all) and MongoDB (the conftest server: nx-27017, or TEST_MONGO_URL). Two short runs (lr 0.01 and 0.05) tagged as
sweep 7's trials; each test saves a screenshot in .tracker/screenshots/ (git-ignored) for a look afterwards."""
import base64
import datetime
import json
import os
import platform
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid

import bson
import gridfs
import pymongo
import pytest
import torch

from observers.upload import RunUploader, UploadState
from runstore.local_run import LocalRun
from conftest import TrackerCommand, free_port, run_experiment, run_tracker
from test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOT_DIR, TINY_ARGS, UI_TIMEOUT_MS

NO_DATABASE = "mongodb://127.0.0.1:1"
SWEEP = "7"


@pytest.fixture(scope="module")
def file_store(workdir, tmp_path_factory):
    """Two finished runs in a file store, tagged as sweep 7's trials (as `tracker sweep` tags them, in their info),
    each with its last checkpoint."""
    runs_dir = tmp_path_factory.mktemp("ui_runs")
    # A temporary folder of their own: another session's `tracker sync` on this host cleans up /tmp's.
    temp = tmp_path_factory.mktemp("ui_temp")
    for lr in ("0.01", "0.05"):
        result = run_experiment([*TINY_ARGS, f"lr={lr}", "trainer.checkpoint_every=20"], workdir, NO_DATABASE,
                                "unused", runs_dir=runs_dir, TMPDIR=temp)
        assert result.returncode == 0, result.stderr
    for folder in run_folders(runs_dir):
        info = json.loads((folder / "info.json").read_text())
        (folder / "info.json").write_text(json.dumps({**info, "tags": [f"sweep-{SWEEP}"]}))
    return runs_dir


def run_folders(runs_dir):
    return sorted(path for path in runs_dir.iterdir() if (path / "run.json").is_file())


@pytest.fixture(scope="module", params=["files", "mongo"])
def store(request, file_store, workdir, tmp_path_factory):
    """{kind, env for `tracker ui`, read(lr): how the store holds that run (tags, notes)}."""
    if request.param == "files":
        runs_dir = tmp_path_factory.mktemp("ui_live_runs")
        for folder in run_folders(file_store):
            shutil.copytree(folder, runs_dir / folder.name)

        def annotations(lr):
            for folder in run_folders(runs_dir):
                if json.loads((folder / "config.json").read_text())["lr"] == lr:
                    info = json.loads((folder / "info.json").read_text())
                    return info.get("tags"), info.get("notes")

        yield {"kind": "files", "env": {"MONGO_URL": NO_DATABASE, "SACRED_DB": "unused", "RUNS_DIR": runs_dir},
               "annotations": annotations, "live_dir": runs_dir, "publish": str}
        return
    mongo_url = request.getfixturevalue("mongo_url")
    db_name = f"ui_{uuid.uuid4().hex[:10]}"
    synced = run_tracker(["sync", *map(str, run_folders(file_store))], workdir, mongo_url, db_name)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    client = pymongo.MongoClient(mongo_url)

    def annotations(lr):
        doc = client[db_name].runs.find_one({"config.lr": lr})
        return doc["omniboard"].get("tags"), doc["omniboard"].get("notes")

    uploader, state = RunUploader(client[db_name]), UploadState()

    def publish(folder):
        """Mirror the run folder to MongoDB, as a running run's observer does (observers.durable)."""
        return str(uploader.upload(LocalRun.load(folder), state))

    empty = tmp_path_factory.mktemp("ui_no_local_runs")
    yield {"kind": "mongo", "env": {"MONGO_URL": mongo_url, "SACRED_DB": db_name, "RUNS_DIR": empty},
           "annotations": annotations, "live_dir": tmp_path_factory.mktemp("ui_live_run"), "publish": publish}
    client.drop_database(db_name)
    client.close()


@pytest.fixture(scope="module")
def ui(store, workdir):
    """`tracker ui` on a free port: the URL it printed (with its token)."""
    command = TrackerCommand("ui", "--port", str(free_port()), cwd=workdir, **store["env"])
    url = command.wait_for(r"open (http://\S+)", 60)[1]
    yield url
    command.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, ui):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    page.goto(ui)  # sets the token's cookie and lands on the runs table
    yield page
    context.close()


def screenshot(page, store, name):
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOT_DIR / f"ui_{name}_{store['kind']}.png", full_page=True)


def table(page):
    """The runs table as {column: cell text} per row."""
    page.locator("table.runs tbody tr").first.wait_for()
    headers = [text.strip(" ▲▼") for text in page.locator("table.runs thead th").all_inner_texts()]
    return [dict(zip(headers, (text.strip() for text in row.locator("td").all_inner_texts())))
            for row in page.locator("table.runs tbody tr").all()]


def open_run(page, lr):
    """Open the run page of the run with learning rate `lr` from the runs table."""
    row = page.locator("table.runs tbody tr").filter(has_text=lr)
    row.locator("td").nth(1).get_by_role("link").click()
    page.locator("#status").wait_for()


def test_the_runs_table_shows_each_run_with_its_status_result_and_curve(page, store):
    rows = table(page)
    screenshot(page, store, "runs")
    assert sorted(row["config.lr"] for row in rows) == ["0.01", "0.05"]
    assert {row["status"] for row in rows} == {"COMPLETED"}
    assert all(float(row["result"].split()[0]) > 0 and "↑" in row["result"] for row in rows)
    assert {row["tags"] for row in rows} == {f"sweep-{SWEEP}"}
    assert all(re.fullmatch(r"(\d+m)?\d+s", row["duration"]) for row in rows)  # as `tracker runs` shows it
    assert page.locator("table.runs svg.spark polyline").count() == 2  # each run's val.acc


def test_filter_sort_and_columns_survive_a_reload(page, store):
    page.locator("form.filters input[name=where]").last.fill("config.lr>=0.05")
    page.locator("form.filters button").click()
    assert [row["config.lr"] for row in table(page)] == ["0.05"]
    page.locator("form.filters input[name=where]").first.fill("config.lr>0")
    page.locator("form.filters button").click()
    page.get_by_role("link", name="config.lr", exact=True).click()  # sort by lr, descending
    page.wait_for_url("**sort=-config.lr**")
    page.locator("details.columns summary").click()
    page.locator("input.col[value='host']").check()
    page.locator("#apply-columns").click()
    page.wait_for_url("**cols=**")
    page.reload()
    rows = table(page)
    screenshot(page, store, "runs_filtered")
    assert [row["config.lr"] for row in rows] == ["0.05", "0.01"]
    assert list(rows[0])[-3:] == ["result", "host", "curve"]  # a chosen column comes after the shown ones
    assert rows[0]["host"] not in ("", "-")
    assert page.locator("form.filters input[name=where]").first.input_value() == "config.lr>0"


def test_the_run_page_shows_this_runs_config_plots_output_and_artifacts(page, store, file_store):
    open_run(page, "0.05")
    plot = page.locator("#plot-loss.js-plotly-plot")
    plot.locator(".legendtext", has_text="val.loss").wait_for()
    names = plot.evaluate("plot => plot.data.map(trace => trace.name)")
    assert sorted(names) == ["train.loss", "val.loss"]  # one family per plot, never every metric on one axis
    screenshot(page, store, "run")
    assert page.locator("#folded .js-plotly-plot").count() == 0  # sys.* and time.* folded away until asked for
    page.locator("#folded summary").click()
    page.locator("#folded .js-plotly-plot .legendtext", has_text="time.step_ms").wait_for()
    assert page.locator("table.config tr.set", has_text="lr").inner_text().split()[:2] == ["lr", "0.05"]
    assert "Validation at step 20/20" in page.locator("#output").inner_text()
    assert page.locator(".preview img[alt='confusion_matrix.png']").evaluate("image => image.naturalWidth") > 0
    results = page.locator(".preview", has=page.get_by_role("heading", name="results.json", exact=True))
    results.locator("pre").wait_for()  # previews are read once the page is drawn
    assert '"best_val_acc"' in results.inner_text()
    assert "tracker rerun" in page.locator("code.command").first.inner_text()

    folder, = (path for path in run_folders(file_store) if json.loads((path / "config.json").read_text())["lr"] == 0.05)
    model = torch.load(folder / "checkpoint.pt", weights_only=True)["model"]  # the store holds this file's bytes
    checkpoint = page.locator(".preview", has=page.get_by_role("heading", name="checkpoint.pt", exact=True))
    checkpoint.locator("table.tensors").wait_for()
    rows = checkpoint.locator("table.state-dicts tbody tr").all()
    state_dicts = {cells[0]: cells[1:] for cells in (row.locator("td").all_inner_texts() for row in rows)}
    assert state_dicts["model"][:2] == [str(len(model)), f"{sum(tensor.numel() for tensor in model.values()):,}"]
    assert f"model.{next(iter(model))}" in checkpoint.locator("table.tensors").inner_text()


def test_a_tag_and_note_edit_is_stored(page, store):
    open_run(page, "0.01")
    page.get_by_label("Tags").fill("sweep-7, baseline")
    page.get_by_label("Note").fill("lr too low")
    page.get_by_role("button", name="Save").click()
    page.locator("#status").wait_for()
    assert page.get_by_label("Tags").input_value() == "sweep-7, baseline"
    screenshot(page, store, "run_tagged")
    assert store["annotations"](0.01) == (["sweep-7", "baseline"], "lr too low")


def test_compare_and_groups_show_both_runs(page, store):
    table(page)
    for box in page.locator("table.runs tbody input[type=checkbox]").all():
        box.check()
    page.get_by_role("button", name="Compare selected").click()
    page.locator("table.compare").wait_for()
    lr_row = page.locator("table.compare tr", has_text="config.lr").inner_text().split()
    assert sorted(lr_row[1:]) == ["0.01", "0.05"]
    page.locator(".js-plotly-plot .legendtext").first.wait_for()
    verdict = page.locator("div.verdict")  # both runs stored their predictions of the same test images
    assert "McNemar's exact test: p = " in verdict.inner_text() and "p (Holm)" in verdict.inner_text()
    thumbnails = verdict.locator("img.thumbnail").count()
    assert thumbnails >= 1 and thumbnails == verdict.locator("table.verdict").last.locator("tr").count() - 1
    screenshot(page, store, "compare")
    page.get_by_role("link", name="time", exact=True).click()
    page.locator(".js-plotly-plot .xtitle", has_text="seconds since").first.wait_for()
    page.get_by_role("link", name="group these runs").click()
    page.locator("table.groups").wait_for()
    screenshot(page, store, "groups")
    headers = page.locator("table.groups th").all_inner_texts()
    lines = [line.locator("td").all_inner_texts() for line in page.locator("table.groups tbody tr").all()]
    assert headers[0] == "config.lr" and sorted(line[0] for line in lines) == ["0.01", "0.05"]
    assert [line[headers.index("n")] for line in lines] == ["1", "1"]
    assert [line[headers.index("p_vs_best")] for line in lines] == ["best", "n too small"]


def test_the_sweep_page_shows_progress_and_the_reports_figures(page, store, ui):
    page.goto(ui.split("?")[0] + f"sweep?id={SWEEP}")
    page.locator(".js-plotly-plot").first.wait_for()
    screenshot(page, store, "sweep")
    assert "2 trials: 2 completed, 0 running, 0 failed, 0 pruned" in page.locator("p").first.inner_text()
    headings = page.locator("h2").all_inner_texts()
    assert "Parameters and result" in headings and "Result against config.lr" in headings
    assert page.locator(".js-plotly-plot .parcoords").count() == 1


def test_a_running_runs_new_point_and_output_appear_without_a_reload(page, store, file_store, ui):
    finished = run_folders(file_store)[0]
    # Its sources are found by the folder's name (runstore.local_run.source_file): the same, where it is free
    folder = store["live_dir"] / (finished.name if store["kind"] == "mongo" else "99")
    shutil.copytree(finished, folder)
    entry = json.loads((folder / "run.json").read_text())
    # Another start time: another run (LocalRun.key) than the one it was copied from
    # A live run: its process (this test's) exists and it sent a heartbeat just now, so no listing takes it for dead
    now = datetime.datetime.utcnow().isoformat()
    write_json(folder / "run.json", {**entry, "status": "RUNNING", "start_time": "2026-12-01T10:00:00.000000",
                                     "heartbeat": now, "host": {**entry["host"], "hostname": platform.node()}})
    write_json(folder / "info.json", {**json.loads((folder / "info.json").read_text()), "pid": os.getpid()})
    reference = store["publish"](folder)
    page.goto(ui.split("?")[0] + "run?" + urllib.parse.urlencode({"id": reference}))
    page.locator("#plot-loss .legendtext", has_text="val.loss").wait_for()
    page.evaluate("window.notReloaded = true")

    metrics = json.loads((folder / "metrics.json").read_text())
    series = metrics["val.loss"]
    series["steps"].append(30), series["values"].append(1.2345), series["timestamps"].append(series["timestamps"][-1])
    write_json(folder / "metrics.json", metrics)
    with open(folder / "cout.txt", "a") as output:
        output.write("Validation at step 30/30 | val loss: 1.2345\n")
    store["publish"](folder)
    page.wait_for_function("""() => document.getElementById("plot-loss").data
        .find(trace => trace.name === "val.loss").x.includes(30)""")
    page.get_by_text("Validation at step 30/30").wait_for()
    screenshot(page, store, "run_live")

    write_json(folder / "run.json", {**json.loads((folder / "run.json").read_text()), "status": "COMPLETED"})
    store["publish"](folder)
    page.locator("#status.COMPLETED").wait_for()
    assert page.evaluate("window.notReloaded") is True


def write_json(path, value):
    path.write_text(json.dumps(value))


def test_requests_without_the_token_or_from_elsewhere_are_refused(browser, ui, store):
    base = ui.split("?")[0]
    context = browser.new_context()
    try:
        response = context.new_page().goto(base)
        assert response.status == 401
    finally:
        context.close()
    token = ui.split("token=")[1]
    cookie = {"Cookie": f"tracker_ui_token={token}"}
    assert status_of(base, cookie) == 200
    assert status_of(base, {**cookie, "Host": "attacker.example:80"}) == 421  # DNS rebinding
    assert status_of(base + "run/annotate", {**cookie, "Origin": "http://attacker.example"}, b"id=1&tags=x") == 403
    assert status_of(base + "run/annotate", cookie, b"id=1&tags=x") == 403  # no Origin: not one of our pages


def status_of(url, headers, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers)) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_another_address_needs_the_login_and_the_login_is_asked(tmp_path, workdir):
    refused = run_tracker(["ui", "--host", "0.0.0.0", "--port", str(free_port())], workdir, NO_DATABASE, "unused")
    assert refused.returncode == 1 and "needs a login: set BOARD_PASSWORD" in refused.stderr, refused.stderr
    command = TrackerCommand("ui", "--port", str(free_port()), cwd=workdir, MONGO_URL=NO_DATABASE, SACRED_DB="unused",
                             RUNS_DIR=tmp_path, BOARD_PASSWORD="s3cret")
    try:
        base, token = command.wait_for(r"open (http://\S+)", 60)[1].split("?token=")
        cookie = {"Cookie": f"tracker_ui_token={token}"}
        assert status_of(base, cookie) == 401
        login = base64.b64encode(b"sacred:s3cret").decode()
        assert status_of(base, {**cookie, "Authorization": f"Basic {login}"}) == 200
        wrong = base64.b64encode(b"sacred:guess").decode()
        assert status_of(base, {**cookie, "Authorization": f"Basic {wrong}"}) == 401
    finally:
        command.kill()


def test_an_html_artifact_is_served_as_text_that_runs_no_script(page, store, ui):
    """A stored notes.html (planted in the database, as Omniboard's API lets anyone do, or in a run folder) is served
    as sandboxed text: its script never runs on the board's origin."""
    html = b"<html><title>x</title><script>document.title = 'ran'</script></html>"
    env = store["env"]
    if store["kind"] == "mongo":
        client = pymongo.MongoClient(env["MONGO_URL"])
        db = client[env["SACRED_DB"]]
        run = db.runs.find_one({"config.lr": 0.05})
        file_id = gridfs.GridFS(db).put(html, filename="notes.html")
        artifacts = [*run["artifacts"], {"name": "notes.html", "file_id": file_id}]
        db.runs.update_one({"_id": run["_id"]}, {"$set": {"artifacts": artifacts}})  # as Omniboard's API writes
        client.close()
        reference = str(run["_id"])
    else:
        folder = next(path for path in run_folders(env["RUNS_DIR"])
                      if json.loads((path / "config.json").read_text())["lr"] == 0.05)
        entry = json.loads((folder / "run.json").read_text())
        write_json(folder / "run.json", {**entry, "artifacts": [*entry["artifacts"], "notes.html"]})
        (folder / "notes.html").write_bytes(html)
        reference = str(folder)
    url = ui.split("?")[0] + "artifact?" + urllib.parse.urlencode({"id": reference, "name": "notes.html"})

    response = page.goto(url)

    assert response.status == 200, page.content()
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" in page.locator("body").inner_text()  # shown as its text
    assert page.evaluate("document.title") != "ran"


def test_an_artifact_whose_file_is_gone_is_named_and_the_page_still_draws(page, store, ui):
    """An artifact listed by its run but whose file was deleted by hand (or never uploaded) leaves a note in its
    box; the rest of the run page draws."""
    env = store["env"]
    if store["kind"] == "mongo":
        client = pymongo.MongoClient(env["MONGO_URL"])
        db = client[env["SACRED_DB"]]
        run = db.runs.find_one({"config.lr": 0.01})
        lost = {"name": "lost.json", "file_id": bson.ObjectId()}  # no GridFS file has this id
        db.runs.update_one({"_id": run["_id"]}, {"$set": {"artifacts": [*run["artifacts"], lost]}})
        client.close()
    else:
        folder = next(path for path in run_folders(env["RUNS_DIR"])
                      if json.loads((path / "config.json").read_text())["lr"] == 0.01)
        entry = json.loads((folder / "run.json").read_text())
        write_json(folder / "run.json", {**entry, "artifacts": [*entry["artifacts"], "lost.json"]})

    open_run(page, "0.01")

    lost_box = page.locator(".preview", has=page.get_by_role("heading", name="lost.json", exact=True))
    lost_box.locator("p.note", has_text="holds no file").wait_for()
    checkpoint = page.locator(".preview", has=page.get_by_role("heading", name="checkpoint.pt", exact=True))
    checkpoint.locator("table.tensors").wait_for()
    link = lost_box.get_by_role("link", name="lost.json").get_attribute("href")
    download = page.request.get(ui.split("?")[0] + link.lstrip("/"))
    assert download.status == 404
