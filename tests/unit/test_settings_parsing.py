"""runstore/settings.py: where the settings come from (environment, .env, defaults), and passwords kept out of sight."""
import uuid
from pathlib import Path

import pytest

from runstore.errors import UserError
from runstore.settings import (Settings, create_tracker_folder, load_settings, project_root, redact, shown_url,
                               store_url, tracker_folders)

NAMES = ("MONGO_URL", "SACRED_DB", "RUNS_DIR", "SYSTEM_METRICS_S", "BOARD_USER", "BOARD_PASSWORD")
# Generated, so that no password is written in tracked files.
PASSWORD = uuid.uuid4().hex


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder (with .git) and an environment without any of the settings."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".git").mkdir()
    return tmp_path


def test_defaults_are_the_projects_own_store_and_runs_folder(project):
    settings = load_settings(root=project / "experiments" / "sub")
    assert settings.mongo_url == store_url(project / ".tracker" / "db")
    assert ((settings.db_name, settings.runs_dir, settings.sweeps_dir)
            == ("sacred", project / "runs", project / "sweeps"))
    assert (settings.system_metrics_s, settings.board_user, settings.board_password) == (10.0, "sacred", "")


def test_the_env_file_is_read_as_dotenv_writes_it(project):
    (project / ".env").write_text(
        "# the compose stack's database\n"
        f"MONGO_URL='mongodb://alice:{PASSWORD}@db.example:27017/?authSource=admin'\n"
        'SACRED_DB="experiments" # a comment after the value\n'
        "export RUNS_DIR=store/runs\n"
        "SYSTEM_METRICS_S=2.5\n"
        "BOARD_PASSWORD=\n")
    settings = load_settings(root=project)
    assert settings.mongo_url == f"mongodb://alice:{PASSWORD}@db.example:27017/?authSource=admin"
    assert (settings.db_name, settings.runs_dir) == ("experiments", project / "store" / "runs")
    assert (settings.system_metrics_s, settings.board_password) == (2.5, "")
    assert settings.sweeps_dir == project / "store" / "sweeps"


def test_an_empty_environment_variable_falls_back_to_the_env_file(project, monkeypatch):
    (project / ".env").write_text("SACRED_DB=from_file\n")
    monkeypatch.setenv("SACRED_DB", "")
    assert load_settings(root=project).db_name == "from_file"


def test_a_given_env_file_replaces_the_projects(project, tmp_path_factory):
    (project / ".env").write_text("SACRED_DB=project\n")
    other = tmp_path_factory.mktemp("elsewhere") / "other.env"
    other.write_text("SACRED_DB=other\n")
    assert load_settings(env_file=other, root=project).db_name == "other"


def test_runs_dir_absolute_or_under_home(project, monkeypatch, tmp_path_factory):
    absolute = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("RUNS_DIR", str(absolute))
    assert load_settings(root=project).runs_dir == absolute
    monkeypatch.setenv("RUNS_DIR", "~/tracker-runs")
    assert load_settings(root=project).runs_dir == Path.home() / "tracker-runs"


@pytest.mark.parametrize("value", ["0", "0.5", "30"])
def test_system_metrics_interval_in_seconds(project, monkeypatch, value):
    monkeypatch.setenv("SYSTEM_METRICS_S", value)
    assert load_settings(root=project).system_metrics_s == float(value)


@pytest.mark.parametrize("value", ["ten", "-1", "nan", "1,5"])
def test_a_bad_system_metrics_interval_is_a_one_line_error(project, monkeypatch, value):
    monkeypatch.setenv("SYSTEM_METRICS_S", value)
    with pytest.raises(UserError, match=rf"^SYSTEM_METRICS_S='{value}' must be a number of seconds, "
                                        r"e.g. SYSTEM_METRICS_S=10 \(0 disables\)$"):
        load_settings(root=project)


