"""Where the run store is: MONGO_URL and SACRED_DB from the environment, else from ./.env, else defaults."""
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from observers.errors import UserError

DEFAULT_MONGO_URL = "mongodb://localhost:27017"
DEFAULT_DB = "sacred"
DEFAULT_RUNS_DIR = "runs"
DEFAULT_SYSTEM_METRICS_S = 10.0


@dataclass(frozen=True)
class Settings:
    mongo_url: str
    db_name: str
    runs_dir: Path  # the file store used when MongoDB is unreachable
    system_metrics_s: float = DEFAULT_SYSTEM_METRICS_S  # seconds between sys.* samples of a run; 0 disables them

    @property
    def safe_url(self):
        """The URL with any password masked, for messages and logs."""
        return redact(self.mongo_url)


def load_settings(env_file=".env"):
    """Settings from the environment, falling back to `env_file` (secrets stay out of code and configs)."""
    file_values = dotenv_values(env_file) if Path(env_file).is_file() else {}

    def get(name, default):
        return os.environ.get(name) or file_values.get(name) or default

    return Settings(
        mongo_url=get("MONGO_URL", DEFAULT_MONGO_URL),
        db_name=get("SACRED_DB", DEFAULT_DB),
        runs_dir=Path(get("RUNS_DIR", DEFAULT_RUNS_DIR)),
        system_metrics_s=_seconds("SYSTEM_METRICS_S", get("SYSTEM_METRICS_S", DEFAULT_SYSTEM_METRICS_S)),
    )


def _seconds(name, value):
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise UserError(f"{name}={value!r} must be a number of seconds, e.g. {name}=10 (0 disables)")
    return seconds


def redact(url):
    """`url` with the password replaced by ***, even when the rest of the URL is malformed."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
