"""Where the run store is: MONGO_URL, SACRED_DB and RUNS_DIR from the environment, else from the project's .env,
else defaults.

The project root is the nearest folder, at or above the starting folder, that holds `.git` or `.env`; when there is
none (an installed package), the one around the current directory, else the current directory itself. Experiments
start from their base_dir (observers.track), the `tracker` command from
the current directory. A relative RUNS_DIR, the .env file and `.tracker/` are found there, so that running from
another folder neither scatters runs nor misses the settings.
"""
from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote

from dotenv import dotenv_values

from runstore.errors import UserError
from runstore.shell import shell_command

DEFAULT_DB = "sacred"
DEFAULT_RUNS_DIR = "runs"
TRACKER_DIR = ".tracker"  # in the project root: the embedded store's data, the browser tests' screenshots
SWEEPS_DIR = "sweeps"  # beside RUNS_DIR: `tracker sweep`'s records, job logs and Optuna journals
STORE_DIR = Path(TRACKER_DIR) / "db"  # in the project root: the data of `tracker db`, the embedded run store
# In the store's data folder: `tracker db` listens on this Unix socket, which only its user may open.
STORE_SOCKET = "mongodb.sock"
DEFAULT_BOARD_USER = "sacred"
PLACEHOLDER_PASSWORD = "changeme"  # MONGO_PASSWORD in .env.example, to be replaced before first use
DEFAULT_SYSTEM_METRICS_S = 10.0
PASSWORD_NAMES = ("MONGO_PASSWORD", "BOARD_PASSWORD")


@dataclass(frozen=True)
class Settings:
    mongo_url: str
    db_name: str
    runs_dir: Path  # the local file store every run is written to first (absolute)
    system_metrics_s: float = DEFAULT_SYSTEM_METRICS_S  # seconds between sys.* samples of a run; 0 disables them
    board_user: str = DEFAULT_BOARD_USER  # the login of `tracker board` and the compose stack's Omniboard
    board_password: str = ""  # no login unless set; `tracker board --host` needs one

    def __repr__(self) -> str:  # without the passwords of MONGO_URL and BOARD_PASSWORD
        return (f"Settings(mongo_url={self.safe_url!r}, db_name={self.db_name!r}, runs_dir={self.runs_dir!r}, "
                f"system_metrics_s={self.system_metrics_s!r}, board_user={self.board_user!r})")

    @property
    def sweeps_dir(self) -> Path:
        """sweeps/ beside RUNS_DIR (on SLURM, on a filesystem the nodes share, as RUNS_DIR is)."""
        return self.runs_dir.parent / SWEEPS_DIR

    @property
    def has_placeholder_password(self) -> bool:
        return re.search(rf"://[^:/@]*:{PLACEHOLDER_PASSWORD}@", self.mongo_url) is not None

    @property
    def safe_url(self) -> str:
        """The URL as messages and logs show it (shown_url): short, with any password masked."""
        return shown_url(self.mongo_url)


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above `start` (default: the current directory) holding .git or .env; when there is
    none (an installed package, a loose script), the same from the current directory, else the current directory:
    records and data never go into site-packages."""
    here = Path.cwd().resolve()
    for origin in (Path(start or here).resolve(), here):
        for folder in (origin, *origin.parents):
            if (folder / ".git").exists() or (folder / ".env").is_file():
                return folder
    return here


def store_url(data_dir: str | os.PathLike[str]) -> str:
    """The MongoDB URL of the Unix socket on which `tracker db` serves the store in `data_dir`."""
    return "mongodb://" + quote(str(Path(data_dir).resolve() / STORE_SOCKET), safe="")


def tracker_folders(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The tracker's own folders in the project around `root`: RUNS_DIR, sweeps/ and .tracker/ hold records, not
    code, so they are no uncommitted change of a run."""
    settings = load_settings(root=root)
    return [settings.runs_dir, settings.sweeps_dir, project_root(root) / TRACKER_DIR]