def test_the_project_root_is_the_nearest_folder_with_git_or_env(tmp_path, monkeypatch):
    nested, working = tmp_path / "a" / "b" / "c", tmp_path / "working"
    nested.mkdir(parents=True)
    working.mkdir()
    monkeypatch.chdir(working)
    # Neither anywhere above (tmp_path is outside any repository), as for an installed package: the working folder,
    # never the package's own folder in site-packages.
    assert project_root(nested) == working
    (tmp_path / "a" / ".env").write_text("")
    assert project_root(nested) == tmp_path / "a"
    (tmp_path / "a" / "b" / ".git").write_text("gitdir: elsewhere\n")  # a worktree's .git is a file
    assert project_root(nested) == tmp_path / "a" / "b"
    (nested / ".env").mkdir()  # a folder named .env is no settings file
    assert project_root(nested) == tmp_path / "a" / "b"


# Named by what is shown: the password changes from run to run, and test ids must not (pytest-xdist compares them).
@pytest.mark.parametrize("url, shown", [pytest.param(url, shown, id=shown) for url, shown in [
    (f"mongodb://alice:{PASSWORD}@db:27017/sacred", "mongodb://alice:***@db:27017/sacred"),
    (f"mongodb://alice:{PASSWORD}@x@db:27017", "mongodb://alice:***@db:27017"),  # an unescaped @ in the password
    (f"mongodb+srv://:{PASSWORD}@cluster.example/", "mongodb+srv://:***@cluster.example/"),
    (f"mongodb://alice:{PASSWORD}@[bad", "mongodb://alice:***@[bad"),
    ("mongodb://alice@db:27017", "mongodb://alice@db:27017"),
    ("mongodb://db:27017,db2:27018/?replicaSet=rs", "mongodb://db:27017,db2:27018/?replicaSet=rs"),
]])
def test_redact_hides_the_password_of_any_url(url, shown):
    assert redact(url) == shown


def test_settings_show_passwords_only_where_asked(tmp_path):
    settings = Settings(f"mongodb://alice:{PASSWORD}@db:27017", "sacred", tmp_path, board_password=PASSWORD)
    assert "board_password" not in repr(settings) and PASSWORD not in settings.safe_url
    assert not settings.has_placeholder_password
    assert Settings("mongodb://alice:changeme@db:27017", "sacred", tmp_path).has_placeholder_password
    assert not Settings("mongodb://alice:changemeplease@db:27017", "sacred", tmp_path).has_placeholder_password


def test_messages_show_a_socket_by_its_short_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shown_url(store_url(tmp_path / "my project" / ".tracker" / "db")) == "my project/.tracker/db/mongodb.sock"
    assert shown_url(store_url("/srv/db")) == "/srv/db/mongodb.sock"
    assert shown_url(f"mongodb://alice:{PASSWORD}@db:27017/") == "mongodb://alice:***@db:27017/"


def test_the_store_url_is_its_socket_path_escaped(tmp_path):
    url = store_url(tmp_path / "my db")
    assert url == "mongodb://" + str(tmp_path / "my db" / "mongodb.sock").replace("/", "%2F").replace(" ", "%20")


def test_tracker_folders_hide_themselves_from_git(project):
    runs, sweeps, own = tracker_folders(project)
    assert (runs, sweeps, own) == (project / "runs", project / "sweeps", project / ".tracker")
    create_tracker_folder(own / "db" / "data")
    assert (own / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not (own / "db" / ".gitignore").exists()  # only the highest folder created needs one
    (own / ".gitignore").write_text("# the user's own\n")
    create_tracker_folder(own / "db")  # nothing created: nothing written
    assert (own / ".gitignore").read_text() == "# the user's own\n"


def test_settings_repr_shows_no_password():
    settings = Settings("mongodb://alice:s3cret@db:27017/?authSource=admin", "runs", Path("/r"), board_password="b0ard")
    assert "s3cret" not in repr(settings) and "b0ard" not in repr(settings)
    assert "mongodb://alice:***@db:27017" in repr(settings)


@pytest.mark.parametrize("text, warned", [
    ("MONGO_PASSWORD=secret\n", True), ("BOARD_PASSWORD=secret\n", True),
    ("MONGO_URL=mongodb://user:secret@db:27017\n", True), ("MONGO_URL=mongodb://db:27017\nSACRED_DB=x\n", False),
    ("BOARD_PASSWORD=\n", False),
])
def test_only_an_env_file_holding_a_password_is_warned_about(tmp_path, capsys, text, warned):
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    env_file.chmod(0o640)
    load_settings(root=tmp_path)
    assert ("chmod 600" in capsys.readouterr().err) == warned
