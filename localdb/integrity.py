"""Checks the run store's SQLite files before `tracker db` serves them, and salvages what a damaged one still holds.

A damaged file served anyway answers some requests and fails others with misleading errors ("database or disk is
full"), and every write risks more damage. So a file that fails SQLite's `PRAGMA quick_check` is never served: its
readable rows are copied into a new file beside it, which the user swaps in, and the damaged file is left untouched.
The sqlite3 shell's `.recover` would find more, but Debian's sqlite3 3.40 fails in it ("SQL logic error"), and Python
has no binding for it: the copy reads each table in order up to its first unreadable page.
"""
import sqlite3
from contextlib import closing

from runstore.errors import UserError
from runstore.shell import shell_command

RECOVERED_SUFFIX = ".recovered"  # the salvaged copy of sacred.db is sacred.db.recovered, which nx-27017 does not serve
COMPANIONS = ("-wal", "-shm")  # SQLite's files beside a database in WAL mode: a leftover WAL would be replayed


def check_store(data_dir):
    """UserError naming the first damaged database file in `data_dir`, where its readable rows were copied and how to
    use the copy; nothing when every file passes `PRAGMA quick_check`."""
    for path in sorted(data_dir.glob("*.db")):
        if not path.is_file():  # the server takes each NAME.db here for database NAME's file, and lists it as one
            raise UserError(f"the run store's {path} is not a database file but a folder or other entry, so nothing "
                            f"was served; move it out of {data_dir}, then run tracker db again")
        problem = damage(path)
        if problem is not None:
            copy = path.with_name(path.name + RECOVERED_SUFFIX)
            rows = salvage(path, copy)
            aside = data_dir / f"damaged-{path.name}"
            moved = [path] + [companion for companion in (path.with_name(path.name + end) for end in COMPANIONS)
                              if companion.exists()]
            swap = f"{shell_command('mkdir', aside)} && {shell_command('mv', *moved, aside)} && " \
                   f"{shell_command('mv', copy, path)}"
            raise UserError(f"the run store's file {path} is damaged ({problem}), so it was not served; the {rows} "
                            f"rows that could be read are in {copy}: use them with `{swap}`, then run tracker db again")


def damage(path):
    """What SQLite's quick_check finds wrong with the database file `path` (its first finding), or None."""
    try:
        with closing(_read_only(path)) as connection:
            finding = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as error:  # e.g. "file is not a database": the header itself is damaged
        return f"SQLite: {error}"
    return None if finding == "ok" else f"SQLite quick_check: {finding}"


def salvage(damaged, copy):
    """Copy each table of the database file `damaged` that can be read, with its rows up to the first unreadable one,
    into a new database file `copy` (replaced if there); returns how many rows were copied."""
    copy.unlink(missing_ok=True)
    copied = 0
    with closing(_read_only(damaged)) as source, closing(sqlite3.connect(copy)) as target:
        try:
            schema = source.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                                    "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index'").fetchall()
        except sqlite3.DatabaseError:  # the schema itself is unreadable: an empty copy
            schema = []
        for kind, name, sql in schema:
            target.execute(sql)
            if kind == "table":
                copied += _copy_rows(source, target, name)
        target.commit()
    return copied


def _copy_rows(source, target, table):
    quoted = '"' + table.replace('"', '""') + '"'
    copied = 0
    try:
        for row in source.execute(f"SELECT * FROM {quoted}"):
            target.execute(f"INSERT INTO {quoted} VALUES ({', '.join('?' * len(row))})", row)
            copied += 1
    except sqlite3.DatabaseError:  # the first unreadable page ends what this table gives
        pass
    return copied


def _read_only(path):
    """A connection that reads `path` (with its WAL) and never writes to it."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
