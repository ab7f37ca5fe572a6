"""``generated/hashes.json``: what each figure and each PDF was built from.

For every figure, the SHA-256 of its inputs (data, drawing code, matplotlib's version) and of the
file drawn; for ``report.pdf`` and ``slides.pdf``, the SHA-256 over their input files (the .tex
sources, the bibliography, every generated table, macro file and figure) and of the PDF. The
builder redraws or recompiles only what changed, so binaries are rewritten only when their inputs
change; ``tests/test_report.py`` recomputes the input hashes and checks that the committed PDFs
are the ones recorded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from apps.report.sources import GENERATED, REPO, REPORT_DIR, SLIDES_DIR, BuildError
from batchenv.fileio import write_atomic

__all__ = ["DOCUMENTS", "MANIFEST", "Document", "Manifest", "file_sha256", "inputs_sha256"]

MANIFEST = GENERATED / "hashes.json"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Document:
    """A LaTeX document: its folder, main file, the inputs besides the generated files, and the
    most pages it may have (None: no limit)."""

    directory: Path
    main: str
    own_inputs: tuple[str, ...]
    max_pages: int | None = None

    @property
    def pdf(self) -> Path:
        return self.directory / f"{Path(self.main).stem}.pdf"

    def inputs(self, generated: Path = GENERATED) -> list[Path]:
        """Every file the PDF is built from: its own inputs, then generated/*.tex and *.pdf."""
        own = [self.directory / rel for rel in self.own_inputs]
        made = sorted([*generated.glob("*.tex"), *generated.glob("*.pdf")])
        return [*own, *made]


DOCUMENTS = {
    "docs/report/report.pdf": Document(
        REPORT_DIR, "report.tex", ("report.tex", "system_diagram.tex", "references.bib"), max_pages=8
    ),  # an IEEE conference paper: 4-8 pages, references included
    "docs/slides/slides.pdf": Document(
        SLIDES_DIR, "slides.tex", ("slides.tex", "../report/system_diagram.tex")
    ),
}


def inputs_sha256(paths: list[Path], root: Path = REPO) -> str:
    """One SHA-256 over the files' repo-relative names and contents."""
    digest = hashlib.sha256()
    for path in paths:
        if not path.is_file():
            raise BuildError(f"{path} is missing")
        rel = path.resolve().relative_to(root.resolve()).as_posix()
        digest.update(f"{rel}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


@dataclass
class Manifest:
    """Recorded hashes: name -> {"inputs": sha, "output": sha} for figures and documents."""

    figures: dict[str, dict[str, str]] = field(default_factory=dict)
    documents: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = MANIFEST) -> Manifest:
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(dict(data["figures"]), dict(data["documents"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise BuildError(f"{path}: not a hashes file; delete it and rebuild") from None

    def text(self) -> str:
        data = {
            "about": "Written by python docs/report/build.py: SHA-256 of what each figure and PDF was "
            "built from ('inputs') and of the file built ('output'). Do not edit.",
            "figures": dict(sorted(self.figures.items())),
            "documents": dict(sorted(self.documents.items())),
        }
        return json.dumps(data, indent=1) + "\n"

    def save(self, path: Path = MANIFEST) -> None:
        """Write the file if its text changed."""
        text = self.text()
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)

    def is_current(self, kind: str, name: str, inputs: str, output: Path) -> bool:
        """``output`` exists, was built from ``inputs`` and has not changed since."""
        record = getattr(self, kind).get(name)
        return (
            record is not None
            and record.get("inputs") == inputs
            and output.is_file()
            and record.get("output") == file_sha256(output)
        )

    def record(self, kind: str, name: str, inputs: str, output: Path) -> None:
        getattr(self, kind)[name] = {"inputs": inputs, "output": file_sha256(output)}
