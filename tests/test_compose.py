"""docker-compose.yml, checked with Debian's docker-compose (no docker engine needed) and the settings of .env.example."""
import os
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conftest import REPO_ROOT, require_tool
from observers.settings import load_settings

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"


def compose_config(compose_file=COMPOSE_FILE, *args):
    """`docker-compose config` of `compose_file` with the values of .env.example, as a CompletedProcess."""
    require_tool("docker-compose", "apt install docker-compose")
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_USER", "MONGO_PASSWORD", "SACRED_DB")}
    return subprocess.run(
        ["docker-compose", "--project-directory", str(REPO_ROOT), "--file", str(compose_file),
         "--env-file", str(ENV_EXAMPLE), "config", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )


@pytest.fixture(scope="module")
def stack():
    result = compose_config()
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid():
    result = compose_config(COMPOSE_FILE, "-q")
    assert result.returncode == 0, result.stderr


def test_a_typo_in_the_compose_file_fails_validation(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("healthcheck:", "healthchek:", 1))
    result = compose_config(broken, "-q")
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


def test_omniboard_is_pinned_local_and_waits_for_a_healthy_mongo(stack):
    omniboard = stack["services"]["omniboard"]
    image, _, tag = omniboard["image"].partition(":")
    assert image == "vivekratnavel/omniboard" and tag and tag != "latest"
    assert omniboard["ports"] == ["127.0.0.1:9000:9000/tcp"]
    assert omniboard["depends_on"] == {"mongo": {"condition": "service_healthy"}}


def test_omniboard_and_the_experiments_use_the_credentials_from_env(stack, monkeypatch):
    monkeypatch.delenv("MONGO_URL", raising=False)
    monkeypatch.delenv("SACRED_DB", raising=False)
    example_settings = load_settings(str(ENV_EXAMPLE))  # what `cp .env.example .env` gives the experiments
    mongo_env = stack["services"]["mongo"]["environment"]
    command = stack["services"]["omniboard"]["command"]
    omniboard_url = urlsplit(command[command.index("--mu") + 1])
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
    assert raw["services"]["mongo"]["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == "${MONGO_PASSWORD}"
    assert "${MONGO_PASSWORD}@" in raw["services"]["omniboard"]["command"][1]