def create_tracker_folder(folder: str | os.PathLike[str]) -> Path:
    """Create `folder` (and missing parents) for the tracker's records, ignored by git from the start.

    The highest folder created gets a `.gitignore` holding `*`, as pytest does for its cache: the folder then hides
    itself from `git status` in any repository, the user's own too, without an entry in the repository's .gitignore.
    """
    folder = Path(folder)
    highest_missing = next((f for f in reversed((folder, *folder.parents)) if not f.exists()), None)
    folder.mkdir(parents=True, exist_ok=True)
    if highest_missing is not None:
        try:
            (highest_missing / ".gitignore").write_text("# written by sacred-tracker: its records are not code\n*\n")
        except OSError:  # e.g. a full disk: the folder still works, and its first write reports the problem
            pass
    return folder


def load_settings(env_file: str | os.PathLike[str] | None = None,
                  root: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from the environment, falling back to `env_file` (default: .env in the project root around `root`).

    Secrets stay out of code and configs. A relative RUNS_DIR is taken relative to the project root. The default
    MONGO_URL is the project's own `tracker db` (its socket in .tracker/db/).
    """
    root = project_root(root)
    env_path = Path(env_file) if env_file else root / ".env"
    file_values = dotenv_values(env_path) if env_path.is_file() else {}
    if file_values:
        warn_if_others_can_read(env_path, file_values)

    def get(name: str, default: str) -> str:
        return os.environ.get(name) or file_values.get(name) or default

    return Settings(
        mongo_url=get("MONGO_URL", store_url(root / STORE_DIR)),
        db_name=get("SACRED_DB", DEFAULT_DB),
        runs_dir=root / Path(get("RUNS_DIR", DEFAULT_RUNS_DIR)).expanduser(),
        system_metrics_s=_seconds("SYSTEM_METRICS_S", get("SYSTEM_METRICS_S", str(DEFAULT_SYSTEM_METRICS_S))),
        board_user=get("BOARD_USER", DEFAULT_BOARD_USER),
        board_password=get("BOARD_PASSWORD", ""),
    )


def warn_if_others_can_read(env_file: Path, values: Mapping[str, str | None]) -> None:
    """One warning line (once per process) when `env_file`, whose settings are `values`, holds a password that users
    other than its owner may read: `cp` gives a new file mode 644."""
    url = values.get("MONGO_URL") or ""
    holds_password = any(values.get(name) for name in PASSWORD_NAMES) or redact(url) != url
    mode = env_file.stat().st_mode & 0o777
    if holds_password and mode & 0o044:
        _warn_once(f"WARNING: {env_file} holds a password that other users can read (mode {mode:o}); make it yours "
                   f"alone with `{shell_command('chmod', '600', str(env_file))}`")


@functools.cache
def _warn_once(line: str) -> None:
    print(line, file=sys.stderr)


def _seconds(name: str, value: str | float) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise UserError(f"{name}={value!r} must be a number of seconds, e.g. {name}=10 (0 disables)")
    return seconds


def shown_url(url: str) -> str:
    """`url` for messages: a Unix socket's URL as its path (relative to the current folder when inside it), which
    the URL's escaping makes long and hard to read; any other URL with its password masked (redact)."""
    socket = re.fullmatch(r"mongodb://(%2F[^/?@]*)/?", url)
    if socket is None:
        return redact(url)
    return shown_path(unquote(socket.group(1)))


def shown_path(path: str | os.PathLike[str]) -> str:
    """`path` as messages and tables show it: relative to the current folder when inside it, else as it is."""
    path = Path(path)
    return str(path.relative_to(Path.cwd())) if path.is_absolute() and path.is_relative_to(Path.cwd()) else str(path)


def redact(url: str) -> str:
    """`url` with the password replaced by ***, even when the rest of the URL is malformed.

    The password runs to the last '@': an unescaped '@' in it must not leave its end visible.
    """
    return re.sub(r"(://[^:/@]*):.*@", r"\1:***@", url)
