"""argparse's private parts that this project uses, written for Python 3.10 to 3.13. Why each is needed:

- values_may_start_with_dash: argparse takes a value such as `-result` for an unknown option and refuses
  `--sort -result` ('expected one argument'), unless the value looks like a negative number; its matcher for those
  is private.
- SubParsers: the type of ArgumentParser.add_subparsers()'s result, which each command's add_parser takes; argparse
  names it only privately.
"""
import argparse
import re

from compat import Package

PYTHON = Package("python", ("3.10", "3.11", "3.12", "3.13"), "compat/argparse.py")
SubParsers = argparse._SubParsersAction


def values_may_start_with_dash(parser):
    """Make `parser` read an argument starting with '-' that is none of its options as a value; its options are
    still matched first."""
    if PYTHON.target(parser, "_negative_number_matcher", optional=True) is not None:
        parser._negative_number_matcher = re.compile("^-")
