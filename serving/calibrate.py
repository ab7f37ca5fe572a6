"""Measure the server's timing table on this machine and write it as a scenario YAML
(``python -m serving.calibrate --help``).

Each (model, table batch size) cell runs real batches through the server's own path: the event
loop hands the batch to a single-thread executor, the worker tokenises, copies, runs the forward
pass and post-processes (:meth:`serving.models.ModelWorker.run_batch`), and the event loop learns
of the completion. Every stage is timed:

- ``pre`` (tokenise, pad), ``comm`` (copies into and out of the model's tensors), ``inference``
  (the forward pass), ``post`` (softmax, answers): inside the worker thread;
- ``handoff_in`` (loop -> worker thread) and ``handoff_out`` (worker done -> the loop knows):
  the server's own overhead per batch.

Noise control: ``--warmup-reps`` rounds are run and discarded; then ``--reps`` rounds, each
visiting every cell once in a new random order (so slow drifts of the machine spread over all
cells); PyTorch's thread counts are fixed (``--torch-threads``). Every stage is reported with
its mean, 95% confidence interval (Student t), median, min and max.

The written YAML is the base scenario (``--scenario``) with its timing table replaced
(service time = t_pre + comm(b) + inference(m, b) + t_post, ms):

- ``inference_ms[m][b]``: mean forward pass of model m at batch size b;
- ``t_pre_ms``: mean pre-processing of one request + mean hand-off to the worker;
- ``t_post_ms``: mean post-processing of one request + mean hand-off back to the loop;
- ``comm_ms[b]``: mean copies at b, plus what pre- and post-processing of b requests take
  beyond one (the config's t_pre/t_post are per batch, independent of its size; the one column
  that depends on the batch size only is comm);

made non-decreasing in the batch size (isotonic regression; changed cells are listed). Each entry is
the mean of its samples (``--statistic median`` for the median, robust to a shared machine's
stalls). The model
qualities, names, queue, SLO and arrivals are the base scenario's: qualities are a choice of
configuration, not a measurement. A JSON file next to the YAML keeps every measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_files_atomic
from batchenv.safe_yaml import comment_block
from batchenv.scenarios import load_scenario
from batchenv.timing import ServiceTable
from serving.cli import UsageError, check_range, check_writable, run_cli
from serving.models import EncoderSpec, ModelWorker, build_models, parse_model_shapes, set_torch_threads
from serving.workload import request_texts

__all__ = ["STAGES", "calibrate", "calibrated_config", "main", "measure", "summarise"]

STAGES = ("handoff_in", "pre", "comm", "inference", "post", "handoff_out", "service")
"""Timed stages of one batch; ``service`` is the whole, as the event loop sees it."""


async def _one_batch(
    worker: ModelWorker, executor: ThreadPoolExecutor, model: int, texts: list[str]
) -> dict[str, float]:
    """Stage times (s) of one batch through the server's path (loop -> thread -> loop)."""
    loop = asyncio.get_running_loop()
    seen = loop.create_future()
    submitted = time.monotonic()
    future = loop.run_in_executor(executor, worker.run_batch, model, texts)
    future.add_done_callback(lambda _: seen.set_result(time.monotonic()))
    done = await seen
    result = future.result()
    return {
        "handoff_in": result.start_s - submitted,
        "pre": result.pre_s,
        "comm": result.comm_s,
        "inference": result.inference_s,
        "post": result.post_s,
        "handoff_out": done - result.end_s,
        "service": done - submitted,
    }


