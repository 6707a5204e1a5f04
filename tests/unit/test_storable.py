"""A config or info that MongoDB cannot store is named in one line before anything is stored."""
import pytest

from runstore.errors import UserError
from runstore.storable import MAX_NESTING, VALUE_LIMIT_BYTES, check_storable


def nested(levels):
    """A value of `levels` nested dicts."""
    value = 1
    for _ in range(levels):
        value = {"x": value}
    return value


def test_plain_configs_pass():
    check_storable({"lr": 0.1, "trainer": {"steps": 3, "milestones": [1, 2]}, "name": "a.b$"}, "config")
    check_storable({"environment": {"packages": {"backports.tarfile": "1.2"}}}, "info")  # MongoDB 5 stores dots
    check_storable(nested(MAX_NESTING), "config")


@pytest.mark.parametrize("value, line", [
    ({"extra": {"a\0b": 1}}, r"key 'a\\x00b' in config.extra holds a NUL character, which MongoDB does not allow in "
                             r"keys; rename it, e.g. to 'ab'"),
    ({"extra": [{"$set": 1}]}, r"key '\$set' in config.extra\[0\] starts with '\$', .* e.g. to 'set'"),
    (nested(MAX_NESTING + 1), rf"config is nested more than {MAX_NESTING} levels deep \(at config.x.x"),
    (nested(300), rf"config is nested more than {MAX_NESTING} levels deep"),
    ({"extra": "x" * (VALUE_LIMIT_BYTES + 1)},
     r"config is 8.0 MB, over the 8 MB a run's config may take of MongoDB's 16 MB document; keep large data in a file "
     r"added with _run.add_artifact"),
])
def test_what_mongodb_refuses_is_named_in_one_line(value, line):
    with pytest.raises(UserError, match=f"^{line}") as raised:
        check_storable(value, "config")
    assert "\n" not in str(raised.value)
