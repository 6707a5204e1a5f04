"""runstore/shell.py: commands in messages work when pasted into a shell."""
import subprocess

from runstore.shell import shell_command

WORDS = ["tracker", "rerun", "runs/3", "--with", "lr=0.1", "data.root=/tmp/my data", "name='it''s'", 'say "hi"',
         "$HOME", "`id`", "a;b", "", "*", "~", "new\nline", "ünï"]


def test_plain_words_are_left_unquoted():
    assert shell_command("tracker", "resume", 3, "--with", "trainer.steps=200") == \
        "tracker resume 3 --with trainer.steps=200"


def test_a_path_with_a_space_is_quoted():
    assert shell_command("tracker", "sync", "/tmp/my runs/4") == "tracker sync '/tmp/my runs/4'"


def test_bash_receives_each_word_as_it_was():
    pasted = shell_command("printf", "%s\\0", *WORDS)
    printed = subprocess.run(["bash", "-c", pasted], capture_output=True, check=True, timeout=10).stdout
    assert printed.decode().split("\0") == [*WORDS, ""]
