"""Imports point down only: experiments -> ingredients -> observers, tracker -> observers; the CLI names no task."""
import ast
import re

import pytest
from conftest import REPO_ROOT

# What each package may import from this project (besides itself).
ALLOWED = {
    "observers": set(),
    "ingredients": {"observers"},
    "tracker": {"observers", "ingredients"},
    "experiments": {"ingredients", "observers"},
}


def project_imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        yield from (name.split(".")[0] for name in names if name.split(".")[0] in ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package):
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert files
    wrong = {f"{path.relative_to(REPO_ROOT)} imports {imported}" for path in files
             for imported in project_imports(path) if imported != package and imported not in ALLOWED[package]}
    assert not wrong


def test_tracker_imports_only_the_checkpoint_reader_from_ingredients():
    for path in (REPO_ROOT / "tracker").rglob("*.py"):
        text = path.read_text()
        assert set(re.findall(r"from (ingredients[\w.]*) import", text)) <= {"ingredients.checkpoint"}, path


def test_the_command_line_names_no_task():
    for path in (REPO_ROOT / "tracker").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"cifar|\blr\b|\bdata\.|\bmodel\.", text, re.I), path
