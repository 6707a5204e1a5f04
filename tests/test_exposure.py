"""What the board and the run store let others do: other addresses, other web sites, other users of the machine.

The attacker's side runs from a second loopback address (127.0.0.2), from a page of another origin in Chromium,
and as another local user created for the purpose.
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import gridfs
import pymongo
import pytest

from conftest import TrackerCommand, free_port, python_env, require_tool, start_board, with_token
from localdb.server import PID_FILE
from runstore.settings import STORE_DIR, STORE_SOCKET, load_settings, store_url
from test_browser import browser  # noqa: F401 - the Chromium of the browser tests

OTHER_USER = "tracker-other"  # a second local user, made by the test
RUN = {"_id": 1, "status": "COMPLETED", "config": {"lr": 0.01}, "experiment": {"name": "exposed"}}


def request(url, method="GET", password=None, **headers):
    """(status, body) of an HTTP request; urllib's errors are answers too."""
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"sacred:{password}".encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers), timeout=30) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def at_address(url, address):
    """`url` of a board, reached at `address` of this machine."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{address}:{parts.port}"))


@pytest.fixture(scope="module")
def one_run(mongo_url):
    client = pymongo.MongoClient(mongo_url)
    db = client[f"exposed_{uuid.uuid4().hex[:10]}"]
    db.runs.insert_one(RUN)
    yield db
    client.drop_database(db.name)
    client.close()


@pytest.fixture(scope="module")
def default_board(one_run, mongo_url):
    """`tracker board` as started without options: its URL, less the token, the token, and the command."""
    board, url = start_board(mongo_url, one_run.name)
    yield url, board.token, board
    board.kill()


def test_a_default_board_is_unreachable_from_another_address(default_board):
    url, token, _ = default_board
    assert request(with_token(f"{url}/api/v1/Runs?select=_id", token))[:2] == (200, '[{"_id":1}]')
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        request(with_token(f"{at_address(url, '127.0.0.2')}/api/v1/Runs?select=_id", token))


def test_the_board_answers_no_other_site_and_refuses_its_writes(default_board, one_run):
    url, token, _ = default_board
    run_url = with_token(f"{url}/api/v1/Runs/1", token)  # even with the token, which a page of another site lacks
    preflight = request(run_url, "OPTIONS", Origin="http://attacker.example",
                        **{"Access-Control-Request-Method": "DELETE"})
    assert not [name for name in preflight[2] if name.lower().startswith("access-control-")], preflight[2]
    for method in ("DELETE", "PUT", "POST"):
        status, body, _ = request(run_url, method, Origin="http://attacker.example")
        assert (status, body) == (403, "Changes from pages of other sites are refused.\n"), method
    # A page whose own name resolves to this machine (DNS rebinding) is not served as the board.
    assert request(f"{url}/api/v1/Runs", Host="attacker.example")[0] == 403
    assert one_run.runs.find_one({"_id": 1}) == RUN


NO_TOKEN = (401, "Open the board with the URL that 'tracker board' printed: it holds the board's token.\n")


def test_a_default_board_answers_only_with_the_token_it_printed_which_ps_and_its_log_do_not_show(default_board,
                                                                                                  one_run):
    url, token, board = default_board
    runs_url = f"{url}/api/v1/Runs?select=_id"
    assert request(runs_url)[:2] == NO_TOKEN
    assert request(with_token(runs_url, token[:-1]))[:2] == NO_TOKEN
    assert request(runs_url, Cookie=f"tracker-board-{urlsplit(url).port}=wrong")[:2] == NO_TOKEN
    for method in ("DELETE", "PUT"):
        assert request(f"{url}/api/v1/Runs/1", method)[:2] == NO_TOKEN
    status, body, headers = request(with_token(runs_url, token))
    assert (status, body) == (200, '[{"_id":1}]')
    # The browser keeps the token for Omniboard's own requests, out of the page's scripts and of other sites' pages.
    cookie = headers["Set-Cookie"]
    assert cookie == f"tracker-board-{urlsplit(url).port}={token}; HttpOnly; SameSite=Strict; Path=/", cookie
    assert request(runs_url, Cookie=cookie.split(";")[0])[:2] == (200, '[{"_id":1}]')
    assert one_run.runs.find_one({"_id": 1}) == RUN
    # Omniboard logs each request's URL; the log, often kept in a file, shows the token as *** (as Jupyter's does).
    board.wait_for(r"GET /sacred/api/v1/Runs\?select=_id&token=\*\*\* ", 60)
    assert [line for line in board.output if token in line] == [line for line in board.output if "open http" in line]
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes(), pid
        except (FileNotFoundError, ProcessLookupError):
            pass  # ended meanwhile


def test_another_user_of_the_machine_cannot_use_a_default_board(default_board, one_run, other_user):
    url, _, _ = default_board
    answers = as_user(other_user, f"""
