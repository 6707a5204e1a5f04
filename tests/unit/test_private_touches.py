"""Every touch of another package's private parts is in compat/, so that an upgrade of a package is a review of one
compat module: outside compat/, no project file reads, calls or replaces an underscore name (`x._name` or
`getattr(x, "_name")`, not `__dunder__`) of another package, nor imports another package's non-public module or
name (`from torch._dynamo import ...`, `from sacred.utils import _helper`).

An underscore attribute is another package's when the object comes from an import of another package (a module,
`torch._foreach_add_`, or anything imported from one), or when the project defines that name nowhere itself (as a
function, class, class attribute or assigned attribute). A class that derives from another package's class (or
from a class of compat/) must not define one of that class's underscore names anew (its instances' attributes set in
its __init__ are beyond what this test sees). There is no allow-list: move a touch this test names into the compat
module of its package (docs/layout.md)."""
import ast
import functools
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The project's source: each top-level folder with Python files, except the patches themselves and the tests.
FOLDERS = sorted({path.parent for path in ROOT.glob("*/*.py") if not path.parent.name.startswith(".")})
OWN_MODULES = {folder.name for folder in FOLDERS}
CHECKED = [path for folder in FOLDERS if folder.name not in {"compat", "tests"}
           for path in sorted(folder.rglob("*.py"))]


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_foreign(module, path):
    """Whether `module` (an absolute import's name) is another package's, seen from `path`: the project's packages,
    and a script's siblings in its folder, are its own."""
    top = module.split(".")[0]
    return top not in OWN_MODULES and not (path.parent / f"{top}.py").exists() and not (path.parent / top).is_dir()


def root_name(node):
    """The name an attribute chain such as `torch.optim._functional` starts from ("torch"), or None."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def defined_names(tree):
    """The names that a module defines: functions, classes, and assigned names and attributes."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Store):
            yield node.id if isinstance(node, ast.Name) else node.attr


def touches(path, own_names):
    """(line, what) of each private touch of another package in the file at `path`."""
    tree = ast.parse(path.read_text(), str(path))
    foreign = set()  # the names this file binds to another package's module or object
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_foreign(alias.name, path):
                    foreign.add(alias.asname or alias.name.split(".")[0])
                    if any(map(is_private, alias.name.split("."))):
                        yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and is_foreign(node.module, path):
            for alias in node.names:
                foreign.add(alias.asname or alias.name)
                if any(map(is_private, [*node.module.split("."), alias.name])):
                    yield node.lineno, f"from {node.module} import {alias.name}"
    for node in ast.walk(tree):
        owner, name = accessed(node)
        if name is None or not is_private(name):
            continue
        if root_name(owner) in foreign:
            yield node.lineno, f"{ast.unparse(node)} (of another package)"
        elif name not in own_names:
            yield node.lineno, f"{ast.unparse(node)} ({name} is defined by no project file)"


def accessed(node):
    """(object, attribute name) that `node` reads or writes: `x._name`, or getattr(x, "_name") and its kin; (None,
    None) for any other node."""
    if isinstance(node, ast.Attribute):
        return node.value, node.attr
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) >= 2
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        return node.args[0], node.args[1].value
    return None, None


