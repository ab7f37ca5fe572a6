"""The three real models the server runs: randomly initialised transformer encoders standing in
for LLM-1, LLM-2 and LLM-3, with real pre-processing (tokenise, pad), a real forward pass and
real post-processing. Their *timing* is real; their outputs mean nothing (random weights).

One batch goes through four timed stages (:meth:`ModelWorker.run_batch`), the brief's:

- ``pre``: tokenise each text (lower-case words and punctuation hashed into the vocabulary),
  truncate or pad to ``seq_len`` tokens, and build the id and padding-mask arrays;
- ``comm``: copy the arrays into the model's input tensors and, after the forward pass, the
  logits back into host memory. On a GPU this is the transfer over the bus; on this CPU-only
  machine it is a memory copy of a few kilobytes;
- ``inference``: the encoder's forward pass (embedding, ``layers`` self-attention blocks, mean
  pooling over the real tokens, a linear head) under ``torch.inference_mode``;
- ``post``: softmax over the head's classes and one ``{"label", "score"}`` answer per request.

Times are measured with :func:`time.monotonic` (s), the clock every part of :mod:`serving`
uses, so that times taken in different threads and processes of one machine compare.
"""

from __future__ import annotations

import contextlib
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "MODEL_SPECS",
    "SEQ_LEN",
    "BatchResult",
    "EncoderSpec",
    "ModelWorker",
    "TextEncoder",
    "build_models",
    "parse_model_shapes",
    "set_torch_threads",
    "tokenise",
]

SEQ_LEN = 32
"""Tokens per request after truncation or padding."""

VOCAB_SIZE = 8192
N_CLASSES = 16
_PAD, _CLS = 0, 1
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class EncoderSpec:
    """Shape of one stand-in model: ``layers`` encoder blocks of width ``width`` (heads of 64)."""

    name: str
    layers: int
    width: int


MODEL_SPECS: tuple[EncoderSpec, ...] = (
    EncoderSpec("LLM-1", 6, 512),
    EncoderSpec("LLM-2", 4, 384),
    EncoderSpec("LLM-3", 2, 256),
)
"""The three stand-ins, largest (most precise in the brief) first, as the config's models."""


def parse_model_shapes(text: str | None, n_models: int) -> list[EncoderSpec]:
    """Stand-in shapes per config model from ``LAYERSxWIDTH,...`` (None: the default three).

    :raises ValueError: naming ``--models`` and the expected form.
    """
    if text is None:
        if n_models != len(MODEL_SPECS):
            raise ValueError(
                f"--models: the scenario has {n_models} models; give {n_models} shapes LAYERSxWIDTH"
            )
        return list(MODEL_SPECS)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != n_models:
        raise ValueError(f"--models: the scenario has {n_models} models, got {len(parts)} shapes in {text!r}")
    specs = []
    for i, part in enumerate(parts):
        layers, sep, width = part.lower().partition("x")
        if not sep or not layers.isdigit() or not width.isdigit():
            raise ValueError(f"--models: {part!r} is not LAYERSxWIDTH (e.g. 2x256)")
        if not 1 <= int(layers) <= 48 or not 64 <= int(width) <= 4096 or int(width) % 64:
            raise ValueError(
                f"--models: {part!r}: layers must be in [1, 48] and width a multiple of 64 in [64, 4096]"
            )
        specs.append(EncoderSpec(f"model-{i}", int(layers), int(width)))
    return specs


def set_torch_threads(n_threads: int) -> None:
    """Fix PyTorch's intra-op and inter-op thread counts (timings depend on them). The inter-op
    count can only be set once per process; a second call keeps the first value."""
    if n_threads < 1:
        raise ValueError(f"torch threads must be >= 1, got {n_threads}")
    torch.set_num_threads(n_threads)
    # the inter-op count can be set once per process only, before any parallel work
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(n_threads)


def tokenise(text: str, seq_len: int = SEQ_LEN) -> list[int]:
    """Token ids of ``text``: a leading CLS id, then each lower-cased word or punctuation mark
    hashed (CRC-32) into ``[2, VOCAB_SIZE)``, truncated to ``seq_len`` ids (no padding)."""
    ids = [_CLS]
    for match in _WORD.finditer(text.lower()):
        if len(ids) == seq_len:
            break
        ids.append(2 + zlib.crc32(match.group().encode()) % (VOCAB_SIZE - 2))
    return ids


