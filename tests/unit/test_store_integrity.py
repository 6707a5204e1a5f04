"""`tracker db` checks its store folder before serving it (localdb.integrity)."""
import re
import sqlite3
from contextlib import closing

import pytest

from localdb.integrity import check_store
from runstore.errors import UserError


def test_a_folder_named_like_a_database_file_is_named_in_one_line(tmp_path):
    with closing(sqlite3.connect(tmp_path / "sacred.db")) as connection:
        connection.execute("CREATE TABLE runs (id INTEGER)")
    (tmp_path / "old.db").mkdir()
    with pytest.raises(UserError, match=rf"^the run store's {re.escape(str(tmp_path / 'old.db'))} is not a database "
                                        rf"file but a folder or other entry, so nothing was served; move it out of "
                                        rf"{re.escape(str(tmp_path))}, then run tracker db again$"):
        check_store(tmp_path)


def test_a_store_of_sound_database_files_passes(tmp_path):
    with closing(sqlite3.connect(tmp_path / "sacred.db")) as connection:
        connection.execute("CREATE TABLE runs (id INTEGER)")
    check_store(tmp_path)