async def measure(
    worker: ModelWorker,
    n_models: int,
    batch_sizes: Sequence[int],
    reps: int,
    warmup_reps: int,
    seed: int = 0,
    progress: Any = None,
) -> dict[tuple[int, int], dict[str, list[float]]]:
    """Samples (s) per (model, batch size) and stage: ``warmup_reps`` discarded rounds, then
    ``reps`` rounds over every cell in a new random order (generator ``seed``)."""
    rng = np.random.default_rng(seed)
    cells = [(m, b) for m in range(n_models) for b in batch_sizes]
    texts = request_texts(seed, max(batch_sizes))
    samples: dict[tuple[int, int], dict[str, list[float]]] = {c: {s: [] for s in STAGES} for c in cells}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="calibration-worker") as executor:
        for round_index in range(warmup_reps + reps):
            for k in rng.permutation(len(cells)):
                model, size = cells[k]
                times = await _one_batch(worker, executor, model, texts[:size])
                if round_index >= warmup_reps:
                    for stage, value in times.items():
                        samples[(model, size)][stage].append(value)
            if progress is not None:
                progress(round_index + 1, warmup_reps + reps)
    return samples


def summarise(values_s: Sequence[float]) -> dict[str, float]:
    """Mean, 95% CI half-width (Student t), sd, median, min, max of samples in s, in ms."""
    from scipy import stats

    data = np.asarray(values_s, dtype=float) * 1000.0
    n = data.size
    sd = float(data.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    return {
        "n": n,
        "mean_ms": float(data.mean()),
        "ci95_ms": half,
        "sd_ms": sd,
        "median_ms": float(np.median(data)),
        "min_ms": float(data.min()),
        "max_ms": float(data.max()),
    }


def non_decreasing(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """The closest non-decreasing sequence in least squares (isotonic regression, pool adjacent
    violators: a cell slower than the next is averaged with it, not propagated as a maximum),
    and the indices it changed."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    fitted = [total / count for total, count in blocks for _ in range(int(count))]
    changed = [i for i, (v, f) in enumerate(zip(values, fitted, strict=True)) if not math.isclose(v, f)]
    return fitted, changed


STATISTICS = {"mean": np.mean, "median": np.median}
"""How a cell's samples become its table entry (``--statistic``)."""


def calibrated_config(
    base: SystemConfig,
    samples: dict[tuple[int, int], dict[str, list[float]]],
    name: str,
    statistic: str = "mean",
) -> tuple[SystemConfig, dict[str, Any]]:
    """The base config with the measured timing table (module docstring) and how each entry was
    derived (in ms; the cells made non-decreasing).

    :param statistic: ``"mean"`` (default: the expected service time, which sets the capacity) or
        ``"median"`` (robust to the rare long stalls of a shared machine).
    """
    reduce = STATISTICS[statistic]
    sizes = [b for b in base.timing.batch_sizes if b <= base.max_batch_size]
    models = range(base.n_models)

    def pooled(stage: str, size: int | None = None) -> float:
        """Mean (ms) of a stage over every model (and every size if ``size`` is None)."""
        values = [v for (_, b), cell in samples.items() if size is None or b == size for v in cell[stage]]
        return 1000.0 * float(reduce(values))

    pre = {b: pooled("pre", b) for b in sizes}
    post = {b: pooled("post", b) for b in sizes}
    comm = {b: pooled("comm", b) for b in sizes}
    handoff_in, handoff_out = pooled("handoff_in"), pooled("handoff_out")
    t_pre = pre[1] + handoff_in
    t_post = post[1] + handoff_out
    comm_raw = [comm[b] + (pre[b] - pre[1]) + (post[b] - post[1]) for b in sizes]
    comm_ms, comm_changed = non_decreasing([max(v, 0.0) for v in comm_raw])
    inference, inference_changed = {}, {}
    for m in models:
        raw = [1000.0 * float(reduce(samples[(m, b)]["inference"])) for b in sizes]
        inference[m], changed = non_decreasing(raw)
        inference_changed[base.model_names[m]] = [sizes[i] for i in changed]
    # sizes beyond max_batch_size (if any) keep the table's shape: the last measured value
    all_sizes = base.timing.batch_sizes
    extra = len(all_sizes) - len(sizes)
    timing = {
        "mode": base.timing.mode,
        "t_pre_ms": round(t_pre, 4),
        "t_post_ms": round(t_post, 4),
        "batch_sizes": list(all_sizes),
        "comm_ms": [round(v, 4) for v in comm_ms + comm_ms[-1:] * extra],
    }
    model_entries = [
        {
            "name": profile.name,
            "quality": profile.quality,
            "inference_ms": [round(v, 4) for v in inference[m] + inference[m][-1:] * extra],
        }
        for m, profile in enumerate(base.models)
    ]
    config = base.replace(name=name, timing=timing, models=model_entries)
    derivation = {
        "t_pre_ms": {"pre_1_ms": pre[1], "handoff_in_ms": handoff_in},
        "t_post_ms": {"post_1_ms": post[1], "handoff_out_ms": handoff_out},
        "comm_ms": {
            str(b): {"comm_ms": comm[b], "pre_extra_ms": pre[b] - pre[1], "post_extra_ms": post[b] - post[1]}
            for b in sizes
        },
        "statistic": statistic,
        "made_non_decreasing": {
            "comm_ms": [sizes[i] for i in comm_changed],
            "inference_ms": inference_changed,
        },
    }
    return config, derivation


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "load_average_1_5_15": list(os.getloadavg()),
    }


def calibrate(
    base: SystemConfig,
    shapes: Sequence[EncoderSpec],
    *,
    name: str = "calibrated",
    reps: int = 20,
    warmup_reps: int = 3,
    torch_threads: int = 1,
    model_seed: int = 0,
    seed: int = 0,
    statistic: str = "mean",
    progress: Any = None,
) -> tuple[SystemConfig, dict[str, Any]]:
    """Measure and derive the calibrated config; returns it and the measurement record."""
    set_torch_threads(torch_threads)
    worker = ModelWorker(build_models(shapes, seed=model_seed))
    sizes = [b for b in base.timing.batch_sizes if b <= base.max_batch_size]
    machine_before = _machine()
    start = time.monotonic()
    samples = asyncio.run(measure(worker, base.n_models, sizes, reps, warmup_reps, seed, progress))
    elapsed = time.monotonic() - start
    config, derivation = calibrated_config(base, samples, name, statistic)
    table = ServiceTable(config)
    record = {
        "machine": machine_before,
        "load_average_after": list(os.getloadavg()),
        "elapsed_s": elapsed,
        "reps": reps,
        "warmup_reps": warmup_reps,
        "models": {n: f"{s.layers}x{s.width}" for n, s in zip(base.model_names, shapes, strict=True)},
        "stages": {
            f"{base.model_names[m]}/b{b}": {stage: summarise(values) for stage, values in cell.items()}
            for (m, b), cell in samples.items()
        },
        "derivation": derivation,
        "capacity_per_s": table.max_throughput_per_s(config.n_workers),
    }
    return config, record


def yaml_text(config: SystemConfig, record: dict[str, Any], command: str, base: str) -> str:
    """The scenario YAML with a header saying how it was measured."""
    machine = record["machine"]
    models = ", ".join(f"{k} {v}" for k, v in record["models"].items())
    header = [
        f"# Timing table measured on this machine by: {command}",
        f"# {dt.datetime.now().isoformat(timespec='seconds')}; {machine['platform']}; "
        f"{machine['cpus']} CPUs; torch {machine['torch']} with {machine['torch_threads']} thread(s); "
        "load average before "
        f"{machine['load_average_1_5_15'][0]:.2f}, after {record['load_average_after'][0]:.2f}",
        f"# Stand-in models (layers x width, sequence 32, random weights): {models}.",
        f"# {record['derivation']['statistic'].capitalize()}s of {record['reps']} rounds after "
        f"{record['warmup_reps']} discarded warm-up rounds;",
        "# confidence intervals and every stage in the JSON file next to this one.",
        "# t_pre_ms = pre-processing of one request + hand-off to the worker thread; t_post_ms =",
        "# post-processing of one request + hand-off back to the event loop; comm_ms = copies into and",
        "# out of the model's tensors + the batch-size-dependent part of pre- and post-processing.",
        f"# Qualities, names, queue, SLO, rewards and arrivals are those of scenario {base!r}: the",
        "# qualities are a configuration choice, not a measurement (the stand-ins' outputs mean nothing).",
        f"# Largest sustainable throughput: {record['capacity_per_s']:.1f} requests/s.",
    ]
    return comment_block(header) + config.to_yaml()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.calibrate",
        description=(
            "Measure T_pre, T_comm, T_inf(m, b) and T_post of the server's three models on this "
            "machine (warm-up, repetitions, 95% confidence intervals) and write a scenario YAML "
            "with that timing table, plus a JSON file with every measurement."
        ),
        epilog="example:\n  python -m serving.calibrate --out docs/results/sim_to_real_calibrated.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        default="default",
        help="base scenario (models, qualities, queue, arrivals; default: default)",
    )
    parser.add_argument("--out", type=Path, default=Path("calibrated.yaml"), help="YAML to write (and .json)")
    parser.add_argument(
        "--name", default="calibrated", help="name of the written scenario (default: calibrated)"
    )
    parser.add_argument("--reps", type=int, default=20, help="measured rounds over every cell (default: 20)")
    parser.add_argument("--warmup-reps", type=int, default=3, help="discarded rounds first (default: 3)")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="PyTorch threads, as the server's (default: 1)"
    )
    parser.add_argument(
        "--models", default=None, help="stand-in shapes LAYERSxWIDTH,... (default: 6x512,4x384,2x256)"
    )
    parser.add_argument(
        "--statistic",
        choices=sorted(STATISTICS),
        default="mean",
        help="table entry of a cell's samples (default: mean)",
    )
    parser.add_argument(
        "--model-seed", type=int, default=0, help="seed of the models' random weights (default: 0)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Calibrate and write the files; returns the exit code (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_cli(build_parser(), lambda args: _run(args, argv), argv)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    check_range("--reps", args.reps, 2, 10_000)
    check_range("--warmup-reps", args.warmup_reps, 0, 1000)
    check_range("--torch-threads", args.torch_threads, 1, 256)
    if args.out.suffix not in (".yaml", ".yml"):
        raise UsageError(f"--out must end in .yaml or .yml, got {str(args.out)!r}")
    if not args.name.strip() or len(args.name) > 100 or not args.name.isprintable():
        raise UsageError(
            f"--name must be a non-empty name of at most 100 printable characters, got {args.name!r}"
        )
    check_writable("--out", args.out)
    check_writable("--out", args.out.with_suffix(".json"))
    try:
        base = load_scenario(args.scenario)
    except ConfigError as exc:
        raise UsageError(f"--scenario: {exc}") from None
    try:
        shapes = parse_model_shapes(args.models, base.n_models)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def progress(done: int, total: int) -> None:
        print(f"\rround {done}/{total}", end="" if done < total else "\n", flush=True)

    config, record = calibrate(
        base,
        shapes,
        name=args.name,
        reps=args.reps,
        warmup_reps=args.warmup_reps,
        torch_threads=args.torch_threads,
        model_seed=args.model_seed,
        statistic=args.statistic,
        progress=progress,
    )
    command = "python -m serving.calibrate " + shlex.join(argv)
    record = {"command": command, "base_scenario": args.scenario, **record, "config": config.to_dict()}
    write_files_atomic(
        {
            args.out: yaml_text(config, record, command, args.scenario),
            args.out.with_suffix(".json"): json.dumps(record, indent=2) + "\n",
        }
    )
    assert SystemConfig.from_yaml(args.out) == config
    table = ServiceTable(config)
    print(f"service time (ms) per model at batch sizes {list(config.timing.batch_sizes)}:")
    for m, name in enumerate(config.model_names):
        row = [table.service_ms[m, b] for b in config.timing.batch_sizes if b <= config.max_batch_size]
        print(f"  {name}: " + " ".join(f"{v:.1f}" for v in row))
    print(f"capacity {record['capacity_per_s']:.1f} requests/s")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
