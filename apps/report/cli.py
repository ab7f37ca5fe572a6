"""Build the batchenv report and slides from the project's committed results files.

    python docs/report/build.py               # numbers, tables, figures, report.pdf and slides.pdf
    python docs/report/build.py --no-pdf      # only docs/report/generated/ (no LaTeX needed)
    python docs/report/build.py --check       # exit 1 if generated/ or the PDFs are stale

Nothing here runs an evaluation: every number is read from a JSON results file that one of the
repo's commands writes (the command is named next to each source in apps/report/sources.py), and
every number quoted in report.tex or slides.tex is a macro of generated/numbers.tex whose comment
names the file and the key it was read from. Figures and PDFs are rebuilt only when their inputs
changed (generated/hashes.json records what each was built from; --force rebuilds them all).

Optional sources (apps/report/sources.py: OPTIONAL): when one of them (learning.json,
verification.json, sim_to_real.json, trace_results.json, frontiers.json, sensitivity.json) is
missing or not yet committed, the macros that would come from it are a visible "[pending]", its
\\ifhave... switch is false, and the text says so. --include-untracked previews a results file
that is not committed yet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from apps.report.build import Build, compute, stale_generated, write_generated
from apps.report.figures import draw, inputs_hash
from apps.report.latex import latexmk
from apps.report.macros import used_macros
from apps.report.manifest import DOCUMENTS, Manifest, inputs_sha256
from apps.report.sources import BUILD_COMMAND, GENERATED, OPTIONAL, REPO, BuildError

__all__ = ["main", "stale_binaries"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-pdf", action="store_true", help="write generated/ only; do not run LaTeX")
    parser.add_argument("--no-figures", action="store_true", help="do not redraw the figures")
    parser.add_argument("--no-slides", action="store_true", help="build the report only")
    parser.add_argument("--force", action="store_true", help="redraw every figure and recompile every PDF")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if generated/ or the PDFs are stale; write nothing"
    )
    parser.add_argument(
        "--include-untracked",
        action="store_true",
        help="also read optional results files that git does not track yet (a preview; the test "
        "compares the generated files with the committed results only)",
    )
    return parser


def stale_binaries(build: Build, manifest: Manifest) -> list[str]:
    """Figures and PDFs whose recorded inputs differ from the current ones (or that changed)."""
    stale = [
        name
        for name, data in build.figures.items()
        if not manifest.is_current("figures", name, inputs_hash(name, data), GENERATED / name)
    ]
    for rel, doc in DOCUMENTS.items():
        if not manifest.is_current("documents", rel, inputs_sha256(doc.inputs()), doc.pdf):
            stale.append(rel)
    return stale


def _figures(build: Build, manifest: Manifest, force: bool) -> int:
    """Draw the figures whose inputs changed; returns how many were drawn."""
    drawn = 0
    for name, data in build.figures.items():
        path, digest = GENERATED / name, inputs_hash(name, data)
        if force or not manifest.is_current("figures", name, digest, path):
            draw(name, data, path)
            manifest.record("figures", name, digest, path)
            drawn += 1
    for path in GENERATED.glob("fig_*.pdf"):  # a figure whose source is gone (learning.json)
        if path.name not in build.figures:
            path.unlink()
            manifest.figures.pop(path.name, None)
    return drawn


def _documents(manifest: Manifest, slides: bool, force: bool) -> None:
    for rel, doc in DOCUMENTS.items():
        if doc.main == "slides.tex" and not slides:
            continue
        digest = inputs_sha256(doc.inputs())
        if not force and manifest.is_current("documents", rel, digest, doc.pdf):
            print(f"{rel} is up to date (its inputs have not changed)")
            continue
        pages = latexmk(doc.directory, doc.main)
        if doc.max_pages is not None and pages > doc.max_pages:
            raise BuildError(
                f"{rel} has {pages} pages, more than its limit of {doc.max_pages}: shorten "
                f"{doc.main} (the PDF is written but not recorded as up to date)"
            )
        manifest.record("documents", rel, digest, doc.pdf)
        print(f"wrote {rel} ({pages} pages)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        build = compute(only_committed=not args.include_untracked)
        manifest = Manifest.load()
        if args.check:
            stale = [f"docs/report/generated/{n}" for n in stale_generated(build)] + stale_binaries(
                build, manifest
            )
            for path in stale:
                print(f"stale: {path}")
            print("generated files and PDFs are up to date" if not stale else f"run: {BUILD_COMMAND}")
            return 1 if stale else 0
        for rel, flag in OPTIONAL.items():
            if not build.present.get(rel):
                why = "not committed (--include-untracked to preview)" if (REPO / rel).is_file() else "absent"
                print(f"note: {rel} is {why}; its numbers are marked [pending] (\\ifhave{flag} is false)")
        written = write_generated(build)
        drawn = 0 if args.no_figures else _figures(build, manifest, args.force)
        sources = len({r.source for r in build.macros.results.values()})
        print(
            f"wrote {len(written)} files to {GENERATED.relative_to(REPO)}/ and redrew {drawn} figures "
            f"({len(used_macros())} numbers from {sources} files)"
        )
        if not args.no_pdf:
            _documents(manifest, not args.no_slides, args.force)
        manifest.save()
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 2
    return 0
