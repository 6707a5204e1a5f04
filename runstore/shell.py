"""Commands that messages suggest, written so that they work when pasted into a shell."""
import shlex


def shell_command(*words):
    """`words` as one shell command line, each quoted where needed (a path with a space, a quote or a `$`)."""
    return " ".join(shlex.quote(str(word)) for word in words)
