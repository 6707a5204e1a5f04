"""runstore/shell.py: commands in messages work when pasted into a shell; stored text reaches a terminal escaped."""
import io
import subprocess

from runstore.shell import PrintableStream, printable, shell_command

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


def test_control_characters_are_escaped_and_lines_tabs_and_text_kept():
    assert printable("run\x1b]0;TITLE\x07\x1b[2J\x9b1m\x7f\u202eA\r") == \
        r"run\x1b]0;TITLE\x07\x1b[2J\x9b1m\x7f\u202eA\r"
    assert printable("a\tb\nc,d\r\nünï ✓") == "a\tb\nc,d\r\nünï ✓"  # CSV's line ends stay


def test_a_printable_stream_escapes_what_is_written_and_passes_the_rest_on():
    out = io.StringIO()
    stream = PrintableStream(out)
    print("name\x1b[2J", file=stream, flush=True)
    assert out.getvalue() == "name\\x1b[2J\n" and stream.getvalue() == out.getvalue()