def imported_objects(tree):
    """name -> how to get the object that an import of the module `tree` binds it to (a function of no argument)."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = functools.partial(
                    imported_module, alias.name, alias.name if alias.asname else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                bound[alias.asname or alias.name] = functools.partial(imported_name, node.module, alias.name)
    return bound


def imported_module(name, bound):
    importlib.import_module(name)
    return importlib.import_module(bound)


def imported_name(module, name):
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError:
        return importlib.import_module(f"{module}.{name}")


def base_classes(node, classes, imported):
    """The classes that the class `node` derives from, through the classes of its own file (`classes`: name ->
    class node) to the first one imported (`imported`: imported_objects)."""
    for base in node.bases:
        root = root_name(base)
        if isinstance(base, ast.Name) and base.id in classes:
            yield from base_classes(classes[base.id], classes, imported)
        elif root in imported:
            value = imported[root]()
            for attribute in ast.unparse(base).split(".")[1:]:
                value = getattr(value, attribute)
            yield value
        # else a builtin class, or one of the module itself that is not named directly


def is_anothers(klass):
    """Whether the class `klass` is another package's, or compat's (which names another package's privates)."""
    return klass.__module__.split(".")[0] not in OWN_MODULES - {"compat"}


def class_attributes(node):
    """The names that the class `node` sets on itself or its instances: its methods, class attributes and nested
    classes, and `self.name = ...` in its methods."""
    for statement in node.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield statement.name
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            yield from (target.id for target in targets if isinstance(target, ast.Name))
    for inner in ast.walk(node):
        if (isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store) and isinstance(inner.value, ast.Name)
                and inner.value.id == "self"):
            yield inner.attr


def overrides(path):
    """(line, what) of each private method or attribute of another package's class that a class in the file at
    `path` defines anew."""
    tree = ast.parse(path.read_text(), str(path))
    classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    imported = imported_objects(tree)
    for node in classes.values():
        defined = [name for name in class_attributes(node) if is_private(name)]
        if not defined:
            continue
        # A base that is no class (typing.TypedDict is a function) has no methods to override.
        theirs = {name for base in base_classes(node, classes, imported) if isinstance(base, type)
                  for klass in base.__mro__ if is_anothers(klass) for name in vars(klass)}
        yield from ((node.lineno, f"{node.name}.{name} (overrides another package's)") for name in defined
                    if name in theirs)


def project_touches():
    trees = {path: ast.parse(path.read_text(), str(path)) for path in CHECKED}
    own_names = {name for tree in trees.values() for name in defined_names(tree) if is_private(name)}
    return [f"{path.relative_to(ROOT)}:{line}: {what}" for path in CHECKED
            for line, what in sorted([*touches(path, own_names), *overrides(path)])]


SAMPLE = """
import torch
import torch._dynamo
from sacred.utils import _convert_value
from optuna import trial as optuna_trial
from runstore import query


class Own:
    _cache = None

    def _own(self):
        self._seen = self._cache


torch._foreach_add_([], [])
optuna_trial._private.x
query._own()
unknown()._internal
Own()._own()
Own()._seen
torch.__version__
getattr(unknown(), "_internal", None)
setattr(torch, "_foreach_add", None)
getattr(Own(), "_seen")
"""


def test_every_kind_of_touch_is_found(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text(SAMPLE)
    tree = ast.parse(SAMPLE)
    own_names = {name for name in defined_names(tree) if is_private(name)}
    assert own_names == {"_cache", "_own", "_seen"}
    assert sorted(line for line, _ in touches(path, own_names)) == [3, 4, 16, 17, 19, 23, 24]


OVERRIDES = """
import threading
from threading import Thread as Base


class Stopper(threading.Thread):
    def _stop(self):
        self._mine = 1


class Helper(Base):
    def _mine(self):
        self._initialized = None


class Again(Helper):
    _bootstrap = None
"""


def test_every_override_of_another_packages_private_part_is_found(tmp_path):
    path = tmp_path / "overrides.py"
    path.write_text(OVERRIDES)
    assert list(overrides(path)) == [(6, "Stopper._stop (overrides another package's)"),
                                     (11, "Helper._initialized (overrides another package's)"),
                                     (16, "Again._bootstrap (overrides another package's)")]


def test_the_checked_files_are_the_projects_source():
    checked = {path.relative_to(ROOT).parts[0] for path in CHECKED}
    assert {"runstore", "observers", "ingredients", "tracker", "localdb", "experiments", "benchmarks"} <= checked
    assert not checked & {"compat", "tests"}


def test_no_private_touch_of_another_package_outside_compat():
    found = project_touches()
    assert not found, "move these into compat/ (one module per package):\n" + "\n".join(found)
