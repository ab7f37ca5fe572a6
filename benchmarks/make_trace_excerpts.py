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

- ``servegen_m_large.csv``: arrivals generated from ServeGen's production statistics of the
  language model "m-large" (Alibaba Cloud Model Studio), https://github.com/alibaba/ServeGen,
  folder ``data/language/m-large`` (the 162 files ``chunk-<id>-trace.csv`` at commit
  f891d1189eb32b3868dfc443800c4150548c282a, 2025-06-09; their digest, ``SERVEGEN_M_LARGE_SHA256``,
  is the sha256 of the files' names and bytes in the order of their ids). Apache License 2.0.
  ServeGen publishes per-client rates and fitted gap distributions per 10-minute window, not
  timestamps: :func:`batchenv.servegen.servegen_arrivals` draws arrivals from them by ServeGen's
  method, for the busiest hour of the first day (six windows), the aggregate rate scaled to a
  mean of ``SERVEGEN_MEAN_RATE_PER_S`` (seed ``SERVEGEN_SEED``, so the file is the same at every
  run).

- ``fineserve_dense.csv`` (**not shipped**, written to ``external/``, which git ignores):
  FineServe's replay trace of its dense 30-100B models (a commercial model marketplace),
  https://github.com/hihiztc1/FineServe, file ``datasets/replay/Dense_30to100B.csv`` at commit
  f2ff77d64d6f643bc7f771fed3dbc1118f5e80d3 (2026-03-19; 1,048,873 bytes, sha256 below). The
  repository has no licence and releases the data "solely for research purposes", so batchenv
  neither ships nor commits it: you fetch the file, this script prepares it, and the scenarios
  of ``benchmarks/configs/external/`` replay it. All 21,116 requests that have a timestamp (the
  first 8.0 hours; the 6,350 rows after them have none) are kept. The timestamps are written in
  microseconds but bunch within 0.3 s of whole seconds: they are snapped to the second
  (:func:`batchenv.trace_prep.snap_to_grid`) and spread uniformly within it, as the Mooncake
  ticks are (seed ``SPREAD_SEED``).

``azure_lmm_excerpt.csv``: the first ``AZURE_LMM_EXCERPT_REQUESTS`` requests (46 minutes, from
2024-10-15 12:00:00.269 UTC) of the Azure LMM inference trace 2025, the requests of a multimodal
model's inference cluster (``data/AzureLMMInferenceTrace_multimodal.csv.gz`` of
github.com/Azure/AzurePublicDataset, gunzipped; CC-BY 4.0). The times are recorded to the
millisecond and kept so, relative to the first request
(:func:`batchenv.trace_prep.read_azure_multimodal_csv`).
The shipped excerpt was made from a copy of the release's first 5,000 rows with times in seconds
from the first request (``data/azure_trace_sample.csv`` of github.com/nebula893/vlm-scheduler at
commit 90a7a85138b76320f3ef26dae114093ab80508c2), which the script reads as well; its first
five rows are those the release's own notebook prints. The digest checked is the excerpt's
(``AZURE_LMM_EXCERPT_SHA256``): either source must give the shipped file byte for byte.

