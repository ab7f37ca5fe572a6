"""The ``--parts`` option that the benchmark scripts with several parts share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["parse_parts"]


def parse_parts(parser: argparse.ArgumentParser, text: str, parts: Sequence[str]) -> list[str]:
    """The part names of ``text`` (``--parts``: comma-separated, blanks ignored), in its order;
    a name that is not among ``parts`` is a usage error (``parser.error``) naming it and the
    allowed ones."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        parser.error(f"--parts: unknown part {unknown[0]!r}; parts: {','.join(parts)}")
    return chosen
