"""The error type for mistakes a user can fix: Sacred prints it as one line, without a traceback."""
from sacred.utils import SacredError


class UserError(SacredError):
    """A problem the user caused and can fix; the message names both."""

    def __init__(self, message):
        super().__init__(message, print_traceback=False)


# Sacred prints `module.Class: message`; keep the line short and readable.
UserError.__module__ = "builtins"