``azure_conv_hour.csv``, the Azure LLM inference trace 2023 of the conversation service
(``data/AzureLLMInferenceTrace_conv.csv`` of github.com/Azure/AzurePublicDataset, CC-BY 4.0;
19,366 requests in 58 minutes), is shipped unchanged, and ``azure_conv_excerpt.csv`` is its
first 3,001 requests, unchanged (the source's header and first 3,001 rows). The digest checked
is that of the copy this project was given (``AZURE_CONVERSATION_SHA256``); see
``batchenv/data/ATTRIBUTION.md``.

Usage::

    python benchmarks/make_trace_excerpts.py --azure-conversation path/to/AzureLLMInferenceTrace_conv.csv
    python benchmarks/make_trace_excerpts.py --azure-multimodal path/to/AzureLMMInferenceTrace_multimodal.csv
    python benchmarks/make_trace_excerpts.py --mooncake-conversation path/to/conversation_trace.jsonl
    python benchmarks/make_trace_excerpts.py --servegen-m-large path/to/ServeGen/data/language/m-large
    python benchmarks/make_trace_excerpts.py --fineserve-dense path/to/Dense_30to100B.csv
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.config import ConfigError  # noqa: E402
from batchenv.fileio import write_atomic  # noqa: E402
from batchenv.servegen import WINDOW_S, client_files, read_servegen_clients, servegen_arrivals  # noqa: E402
from batchenv.trace_prep import (  # noqa: E402
    TraceRecords,
    excerpt_csv,
    read_azure_multimodal_csv,
    read_fineserve_csv,
    read_mooncake_jsonl,
    recording_granularity_s,
    snap_to_grid,
    spread_ties_uniformly,
)
from benchmarks.proposed.common import display_path  # noqa: E402

DATA_DIR = REPO / "batchenv" / "data"
EXTERNAL_DIR = REPO / "external"
"""Where traces that batchenv may not redistribute are prepared (ignored by git)."""
AZURE_CONVERSATION_SHA256 = "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8"
AZURE_EXCERPT_REQUESTS = 3001
"""Requests in ``azure_conv_excerpt.csv``: the first 10.5 minutes of the hour."""
AZURE_LMM_EXCERPT_REQUESTS = 5000
"""Requests in ``azure_lmm_excerpt.csv``: the first 46 minutes of the week."""
AZURE_LMM_EXCERPT_SHA256 = "caf07a30151f43dc938a1672a5273e3d74ce7b74780f27c680616d380987cb01"
MOONCAKE_CONVERSATION_SHA256 = "b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df"
SPREAD_SEED = 0
"""Seed of the spread of the tied timestamps within their recording intervals."""
SERVEGEN_M_LARGE_SHA256 = "638a546a4dbf5ea1aaef876f751e0364e2dbb17338c46ed8c6f0f9d42ac30f3e"
SERVEGEN_MEAN_RATE_PER_S = 5.0
"""Mean rate of the generated hour (requests/s): about 18,000 requests, a file of the size of the
others (the scenarios rescale its time axis; at the data's own rates the hour holds 1.3 million)."""
SERVEGEN_SEED = 0
"""Seed of the draws of the gaps."""
WINDOWS_PER_HOUR = 6
FINESERVE_DENSE_SHA256 = "b6fe2bbfc4d91906859d20b211ff205fd79ff8d82f466aa42875e76384f3d61f"
FINESERVE_GRID_S = 1.0
"""FineServe's recording grid (s): its timestamps lie within 0.3 s of whole seconds."""


def _feed(digest: Any, path: Path) -> None:
    """Feed a file's bytes to a hashlib digest, 1 MiB at a time."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    _feed(digest, path)
    return digest.hexdigest()


def _check_source(
    flag: str, source: Path, exists: bool, digest: Callable[[], str] | None, expected: str, what: str
) -> None:
    """Refuse a missing source, or one whose digest (when ``digest`` is given) is not ``expected``."""
    if not exists:
        raise ConfigError(flag, f"not found: {source}")
    if digest is not None and digest() != expected:
        raise ConfigError(
            flag,
            f"{source} is not {what} (digest differs from {expected}); pass --any-version to use it anyway",
        )


def _check_file(flag: str, source: Path, check_digest: bool, expected: str, what: str) -> None:
    """:func:`_check_source` for a source that is one file, its digest the file's sha256."""
    _check_source(
        flag, source, source.is_file(), (lambda: _sha256(source)) if check_digest else None, expected, what
    )


def azure_conversation(source: Path, out_dir: Path, check_digest: bool = True) -> tuple[Path, Path]:
    """Write ``azure_conv_hour.csv`` (the source, unchanged) and ``azure_conv_excerpt.csv`` (its
    header and first :data:`AZURE_EXCERPT_REQUESTS` rows); returns their paths."""
    _check_file(
        "--azure-conversation", source, check_digest, AZURE_CONVERSATION_SHA256, "the 2023 conversation trace"
    )
    data = source.read_bytes()
    lines = data.splitlines(keepends=True)
    if len(lines) <= AZURE_EXCERPT_REQUESTS:
        raise ConfigError(
            "--azure-conversation",
            f"{source} has {len(lines) - 1} requests, fewer than {AZURE_EXCERPT_REQUESTS}",
        )
    hour = write_atomic(out_dir / "azure_conv_hour.csv", data)
    excerpt = write_atomic(out_dir / "azure_conv_excerpt.csv", b"".join(lines[: AZURE_EXCERPT_REQUESTS + 1]))
    print(f"wrote {hour} ({len(lines) - 1} requests) and {excerpt} (the first {AZURE_EXCERPT_REQUESTS})")
    return hour, excerpt


def azure_multimodal(source: Path, out_dir: Path, check_digest: bool = True) -> Path:
    """Write ``azure_lmm_excerpt.csv``, the first :data:`AZURE_LMM_EXCERPT_REQUESTS` requests of the
    Azure LMM inference trace 2025 (either layout of
    :data:`batchenv.trace_prep.AZURE_MULTIMODAL_SCHEMAS`); returns its path. The excerpt, not the
    source, is checked against its digest, before anything is written."""
    if not source.is_file():
        raise ConfigError("--azure-multimodal", f"not found: {source}")
    records = read_azure_multimodal_csv(source, AZURE_LMM_EXCERPT_REQUESTS)
    text = excerpt_csv(records, records.times_s).encode()
    if check_digest and hashlib.sha256(text).hexdigest() != AZURE_LMM_EXCERPT_SHA256:
        raise ConfigError(
            "--azure-multimodal",
            f"{source} does not give the shipped excerpt (its digest differs from "
            f"{AZURE_LMM_EXCERPT_SHA256}); pass --any-version to use it anyway",
        )
    path = write_atomic(out_dir / "azure_lmm_excerpt.csv", text)
    print(f"wrote {path} ({len(records.times_s)} requests, {records.times_s[-1]:.0f} s)")
    return path


def mooncake_conversation(source: Path, out_dir: Path, check_digest: bool = True) -> Path:
    """Write ``mooncake_conv.csv`` from the FAST'25 conversation trace; returns its path."""
    _check_file(
        "--mooncake-conversation",
        source,
        check_digest,
        MOONCAKE_CONVERSATION_SHA256,
        "the FAST'25 release file",
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


def servegen_digest(folder: Path) -> str:
    """sha256 of the names and bytes of the folder's ``chunk-<id>-trace.csv`` files, by id."""
    digest = hashlib.sha256()
    for _, path in client_files(folder):
        digest.update(path.name.encode() + b"\0")
        _feed(digest, path)
        digest.update(b"\0")
    return digest.hexdigest()


def busiest_hour(aggregate_per_window: np.ndarray, hours: int = 24) -> int:
    """Index of the hour (six aligned windows) with the highest mean rate among the first ``hours``."""
    day = aggregate_per_window[: hours * WINDOWS_PER_HOUR].reshape(hours, WINDOWS_PER_HOUR)
    return int(np.argmax(day.mean(axis=1)))


def servegen_m_large(source: Path, out_dir: Path, check_digest: bool = True) -> Path:
    """Write ``servegen_m_large.csv`` (``arrival_s,client``) from ServeGen's m-large statistics."""
    _check_source(
        "--servegen-m-large",
        source,
        source.is_dir(),
        (lambda: servegen_digest(source)) if check_digest else None,
        SERVEGEN_M_LARGE_SHA256,
        "the m-large folder of ServeGen commit f891d11",
    )
    clients = read_servegen_clients(source)
    hour = busiest_hour(clients.aggregate_rate_per_s())
    times, owners = servegen_arrivals(
        clients,
        hour * WINDOWS_PER_HOUR,
        WINDOWS_PER_HOUR,
        SERVEGEN_MEAN_RATE_PER_S,
        np.random.default_rng(SERVEGEN_SEED),
    )
    lines = ["arrival_s,client"] + [f"{t:.4f},{c}" for t, c in zip(times, owners, strict=True)]
    path = write_atomic(out_dir / "servegen_m_large.csv", "\n".join(lines) + "\n")
    print(
        f"wrote {path} ({len(times)} requests from {len(np.unique(owners))} clients, "
        f"hour {hour} of the first day, "
        f"{WINDOWS_PER_HOUR * WINDOW_S:.0f} s, {path.stat().st_size} bytes)"
    )
    return path


def fineserve_dense(source: Path, out_dir: Path, check_digest: bool = True) -> Path:
    """Write ``fineserve_dense.csv`` (``recorded_s,arrival_s,input_tokens,output_tokens``) from
    FineServe's ``Dense_30to100B.csv``; returns its path."""
    _check_file(
        "--fineserve-dense",
        source,
        check_digest,
        FINESERVE_DENSE_SHA256,
        "Dense_30to100B.csv of FineServe commit f2ff77d",
    )
    published, untimed = read_fineserve_csv(source)
    times_s = published.times_s - published.times_s[0]
    seconds, largest_move_s = snap_to_grid(times_s, FINESERVE_GRID_S)
    arrival_s = spread_ties_uniformly(seconds, FINESERVE_GRID_S, np.random.default_rng(SPREAD_SEED))
    records = TraceRecords(times_s, published.input_tokens, published.output_tokens)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = write_atomic(out_dir / "fineserve_dense.csv", excerpt_csv(records, arrival_s))
    print(
        f"wrote {path} ({len(times_s)} requests, {times_s[-1]:.0f} s, {untimed} trailing rows "
        f"without a timestamp dropped, timestamps snapped to {FINESERVE_GRID_S:g} s: largest move "
        f"{largest_move_s:.3f} s, {path.stat().st_size} bytes)"
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate the trace excerpts shipped in batchenv/data/ from their public sources "
        "(see this file's docstring for where to get them)."
    )
    parser.add_argument(
        "--azure-conversation",
        type=Path,
        help="data/AzureLLMInferenceTrace_conv.csv of github.com/Azure/AzurePublicDataset (the 2023 "
        "conversation trace; never the code trace)",
    )
    parser.add_argument(
        "--azure-multimodal",
        type=Path,
        help="data/AzureLMMInferenceTrace_multimodal.csv.gz of github.com/Azure/AzurePublicDataset, "
        "gunzipped (the 2025 multimodal trace), or a copy of its first rows with times in seconds",
    )
    parser.add_argument(
        "--mooncake-conversation",
        type=Path,
        help="FAST25-release/traces/conversation_trace.jsonl of github.com/kvcache-ai/Mooncake",
    )
    parser.add_argument(
        "--servegen-m-large", type=Path, help="data/language/m-large of github.com/alibaba/ServeGen"
    )
    parser.add_argument(
        "--fineserve-dense",
        type=Path,
        help="datasets/replay/Dense_30to100B.csv of github.com/hihiztc1/FineServe (not shipped: written to "
        f"{EXTERNAL_DIR.name}/)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"where to write the excerpts (default: {display_path(DATA_DIR)} for the shipped ones, "
        f"{display_path(EXTERNAL_DIR)} for FineServe)",
    )
    parser.add_argument(
        "--any-version", action="store_true", help="do not check the source file's sha256 against the release"
    )
    args = parser.parse_args(argv)
    sources = (
        args.azure_conversation,
        args.azure_multimodal,
        args.mooncake_conversation,
        args.servegen_m_large,
        args.fineserve_dense,
    )
    if all(source is None for source in sources):
        parser.error(
            "give at least one of --azure-conversation, --azure-multimodal, --mooncake-conversation, "
            "--servegen-m-large, --fineserve-dense"
        )
    shipped_dir = args.out_dir or DATA_DIR
    check = not args.any_version
    try:
        if args.azure_conversation is not None:
            azure_conversation(args.azure_conversation, shipped_dir, check_digest=check)
        if args.azure_multimodal is not None:
            azure_multimodal(args.azure_multimodal, shipped_dir, check_digest=check)
        if args.mooncake_conversation is not None:
            mooncake_conversation(args.mooncake_conversation, shipped_dir, check_digest=check)
        if args.servegen_m_large is not None:
            servegen_m_large(args.servegen_m_large, shipped_dir, check_digest=check)
        if args.fineserve_dense is not None:
            fineserve_dense(args.fineserve_dense, args.out_dir or EXTERNAL_DIR, check_digest=check)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