class TextEncoder(nn.Module):
    """Embedding + positional embedding + ``spec.layers`` transformer encoder blocks + mean
    pooling over the real tokens + a linear head of ``N_CLASSES`` classes.

    Input: ids (batch, seq_len) int64 and a padding mask (batch, seq_len) bool (True = padding);
    output: logits (batch, N_CLASSES) float32.
    """

    def __init__(self, spec: EncoderSpec, seq_len: int = SEQ_LEN) -> None:
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(VOCAB_SIZE, spec.width, padding_idx=_PAD)
        self.position = nn.Parameter(torch.randn(seq_len, spec.width) * 0.02)
        block = nn.TransformerEncoderLayer(
            spec.width, max(1, spec.width // 64), 4 * spec.width, dropout=0.0, batch_first=True
        )
        # No nested tensors: every batch computes all seq_len positions, so the time of a batch
        # depends on its size only (the simulator's assumption), not on the texts' lengths.
        self.encoder = nn.TransformerEncoder(block, spec.layers, enable_nested_tensor=False)
        self.head = nn.Linear(spec.width, N_CLASSES)

    def forward(self, ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.position[: ids.shape[1]]
        x = self.encoder(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_models(
    specs: Sequence[EncoderSpec] = MODEL_SPECS, seed: int = 0, seq_len: int = SEQ_LEN
) -> list[TextEncoder]:
    """The models, randomly initialised from ``seed`` (PyTorch's global generator is saved and
    restored around the initialisation, so nothing else's random state changes), in eval mode."""
    models = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for spec in specs:
            models.append(TextEncoder(spec, seq_len).eval())
    return models


@dataclass(frozen=True)
class BatchResult:
    """Answers of one batch and its stage times (s, from :func:`time.monotonic`)."""

    answers: list[dict[str, Any]]
    start_s: float
    pre_s: float
    comm_s: float
    inference_s: float
    post_s: float
    end_s: float


class ModelWorker:
    """Runs batches on the models: the four timed stages of the module docstring. Thread-safe
    for concurrent batches (the models are only read).

    :param models: the models, in the config's model order.
    :param seq_len: tokens per request.
    """

    def __init__(self, models: Sequence[TextEncoder], seq_len: int = SEQ_LEN) -> None:
        self.models = list(models)
        self.seq_len = seq_len

    def run_batch(self, model: int, texts: Sequence[str]) -> BatchResult:
        """Run ``texts`` (one per request) as one batch on model index ``model``."""
        clock = time.monotonic
        start = clock()
        n, seq_len = len(texts), self.seq_len
        ids = np.zeros((n, seq_len), dtype=np.int64)
        padding = np.ones((n, seq_len), dtype=bool)
        for i, text in enumerate(texts):
            tokens = tokenise(text, seq_len)
            ids[i, : len(tokens)] = tokens
            padding[i, : len(tokens)] = False
        t_pre = clock()
        ids_in = torch.empty((n, seq_len), dtype=torch.int64)
        padding_in = torch.empty((n, seq_len), dtype=torch.bool)
        ids_in.copy_(torch.from_numpy(ids))
        padding_in.copy_(torch.from_numpy(padding))
        t_in = clock()
        with torch.inference_mode():
            logits = self.models[model](ids_in, padding_in)
        t_inf = clock()
        host = logits.numpy().copy()
        t_out = clock()
        shifted = np.exp(host - host.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        labels = probs.argmax(axis=1)
        answers = [
            {"label": int(k), "score": round(float(p[k]), 6)} for k, p in zip(labels, probs, strict=True)
        ]
        end = clock()
        return BatchResult(
            answers=answers,
            start_s=start,
            pre_s=t_pre - start,
            comm_s=(t_in - t_pre) + (t_out - t_inf),
            inference_s=t_inf - t_in,
            post_s=end - t_out,
            end_s=end,
        )