import urllib.error, urllib.request
for method in ("GET", "PUT", "DELETE"):
    try:
        answer = urllib.request.urlopen(urllib.request.Request({url!r} + "/api/v1/Runs/1", method=method), timeout=30)
        print(method, answer.status)
    except urllib.error.HTTPError as error:
        print(method, error.code)
""")
    assert answers.splitlines() == ["GET 401", "PUT 401", "DELETE 401"]
    assert one_run.runs.find_one({"_id": 1}) == RUN


def test_another_user_of_the_machine_cannot_use_tracker_ui(tmp_path, workdir, other_user):
    ui = TrackerCommand("ui", "--port", str(free_port()), cwd=workdir, MONGO_URL="mongodb://127.0.0.1:1",
                        SACRED_DB="unused", RUNS_DIR=tmp_path / "runs")
    try:
        url = ui.wait_for(r"open (http://\S+)", 60)[1]
        base, token = url.split("?token=")
        answers = as_user(other_user, f"""
import urllib.error, urllib.request
for method, path, data in (("GET", "", None), ("GET", "api/metric?id=1&name=x", None),
                           ("POST", "run/annotate", b"id=1&tags=x")):
    try:
        answer = urllib.request.urlopen(urllib.request.Request({base!r} + path, data=data, method=method), timeout=30)
        print(method, answer.status)
    except urllib.error.HTTPError as error:
        print(method, error.code)
