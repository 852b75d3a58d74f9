"""The harness's pure pieces, on the host (the file also runs inside the image)."""

from pathlib import Path

import pytest

from sandbox.harness import normalize_output, outputs_match


@pytest.mark.parametrize(
    "actual, expected, same",
    [
        ("3\n", "3", True),  # trailing newline
        ("1  2 \n3\n\n\n", "1 2\n3", True),  # runs of blanks, trailing blank lines
        ("1\t2\r\n", "1 2\n", True),  # tabs, CRLF
        ("  x", "x", True),  # leading blanks of a line
        ("12", "1 2", False),  # blanks inside a token matter
        ("1\n2", "1 2", False),  # line breaks matter
        ("\n1", "1", False),  # a leading blank line is output
        ("", "", True),
        ("", "0", False),
        ("ABC", "abc", False),  # case matters
    ],
)
def test_outputs_match(actual, expected, same):
    assert outputs_match(actual, expected) is same


def test_normalize_output_lines():
    assert normalize_output("a  b\n\n c \n\n") == ["a b", "", "c"]


def test_boot_starts_an_entry_with_the_modules_it_needs(tmp_path):
    """boot.py as the image runs it: `python -c <boot> ENTRY ARGS -- NAME=SOURCE...`, in order."""
    import subprocess
    import sys

    from sandbox import boot

    sources = {
        "boot": (Path(boot.__file__)).read_text(),
        "first": "VALUE = 20\n",
        "second": "from sandbox import first\ndef main(args, sources):\n    print(first.VALUE + int(args[0]), sorted(sources))\n",
    }
    argv = boot.command(sys.executable, sources, "second", ["1"], ["first", "second"])
    assert argv[argv.index("--") - 2 :] == ["second", "1", "--", *argv[argv.index("--") + 1 :]]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "21 ['first', 'second']"
