"""The configured MongoDB database: a client for it, or one line naming what is wrong with MONGO_URL or the login.

Kept apart from observers.choose, which imports Sacred: the tracker CLI connects without loading Sacred (~0.4 s).
"""
from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any

import pymongo
from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError

from runstore.errors import UserError

if TYPE_CHECKING:
    from pymongo.database import Database

    from runstore.settings import Settings

URL_SCHEMES = ("mongodb://", "mongodb+srv://")
# Sacred waits 30 s for an unreachable server and then fails the run; we decide within this.
CONNECT_TIMEOUT_S = 3.0


def connect(settings: Settings, timeout_s: float = CONNECT_TIMEOUT_S) -> pymongo.MongoClient[Any] | None:
    """A client for the configured database, or None when no server answers within `timeout_s`.

    Raises UserError for a malformed URL, the placeholder password of .env.example or rejected credentials: those need
    fixing, not a fallback.
    """
    if settings.has_placeholder_password:
        raise UserError(
            f"MONGO_URL {settings.safe_url!r} uses the placeholder password of .env.example; choose your own "
            f"MONGO_PASSWORD (letters and digits) in .env (with the docker stack: before its first start, or "
            f"'docker compose down -v' to start over)"
        )
    timeout_ms = int(timeout_s * 1000)
    fix = "set it to mongodb://[user:password@]host[:port] in the environment or .env"
    if not settings.mongo_url.startswith(URL_SCHEMES):  # pymongo would take a bare word for a host name
        raise UserError(f"MONGO_URL {settings.safe_url!r} is not a valid MongoDB URL (it must start with "
                        f"mongodb:// or mongodb+srv://); {fix}")
    try:
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(
            settings.mongo_url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
        )
    except (InvalidURI, ConfigurationError, ValueError, TypeError) as error:
        raise UserError(
            f"MONGO_URL {settings.safe_url!r} is not a valid MongoDB URL ({error}); {fix}"
        ) from None
    if _refused_here(settings.mongo_url, timeout_s):
        client.close()
        return None
    try:
        client[settings.db_name].list_collection_names()  # needs read access, so it also checks credentials
    except OperationFailure as error:
        client.close()
        raise UserError(
            f"MongoDB at {settings.safe_url} refused access to database {settings.db_name!r} "
            f"({error.details.get('errmsg', error) if error.details else error}); "
            f"check the user and password in MONGO_URL (.env) and add ?authSource=admin for the compose stack"
        ) from None
    except KeyError:  # pymongo's login exchange got no answer: the server has no authentication (nx-27017)
        client.close()
        raise UserError(
            f"MongoDB at {settings.safe_url} does not support logging in (is it 'tracker db'?); "
            f"remove user:password from MONGO_URL (.env), or remove MONGO_URL to use the project's 'tracker db'"
        ) from None
    except PyMongoError:
        client.close()
        return None
    return client


def _refused_here(url: str, timeout_s: float) -> bool:
    """Whether every host of `url` is on this machine (a loopback address, or a socket file: the project's `tracker
    db`) and nothing listens there, which pymongo's server selection would only conclude after `timeout_s`."""
    if not url.startswith("mongodb://"):  # mongodb+srv names its hosts in DNS
        return False
    for host, port in pymongo.uri_parser.parse_uri(url)["nodelist"]:
        try:
            if host.endswith(".sock"):  # as pymongo tells a socket file from a host name
                with socket.socket(socket.AF_UNIX) as unix_socket:
                    unix_socket.settimeout(timeout_s)
                    unix_socket.connect(host)
            elif _is_loopback(host):
                socket.create_connection((host, port), timeout=timeout_s).close()
            else:
                return False
            return False  # a server listens
        except (ConnectionRefusedError, FileNotFoundError):
            continue
        except OSError:  # a timeout or another failure: pymongo decides
            return False
    return True


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def require_database(settings: Settings, fix: str) -> Database[Any]:
    """The configured database, or UserError naming the unreachable server and `fix` (what the user can do)."""
    client = connect(settings)
    if client is None:
        raise UserError(f"MongoDB at {settings.safe_url} is unreachable; {fix}")
    return client[settings.db_name]