""")
        assert answers.splitlines() == ["GET 401", "GET 401", "POST 401"]
        own = urllib.request.Request(base, headers={"Cookie": f"tracker_ui_token={token}"})
        assert urllib.request.urlopen(own, timeout=30).status == 200  # its user, with the token it printed, gets in
    finally:
        ui.kill()


@pytest.fixture
def attacker_page(tmp_path):
    """A page of another origin (another port) that sends the board a DELETE when opened."""
    tmp_path.joinpath("index.html").write_text("<title>another site</title>")
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def test_a_page_of_another_site_cannot_delete_a_run_in_chromium(browser, attacker_page, default_board, one_run):
    page = browser.new_page()
    try:
        page.goto(attacker_page)
        outcome = page.evaluate(
            """async (url) => {
                try { return (await fetch(url, {method: "DELETE"})).status; } catch (error) { return String(error); }
            }""",
            f"{default_board[0]}/api/v1/Runs/1",
        )
    finally:
        page.close()
    assert outcome == "TypeError: Failed to fetch"
    assert one_run.runs.find_one({"_id": 1}) == RUN


# An artifact whose script deletes run 1 through Omniboard's API, with the user's cookie, as the page loads (a
# synchronous request: done before `goto` returns).
HOSTILE_ARTIFACT = """<title>notes</title><script>
const request = new XMLHttpRequest();
request.open("DELETE", "/sacred/api/v1/Runs/1", false);
request.send();
document.title = "sent DELETE: " + request.status;
</script>"""


# Omniboard's routes ignore case; it frames `api/v1/files/preview/ID/NAME` with the artifact's stored name as it is, so
# a name such as ../../../../../../SACRED/API/v1/Files/preview/ID/x.html leads its own preview to the second spelling.
@pytest.mark.parametrize("files", ["sacred/api/v1/files", "SACRED/API/v1/Files"])
def test_an_html_artifact_is_no_page_of_the_board_in_chromium(files, browser, default_board, one_run):
    url, token, _ = default_board
    file_id = gridfs.GridFS(one_run).put(HOSTILE_ARTIFACT.encode(), filename="notes.html")
    origin = url.removesuffix("/sacred")
    preview = f"{origin}/{files}/preview/{file_id}/notes.html"
    page = browser.new_page()
    try:
        page.goto(with_token(url, token))  # logged in: the board's cookie is set
        answer = page.goto(preview)
        assert answer.status == 200 and "<script>" in answer.text()
        title = page.title()
    finally:
        page.close()
    assert one_run.runs.find_one({"_id": 1}) == RUN, title
    headers = answer.headers
    assert (headers["content-security-policy"], headers["x-content-type-options"]) == ("sandbox", "nosniff")
    for name in ("drawing.svg", "notes.html"):  # downloads too, of every type
        download = request(with_token(f"{origin}/{files}/download/{file_id}/{name}", token))
        assert (download[2]["Content-Security-Policy"], download[2]["X-Content-Type-Options"]) == ("sandbox", "nosniff")


def test_a_board_on_every_address_needs_the_login_which_ps_does_not_show(one_run, mongo_url):
    password = f"pw:{uuid.uuid4().hex}"  # a ':' too: only the first one ends the user name
    board, url = start_board(mongo_url, one_run.name, "--host", "0.0.0.0", BOARD_PASSWORD=password)
    try:
        runs_url = f"{at_address(url, '127.0.0.2')}/api/v1/Runs?select=_id"
        assert request(runs_url)[:2] == (401, "Log in with BOARD_USER and BOARD_PASSWORD.\n")
        assert request(runs_url, password=password + "x")[0] == 401
        assert request(runs_url, password=password)[:2] == (200, '[{"_id":1}]')
        board_processes = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                           if _process_group(pid) == board.process.pid]
        assert len(board_processes) >= 2, board_processes  # tracker board and Omniboard's node
        for pid in board_processes:
            assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert password not in "".join(board.output)
    finally:
        board.kill()


def _process_group(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_board_on_every_address_without_a_password_is_a_one_line_error():
    require_tool("node", "the login is checked after node")
    result = subprocess.run([sys.executable, "-m", "tracker", "board", "--host", "0.0.0.0"], env=python_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        "error: --host 0.0.0.0 lets other machines reach the board, so it needs a login: set BOARD_PASSWORD (and "
        "BOARD_USER, default sacred) in .env or the environment, not on the command line\n")


@pytest.fixture
def project():
    """A project folder that every user may enter (pytest's own temporary folders are root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="tracker-project-"))
    folder.chmod(0o755)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)  # a project root (runstore.settings.project_root)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=True)


