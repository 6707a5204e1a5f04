"""Imports point down only: experiments -> ingredients -> observers -> runstore, tracker -> all but experiments,
localdb -> runstore, and all of them -> compat (the patches of other packages, which imports none of them); the CLI
names no task."""
import ast
import re

import pytest
from conftest import REPO_ROOT

# What each package may import from this project (besides itself).
ALLOWED = {
    "compat": set(),
    "runstore": {"compat"},
    "observers": {"compat", "runstore"},
    "localdb": {"compat", "runstore", "observers"},
    "ingredients": {"compat", "observers", "runstore"},
    "tracker": {"compat", "observers", "ingredients", "runstore", "localdb"},
    "experiments": {"compat", "ingredients", "observers", "runstore"},
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


def test_tracker_imports_only_the_checkpoint_reader_pruning_link_and_thumbnails_from_ingredients():
    allowed = {"ingredients.checkpoint", "ingredients.pruning", "ingredients.examples"}
    for path in (REPO_ROOT / "tracker").rglob("*.py"):
        assert set(re.findall(r"from (ingredients[\w.]*) import", path.read_text())) <= allowed, path


def code_names(tree):
    """The names the code uses: identifiers, attributes, arguments, and strings used as keys or compared with
    (help texts and messages may show examples such as `with lr=0.01`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, (ast.arg, ast.keyword)) and node.arg:
            yield node.arg
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            yield str(node.slice.value)
        elif isinstance(node, ast.Compare):
            yield from (str(c.value) for c in [node.left, *node.comparators] if isinstance(c, ast.Constant))


def test_the_command_line_names_no_task():
    task_names = re.compile(r"cifar|^lr$|^(data|model)(\.|$)|^(arch|dataset)$", re.I)
    for path in (REPO_ROOT / "tracker").rglob("*.py"):
        named = {name for name in code_names(ast.parse(path.read_text())) if task_names.search(name)}
        assert not named, path


def module_name(path):
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path, modules):
    """The `modules` that the file `path` imports as it runs, inside functions too; not those imported only for type
    checking."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for branch in ast.walk(tree)
                   if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
                   for statement in branch.body for node in ast.walk(statement)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            yield from (name for name in names if name in modules)


def test_no_module_needs_itself_through_another():
    """An import cycle hidden by a function-local import still makes two modules one: each needs the other."""
    paths = {module_name(path): path for package in ALLOWED for path in (REPO_ROOT / package).rglob("*.py")}
    graph = {name: set(runtime_imports(path, paths)) - {name} for name, path in paths.items()}
    in_cycles = []
    for name, imported in graph.items():
        seen, todo = set(), list(imported)
        while todo and name not in seen:
            module = todo.pop()
            todo += [] if module in seen else graph[module]
            seen.add(module)
        in_cycles += [name] if name in seen else []
    assert not sorted(in_cycles)
