"""Every use of another package's private parts, one module per package (sacred, pymongo, argparse, nx27017,
neosqlite, optuna, submitit, torch), so that an upgrade of a package is a review of one file: outside compat/, no
file touches an underscore name or a non-public module of another package (tests/unit/test_private_touches.py).

Each module names the version it was written for and says in one line per patch why it is needed; a test named after
each patch (tests/test_compat.py) checks what the patch gives. Importing a module patches nothing: the entry points
(observers.track, tracker.cli, localdb.server) call the patches. A patch whose target is missing is refused in one
line naming the package and both versions: an optional patch (a speed-up, a convenience) is then skipped with a
warning, a fix stops the program.
"""
import importlib.metadata
import platform
import sys


class CompatError(RuntimeError):
    """An installed package lacks what a patch of this project was written for."""


class Package:
    """The installed `name` (a distribution, or "python" for the standard library) that a compat module was written
    for at version `written_for` (a release, or the start of one: "4" is any 4.x)."""

    def __init__(self, name, written_for, module):
        self.name, self.written_for, self.module = name, written_for, module
        self.version = platform.python_version() if name == "python" else importlib.metadata.version(name)
        self._warned = False

    def is_written_for(self):
        return any(self.version == prefix or self.version.startswith(prefix + ".") for prefix in self.written_for)

    def target(self, owner, attribute, optional=False):
        """`owner`'s `attribute` that a patch uses or replaces. When it is missing: None for an `optional` patch (one
        warning), else CompatError."""
        if not self.is_written_for() and not self._warned:
            self._warned = True
            print(f"warning: {self.module} was written for {self.name} {' or '.join(self.written_for)}, not the "
                  f"installed {self.version}; tests/test_compat.py checks its patches", file=sys.stderr)
        if hasattr(owner, attribute):
            return getattr(owner, attribute)
        problem = (f"{self.name} {self.version} has no {getattr(owner, '__name__', owner)}.{attribute}, which "
                   f"{self.module} was written for ({self.name} {' or '.join(self.written_for)})")
        if optional:
            print(f"warning: {problem}; running without that patch", file=sys.stderr)
            return None
        raise CompatError(f"{problem}; install {self.name} {' or '.join(self.written_for)}")