@pytest.fixture(scope="session")
def other_user():
    """The uid of a second local user, created when missing."""
    if os.geteuid() != 0:
        pytest.fail("creating another user with useradd needs root, as in CI")
    if subprocess.run(["id", "-u", OTHER_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
                       check=True)
    return int(subprocess.run(["id", "-u", OTHER_USER], capture_output=True, text=True, check=True).stdout)


def as_user(uid, code):
    """Run Python `code` (Debian's python3: the project's Python lives under /root) as `uid`; its stdout."""
    result = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/python3",
                             "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_another_user_can_neither_connect_to_tracker_db_nor_read_its_files(project, other_user):
    store = TrackerCommand("db", cwd=project)
    try:
        store.wait_for("only you can connect", 30)
        owner = load_settings(root=project)  # the default MONGO_URL of the project: its socket
        client = pymongo.MongoClient(owner.mongo_url, serverSelectionTimeoutMS=10_000)
        client[owner.db_name].runs.insert_one(RUN)
        client.close()
        store_dir = project / STORE_DIR
        seen = as_user(other_user, f"""
import os, socket
print(os.listdir({str(store_dir.parent)!r}))  # the way to the store is open to this user
for what, attempt in [
    ("connect", lambda: socket.socket(socket.AF_UNIX).connect({str(store_dir / STORE_SOCKET)!r})),
    ("read", lambda: open({str(store_dir / (owner.db_name + ".db"))!r}, "rb").read()),
]:
    try:
        attempt()
        print(what, "allowed")
    except OSError as error:
        print(what, type(error).__name__)
""")
        assert seen.splitlines() == ["['.gitignore', 'db']", "connect PermissionError", "read PermissionError"]
    finally:
        store.kill()


def test_the_owner_finds_tracker_db_without_any_setting(project):
    """No MONGO_URL anywhere: a run stored through the default settings, `tracker runs` and `tracker board` all
    reach the project's `tracker db` on its socket."""
    require_tool("node", "tracker board runs Omniboard with Node.js")
    store = TrackerCommand("db", cwd=project)
    board = None
    try:
        store.wait_for("only you can connect", 30)
        owner = load_settings(root=project)
        pymongo.MongoClient(owner.mongo_url, serverSelectionTimeoutMS=10_000)[owner.db_name].runs.insert_one(RUN)
        listed = subprocess.run([sys.executable, "-m", "tracker", "runs", "--format", "json"], cwd=project,
                                env=python_env(), capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert [run["id"] for run in json.loads(listed.stdout)] == [1]
        board = TrackerCommand("board", "--port", str(free_port()), cwd=project)
        url, token = board.wait_for(r"open (http://\S+)\?token=(\S+)", 300).groups()
        assert request(with_token(f"{url}/api/v1/Runs?select=_id", token))[:2] == (200, '[{"_id":1}]')
    finally:
        if board is not None:
            board.kill()
        store.kill()


@pytest.mark.parametrize("left_by", ["a killed server", "a live process that is no server"])
def test_tracker_db_replaces_a_stale_pid_file_in_one_line(tmp_path, left_by):
    data_dir = (tmp_path / "db").resolve()
    first = TrackerCommand("db", "--data-dir", str(data_dir))
    first.wait_for("only you can connect", 30)
    first.kill()  # kill -9: the pid file stays
    stale_pid = int((data_dir / PID_FILE).read_text())
    if left_by != "a killed server":  # after a reboot, the pid may belong to anything: here, this test
        stale_pid = os.getpid()
        (data_dir / PID_FILE).write_text(str(stale_pid))
    second = TrackerCommand("db", "--data-dir", str(data_dir))
    try:
        second.wait_for("only you can connect", 30)
        assert second.output[0] == (f"Removed the stale pid file {data_dir / PID_FILE}: process {stale_pid} is not "
                                    f"serving this store (it was stopped without cleaning up)\n")
        pymongo.MongoClient(store_url(data_dir), serverSelectionTimeoutMS=10_000).admin.command("ping")
        assert second.interrupt() == 0
    finally:
        second.kill()


def test_a_second_tracker_db_on_the_same_folder_names_the_first_and_how_to_stop_it(tmp_path):
    data_dir = (tmp_path / "db").resolve()
    first = TrackerCommand("db", "--data-dir", str(data_dir))
    try:
        first.wait_for("only you can connect", 30)
        for listen in ([], ["--port", str(free_port())]):  # one server per folder, whatever it listens on
            result = subprocess.run([sys.executable, "-m", "tracker", "db", "--data-dir", str(data_dir), *listen],
                                    env=python_env(), capture_output=True, text=True, timeout=60)
            pid = first.process.pid
            assert (result.returncode, result.stdout) == (1, "")
            assert result.stderr == (f"error: the run store in {data_dir}/ is already served by process {pid}; use "
                                     f"that one, or stop it (Ctrl-C in its terminal, or 'kill {pid}') and start "
                                     f"again\n")
        assert first.interrupt() == 0
    finally:
        first.kill()
