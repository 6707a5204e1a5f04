"""docker-compose.yml, checked with Debian's docker-compose (no docker engine needed) and the settings of
.env.example."""
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conftest import REPO_ROOT, python_env, require_tool
from runstore.settings import PLACEHOLDER_PASSWORD, load_settings
from tracker.board import OMNIBOARD_VERSION

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"


def compose_config(compose_file, env_file, *args):
    """`docker-compose config` of `compose_file` with the values of `env_file`, as a CompletedProcess."""
    require_tool("docker-compose", "apt install docker-compose")
    settings = ("MONGO_USER", "MONGO_PASSWORD", "SACRED_DB", "BOARD_USER", "BOARD_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in settings}
    return subprocess.run(
        ["docker-compose", "--project-directory", str(REPO_ROOT), "--file", str(compose_file),
         "--env-file", str(env_file), "config", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )


@pytest.fixture(scope="module")
def env_file(tmp_path_factory):
    """.env.example with a board password chosen, as the user is told to before the first `docker compose up`."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(ENV_EXAMPLE.read_text().replace("BOARD_PASSWORD=\n", f"BOARD_PASSWORD={uuid.uuid4().hex}\n"))
    return path


@pytest.fixture(scope="module")
def stack(env_file):
    result = compose_config(COMPOSE_FILE, env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid(env_file):
    result = compose_config(COMPOSE_FILE, env_file, "-q")
    assert result.returncode == 0, result.stderr


def test_a_typo_in_the_compose_file_fails_validation(tmp_path, env_file):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("healthcheck:", "healthchek:", 1))
    result = compose_config(broken, env_file, "-q")
    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_mongo_has_auth_a_named_volume_a_healthcheck_and_a_local_port(stack):
    mongo = stack["services"]["mongo"]
    assert mongo["image"] == "mongo:5.0"
    assert "--auth" in mongo["command"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_USERNAME"] and mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"]
    assert "mongo-data:/data/db:rw" in mongo["volumes"]
    assert "mongo-data" in stack["volumes"]
    assert "ping" in " ".join(mongo["healthcheck"]["test"])
    assert mongo["ports"] == ["127.0.0.1:27017:27017/tcp"]


def test_omniboard_is_built_from_the_npm_package_that_tracker_board_installs(stack):
    omniboard = stack["services"]["omniboard"]
    assert omniboard["build"]["args"]["OMNIBOARD_VERSION"] == OMNIBOARD_VERSION
    dockerfile = (Path(omniboard["build"]["context"]) / omniboard["build"]["dockerfile"]).read_text()
    assert f"ARG OMNIBOARD_VERSION={OMNIBOARD_VERSION}" in dockerfile
    assert '"omniboard@${OMNIBOARD_VERSION}"' in dockerfile
    assert omniboard["image"].endswith(f":{OMNIBOARD_VERSION}")
    assert omniboard["ports"] == ["127.0.0.1:9000:9000/tcp"]
    assert omniboard["depends_on"] == {"mongo": {"condition": "service_healthy"}}


def test_omniboard_and_the_experiments_use_the_credentials_from_env(stack, monkeypatch):
    monkeypatch.delenv("MONGO_URL", raising=False)
    monkeypatch.delenv("SACRED_DB", raising=False)
    example_settings = load_settings(str(ENV_EXAMPLE))  # what `cp .env.example .env` gives the experiments
    mongo_env = stack["services"]["mongo"]["environment"]
    omniboard = stack["services"]["omniboard"]
    assert "command" not in omniboard  # a password on the command line shows in `ps` and `docker inspect`
    omniboard_url = urlsplit(omniboard["environment"]["MONGO_URI"])
    assert (omniboard_url.username, omniboard_url.password) == (
        mongo_env["MONGO_INITDB_ROOT_USERNAME"], mongo_env["MONGO_INITDB_ROOT_PASSWORD"])
    assert (omniboard_url.hostname, omniboard_url.path) == ("mongo", f"/{example_settings.db_name}")
    assert parse_qs(omniboard_url.query)["authSource"] == ["admin"]

    experiment_url = urlsplit(example_settings.mongo_url)
    assert (experiment_url.username, experiment_url.password) == (omniboard_url.username, omniboard_url.password)
    assert f"127.0.0.1:{experiment_url.port}:27017/tcp" in stack["services"]["mongo"]["ports"]
    assert experiment_url.hostname == "localhost"
    assert parse_qs(experiment_url.query)["authSource"] == ["admin"]


def test_the_compose_file_holds_no_credentials():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())  # before .env is substituted in
    assert raw["services"]["mongo"]["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_PASSWORD:?")
    assert ":${MONGO_PASSWORD:?" in raw["services"]["omniboard"]["environment"]["MONGO_URI"]
    assert raw["services"]["omniboard"]["environment"]["BOARD_PASSWORD"].startswith("${BOARD_PASSWORD:?")


def test_compose_without_a_password_stops_with_a_message(tmp_path):
    no_password = tmp_path / ".env"
    no_password.write_text("MONGO_USER=sacred\n")
    result = compose_config(COMPOSE_FILE, no_password, "-q")
    assert result.returncode != 0
    assert "set MONGO_PASSWORD in .env" in result.stderr


def test_compose_without_a_board_password_stops_with_a_message():
    """`cp .env.example .env` without choosing the board's password: nothing starts."""
    result = compose_config(COMPOSE_FILE, ENV_EXAMPLE, "-q")
    assert result.returncode != 0
    assert "set BOARD_PASSWORD in .env (the login of the board)" in result.stderr


def test_the_board_of_the_stack_asks_everyone_for_the_login_from_env(stack, env_file):
    omniboard = stack["services"]["omniboard"]
    dockerfile = (Path(omniboard["build"]["context"]) / omniboard["build"]["dockerfile"]).read_text()
    assert "COPY tracker/omniboard.js /opt/tracker/omniboard.js" in dockerfile
    assert 'ENTRYPOINT ["node", "/opt/tracker/omniboard.js", ' in dockerfile
    # The build sees only the safeguard script, not the runs and data of the project root.
    assert (REPO_ROOT / ".dockerignore").read_text().splitlines()[-2:] == ["*", "!tracker/omniboard.js"]
    chosen = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line.startswith("BOARD_"))
    assert omniboard["environment"]["BOARD_USER"] == chosen["BOARD_USER"] == "sacred"
    assert omniboard["environment"]["BOARD_PASSWORD"] == chosen["BOARD_PASSWORD"]
    assert omniboard["environment"]["BOARD_HOST"] == "0.0.0.0"  # inside the container; published on 127.0.0.1


def test_tracker_refuses_the_placeholder_password_of_env_example(tmp_path):
    assert f"MONGO_PASSWORD={PLACEHOLDER_PASSWORD}\n" in ENV_EXAMPLE.read_text()
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    (tmp_path / ".env").chmod(0o600)  # as the README creates it: no warning about others reading it
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "gc"], cwd=tmp_path, env=python_env(), capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: MONGO_URL 'mongodb://sacred:***@localhost:27017/?authSource=admin' uses "
                                    "the placeholder password of .env.example; choose your own MONGO_PASSWORD")
    assert result.stderr.count("\n") == 1
