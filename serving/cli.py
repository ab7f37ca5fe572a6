"""What the command lines of :mod:`serving` share: a bad flag is one line naming it and exit
code 2, never a traceback."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["UsageError", "check_range", "check_writable", "run_cli"]


class UsageError(ValueError):
    """A bad command line; the message starts with the flag."""


def check_range(flag: str, value: float, low: float, high: float, unit: str = "") -> None:
    """UsageError unless ``low <= value <= high`` (a finite number)."""
    if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
        raise UsageError(f"{flag} must be in [{low:g}, {high:g}]{' ' + unit if unit else ''}, got {value!r}")


def run_cli(
    parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: Sequence[str] | None
) -> int:
    """Parse ``argv`` and run ``body``; a :class:`UsageError` prints the usage and one error line
    and returns 2."""
    args = parser.parse_args(argv)
    try:
        return body(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


def check_writable(flag: str, path: Path) -> None:
    """UsageError unless a file can be written at ``path`` (not a folder, below a folder that
    exists and is writable or can be created) - checked before any long work."""
    if path.is_dir():
        raise UsageError(f"{flag} must be a file path, got the folder {str(path)!r}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag}: {str(parent)!r} is not a folder, so {str(path)!r} cannot be written")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: the folder {str(parent)!r} is not writable")
