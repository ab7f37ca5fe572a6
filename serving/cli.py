"""What the command lines of :mod:`serving` share: a bad flag is one line naming it and exit
code 2, never a traceback."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

__all__ = ["UsageError", "check_range", "run_cli"]


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
