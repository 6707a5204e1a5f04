"""The error type for mistakes a user can fix: commands and tracked runs print it as one line, without a traceback."""


class UserError(Exception):
    """A problem the user caused and can fix; the message names both."""
