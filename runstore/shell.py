"""Commands in messages: those they suggest, written so that they work when pasted into a shell, and what a failed
one said."""
import shlex


def shell_command(*words):
    """`words` as one shell command line, each quoted where needed (a path with a space, a quote or a `$`)."""
    return " ".join(shlex.quote(str(word)) for word in words)


def last_line(output, empty="no output"):
    """The last line a failed command wrote (its error, as a rule), for a one-line message; `empty` when there is
    none."""
    return (output.strip().splitlines() or [empty])[-1]
