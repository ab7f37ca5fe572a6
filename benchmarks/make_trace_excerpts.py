"""Regenerate the trace excerpts that batchenv ships in ``batchenv/data/`` from their public sources.

Sources (fetch them yourself; this script never downloads anything):

- ``mooncake_conv.csv``: the Mooncake conversation trace of the FAST'25 release,
  https://github.com/kvcache-ai/Mooncake, file ``FAST25-release/traces/conversation_trace.jsonl``
  (added in commit 3cca71daccf2a7afb8fe3f0295358f70e3a69fdb, 2025-02-21; 3,029,533 bytes,
  sha256 below). Apache License 2.0. All 12,031 requests (59 minutes) are kept; the excerpt
  keeps their recorded times (a 3 s grid), an arrival time spread within each request's
  recording interval (:func:`batchenv.trace_prep.spread_ties_uniformly` with seed
  ``SPREAD_SEED``, so the file is the same at every run) and the token counts, and drops the
  prefix hashes.

``azure_conv_excerpt.csv`` (the first 3,001 requests of the Azure LLM inference trace 2023,
conversation service, unchanged) predates this script and is described in
``batchenv/data/ATTRIBUTION.md``.

Usage::

    python benchmarks/make_trace_excerpts.py --mooncake-conversation path/to/conversation_trace.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.config import ConfigError  # noqa: E402
from batchenv.fileio import write_atomic  # noqa: E402
from batchenv.trace_prep import (  # noqa: E402
    excerpt_csv,
    read_mooncake_jsonl,
    recording_granularity_s,
    spread_ties_uniformly,
)

DATA_DIR = REPO / "batchenv" / "data"
MOONCAKE_CONVERSATION_SHA256 = "b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df"
SPREAD_SEED = 0
"""Seed of the spread of the tied timestamps within their recording intervals."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mooncake_conversation(source: Path, out_dir: Path, check_digest: bool = True) -> Path:
    """Write ``mooncake_conv.csv`` from the FAST'25 conversation trace; returns its path."""
    if not source.is_file():
        raise ConfigError("--mooncake-conversation", f"file not found: {source}")
    if check_digest and _sha256(source) != MOONCAKE_CONVERSATION_SHA256:
        raise ConfigError(
            "--mooncake-conversation",
            f"{source} is not the FAST'25 release file (sha256 differs from {MOONCAKE_CONVERSATION_SHA256}); "
            "pass --any-version to cut it anyway",
        )
    records = read_mooncake_jsonl(source)
    granularity_s = recording_granularity_s(records.times_s)
    arrival_s = spread_ties_uniformly(records.times_s, granularity_s, np.random.default_rng(SPREAD_SEED))
    path = write_atomic(out_dir / "mooncake_conv.csv", excerpt_csv(records, arrival_s))
    print(
        f"wrote {path} ({len(records.times_s)} requests, {records.times_s[-1] - records.times_s[0]:.0f} s, "
        f"recording grid {granularity_s:.3f} s, {path.stat().st_size} bytes)"
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate the trace excerpts shipped in batchenv/data/ from their public sources "
        "(see this file's docstring for where to get them)."
    )
    parser.add_argument(
        "--mooncake-conversation",
        type=Path,
        required=True,
        help="FAST25-release/traces/conversation_trace.jsonl of github.com/kvcache-ai/Mooncake",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=DATA_DIR, help=f"where to write the excerpts (default: {DATA_DIR})"
    )
    parser.add_argument(
        "--any-version", action="store_true", help="do not check the source file's sha256 against the release"
    )
    args = parser.parse_args(argv)
    try:
        mooncake_conversation(args.mooncake_conversation, args.out_dir, check_digest=not args.any_version)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
