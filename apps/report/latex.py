"""Running LaTeX: ``latexmk -pdf`` with a fixed date, so that the same sources give the same PDF."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from apps.report.sources import BuildError

__all__ = ["SOURCE_DATE_EPOCH", "latexmk"]

SOURCE_DATE_EPOCH = "1735689600"
"""The date written into every PDF (2025-01-01 00:00 UTC): no build time in the output."""


def latexmk(directory: Path, main: str) -> int:
    """``latexmk -pdf main`` in ``directory`` (build files in ``directory/build/``); copies the PDF
    next to the source and returns its page count (read from the log, -1 if not found)."""
    if shutil.which("latexmk") is None:
        raise BuildError("latexmk is not installed; use --no-pdf to write only generated/")
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH, FORCE_SOURCE_DATE="1")
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-outdir=build", main]
    proc = subprocess.run(cmd, cwd=directory, env=env, capture_output=True, text=True, check=False)
    stem = Path(main).stem
    log = directory / "build" / f"{stem}.log"
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else proc.stdout[-3000:]
        raise BuildError(f"latexmk failed on {directory / main}:\n{tail}")
    shutil.copyfile(directory / "build" / f"{stem}.pdf", directory / f"{stem}.pdf")
    m = re.search(r"Output written on .*?\((\d+) pages?", log.read_text(errors="replace"))
    return int(m.group(1)) if m else -1
