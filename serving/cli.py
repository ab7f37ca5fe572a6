"""What the command lines of :mod:`serving` share: a bad flag is one line naming it and exit
code 2, never a traceback."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["UsageError", "check_range", "check_writable", "comment_block", "run_cli", "write_files_atomic"]


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


def comment_block(lines: Sequence[str]) -> str:
    """``lines`` as YAML comment lines, each ending in a newline (``# `` is put before a line that
    does not start with ``#``). Characters that are not printable (a newline or a control character
    inside a command's argument, say) are written as escapes, so each given line stays one comment
    line and nothing in it is read as YAML."""
    printable = (_printable(line) for line in lines)
    return "".join(f"{line if line.startswith('#') else '# ' + line}\n" for line in printable)


def _printable(text: str) -> str:
    """``text`` with every non-printable character but the tab written as its Python escape."""
    return "".join(
        c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode("ascii") for c in text
    )


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


def write_files_atomic(texts: dict[Path, str]) -> None:
    """Write every ``path: text`` so that a failure leaves none of them half-written: all go to
    temporary files first (a failure removes them), then each is renamed into place."""
    temporary = {path: path.with_name(f".{path.name}.{os.getpid()}.tmp") for path in texts}
    try:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary[path].write_text(text)
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
