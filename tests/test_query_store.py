"""`tracker runs --sort KEY --limit N` and `runs(sort=, limit=)` read their first rows from the store, which filters,
sorts and cuts (runstore.query.top_rows), and give exactly the rows of a full listing: ties, NaN, missing values,
derived statuses, values of mixed kinds and runs waiting in RUNS_DIR included. Against the test session's server
(`tracker db`'s, or TEST_MONGO_URL's MongoDB). `tracker ui`'s runs table pages the same way, in Chromium."""
import datetime
import json
import random

import pymongo
import pytest

from conftest import TrackerCommand, free_port
from observers.upload import ensure_listing_indexes
from runstore.query import list_rows, parse_condition, select, selected_rows, top_rows
from runstore.run_store import MongoStore
from runstore.settings import Settings
from test_browser import SCREENSHOT_DIR
from test_ui import browser  # noqa: F401 - a fixture

STORED = 130  # more than top_rows' first page
START = datetime.datetime(2026, 11, 1, 9, 30)


def run_document(run_id, rng):
    status = rng.choice(["COMPLETED"] * 6 + ["FAILED", "RUNNING"])
    result = rng.choice([round(rng.random(), 1), round(rng.random(), 3), float("nan"), None, "missing"])
    document = {
        "_id": run_id, "experiment": {"name": rng.choice(["cifar", "signals"])}, "status": status,
        "start_time": START + datetime.timedelta(minutes=rng.randrange(1000)),  # ties too
        "host": {"hostname": "node1"}, "heartbeat": START, "stop_time": START + datetime.timedelta(days=1),
        "config": {"lr": rng.choice([0.01, 0.05, 0.1]), "seed": run_id, "arch": rng.choice(["cnn", "mlp", "vit"]),
                   # Mostly numbers, some text: the store and a listing order mixed kinds differently
                   "width": rng.choice([16, 32, 64, 128, 256, "wide"] if run_id % 7 == 0 else [16, 32, 64])},
        "info": {"pid": 1, "higher_is_better": True}, "metric_summaries": [],
        "omniboard": {"tags": ["pruned"] if rng.random() < 0.1 else []}, "result": result,
    }
    if result == "missing":
        del document["result"]
    return document


@pytest.fixture(scope="module", params=["indexed", "unindexed"])
def settings(request, mongo_url, tmp_path_factory):
    """STORED runs in a fresh database, and two run folders in RUNS_DIR: one uploaded, one still waiting. With the
    indexes that the uploader makes, and without (a database that Sacred's own observer filled)."""
    runs_dir = tmp_path_factory.mktemp("runs")
    settings = Settings(mongo_url=mongo_url, db_name=f"query_store_{random.randrange(10**9)}", runs_dir=runs_dir)
    rng = random.Random(3)
    client = pymongo.MongoClient(mongo_url)
    documents = [run_document(run_id, rng) for run_id in range(1, STORED + 1)]
    for number, uploaded in ((1, True), (2, False)):
        folder = runs_dir / str(number)
        folder.mkdir()
        entry = {"status": "COMPLETED", "start_time": f"2026-11-0{number}T12:00:00", "host": {"hostname": "laptop"},
                 "experiment": {"name": "cifar"}, "result": 0.99, "heartbeat": "2026-11-01T12:00:00",
                 "artifacts": [], "resources": [], "meta": {}}
        (folder / "run.json").write_text(json.dumps(entry))
        (folder / "config.json").write_text(json.dumps({"lr": 0.05, "arch": "cnn", "width": 32}))
        (folder / "info.json").write_text("{}")
        if uploaded:
            documents[0]["local_copy"] = {"key": f"laptop|{entry['start_time']}|cifar"}
    client[settings.db_name].runs.insert_many(documents)
    if request.param == "indexed":
        ensure_listing_indexes(client[settings.db_name])
    yield settings
    client.drop_database(settings.db_name)
    client.close()


CASES = [
    ([], "-result", 10), ([], "result", 10), ([], "-start", 20), ([], "start", 5),
    (["status=COMPLETED"], "-result", 7), (["status=PRUNED"], "-result", 3), (["status=FAILED"], "result", 2),
    (["experiment=cifar", "config.arch=mlp"], "-config.lr", 6), (["config.lr>=0.05"], "-result", 12),
    ([], "-config.width", 10), ([], "config.width", 10), (["config.arch~^v"], "config.arch", 4),
    ([], "-config.arch", 60), (["tags=pruned"], "start", 2), ([], "-result", STORED + 5),
]


@pytest.mark.parametrize(("where", "sort", "limit"), CASES)
def test_the_first_rows_are_those_of_a_full_listing(settings, where, sort, limit):
    wanted = [parse_condition(text) for text in where]
    expected = select(list_rows(settings), wanted, sort, limit)

    shown = selected_rows(wanted, sort, limit, settings)

    assert [row["id"] for row in shown] == [row["id"] for row in expected]
    assert expected  # each case selects some runs


def test_the_store_cuts_the_listing(settings):
    """The first rows of a sort by a stored column come from one page of the store, not from every run."""
    with MongoStore.connect(settings) as mongo:
        read = top_rows(mongo, [parse_condition("status=COMPLETED")], "-result", 5)
        assert read is not None and 5 <= len(read) < STORED
        assert top_rows(mongo, [], "-config.width", 5) is None  # text beside numbers: every run is listed


def test_the_ui_pages_through_the_stores_first_runs(settings, browser, workdir):  # noqa: F811 - the fixture
    listed = list_rows(settings)  # the database's runs and the one waiting in RUNS_DIR
    expected = [str(row["id"]) for row in select(listed, [], "-result", 100)]
    env = {"MONGO_URL": settings.mongo_url, "SACRED_DB": settings.db_name, "RUNS_DIR": settings.runs_dir}
    command = TrackerCommand("ui", "--port", str(free_port()), cwd=workdir, **env)
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(command.wait_for(r"open (http://\S+)", 60)[1] + "&sort=-result")
        ids = page.locator("table.runs tbody tr").evaluate_all("rows => rows.map(row => row.dataset.id)")
        assert ids == expected[:50]
        assert f"more than 50 of {len(listed)} runs" in page.locator("form.filters .note").inner_text()
        page.get_by_role("link", name="next »").click()
        page.wait_for_url("**page=1**")
        ids = page.locator("table.runs tbody tr").evaluate_all("rows => rows.map(row => row.dataset.id)")
        assert ids == expected[50:100]
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT_DIR / "ui_runs_page_2_mongo.png", full_page=True)
        context.close()
    finally:
        command.kill()
