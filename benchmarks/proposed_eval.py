"""Measurements of the proposed scheduler (agents/proposed.py) that ``evaluate.py`` does not make:
every number and figure of docs/algorithm.md besides the scenario-suite tables comes from here.

Parts (``--parts``, comma-separated; default all):

- ``gap``: cost gap to the exact optimum on stationary Poisson loads, with common random numbers
  (the same arrivals for every agent): the gap of :mod:`evaluation.stats`, (mean cost - mean
  optimal cost) / mean optimal cost with the 95% confidence interval of the seed-paired
  differences, for the proposed scheduler, its "no rate estimation" ablation and the tuned
  timeout and util_switch baselines.
- ``tracking``: the rate estimator after steps of the arrival rate (synthetic Poisson steps,
  many seeds) and on the diurnal and bursty scenarios (figure).
- ``table``: the precomputed table (model and batch by rate and queue length, one and two
  workers; figure), its build time and size.
- ``speed``: simulated requests and decisions per second, proposed vs timeout vs optimal.
- ``sensitivity``: exact cost (SMDP policy evaluation, no simulation) of using the table row of
  a wrong rate: the one-worker optimal policy for ``f * rate`` run at ``rate``.
- ``oracle``: the bursty load regenerated with its phases known (a two-phase MMPP with the
  parameters of ``bursty.yaml``): the proposed scheduler against the same table driven by the
  true phase rate (an oracle) and the tuned baselines.
- ``workers``: several workers: the staggered-workers table against the one-worker table at the
  per-worker rate (``worker_model="share"``).
- ``design``: the design choices of docs/algorithm.md on the *training* seeds 1000-1015 (the
  seeds the parameters were chosen on): estimator and timer variants against the defaults.
- ``slo``: the ``azure_trace_slo`` scenario (80 ms SLO, w_slo = 0.2), with the timeout and
  util_switch baselines tuned for it on training seeds (written to
  ``<out stem>/tuned/azure_trace_slo.yaml``, as ``python -m apps.tune`` would), and the
  proposed scheduler with and without its SLO guard.

Each part is a module of ``benchmarks/proposed/``; their episodes run on the execution layer
(:mod:`execution`: ``--jobs`` local processes, or ``--backend ray``).

Usage::

    python benchmarks/proposed_eval.py                       # all parts, 2 processes
    python benchmarks/proposed_eval.py --parts gap --seeds 40 --horizon-s 300
    python benchmarks/proposed_eval.py --help

It writes ``docs/results/proposed_benchmarks.md`` (Markdown tables), ``.json`` next to it and the
figures into ``docs/results/proposed_benchmarks_figures/``, and prints where.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.fileio import write_atomic  # noqa: E402
from benchmarks.cli_parts import parse_parts  # noqa: E402
from benchmarks.proposed import (  # noqa: E402
    design,
    gap,
    oracle,
    sensitivity,
    slo,
    speed,
    table,
    tracking,
    workers,
)
from benchmarks.proposed.common import display_path  # noqa: E402
from execution.backends import Backend  # noqa: E402
from execution.cli import add_execution_arguments, backend_spec_or_exit  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "results" / "proposed_benchmarks.md"
PART_FUNCTIONS: dict[str, Callable[[argparse.Namespace, Path, Backend], tuple[list[str], dict]]] = {
    "gap": gap.run,
    "sensitivity": sensitivity.run,
    "tracking": tracking.run,
    "oracle": oracle.run,
    "table": table.run,
    "workers": workers.run,
    "speed": speed.run,
    "slo": slo.run,
    "design": design.run,
}
PARTS = tuple(PART_FUNCTIONS)
DEFAULT_PARTS = PARTS[:-1]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python benchmarks/proposed_eval.py",
        description="Measurements of the proposed scheduler for docs/algorithm.md "
        "(see the module docstring).",
    )
    parser.add_argument(
        "--parts",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated, among {','.join(PARTS)} (default: all but design, which is run only "
        "when asked for)",
    )
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 of the gap part (default: 20)")
    parser.add_argument(
        "--horizon-s", type=float, default=120.0, help="episode length of the gap part (s) (default: 120)"
    )
    parser.add_argument(
        "--slo-seeds", type=int, default=10, help="seeds 0..N-1 of the slo and workers parts (default: 10)"
    )
    parser.add_argument(
        "--oracle-seeds", type=int, default=20, help="seeds 0..N-1 of the oracle part (default: 20)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="Markdown file to write, with its .json and <stem>_figures/ next to it "
        f"(default: {display_path(DEFAULT_OUT)})",
    )
    add_execution_arguments(parser, default_jobs=2)
    args = parser.parse_args(argv)
    parts = parse_parts(parser, args.parts, PARTS)
    if min(args.seeds, args.slo_seeds, args.oracle_seeds) < 2:
        parser.error("--seeds, --slo-seeds and --oracle-seeds must be >= 2")
    execution = backend_spec_or_exit(parser, args)
    out = Path(args.out)
    figures = out.with_name(out.stem + "_figures")
    if {"tracking", "table"} & set(parts):
        figures.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/proposed_eval.py" + (" " + shlex.join(argv) if argv else "")
    lines = [
        "# Proposed scheduler: measurements",
        "",
        f"Produced by `{command}` (docs/algorithm.md explains every table).",
        "",
    ]
    data: dict[str, Any] = {
        "command": command,
        "settings": {
            "seeds": args.seeds,
            "horizon_s": args.horizon_s,
            "slo_seeds": args.slo_seeds,
            "oracle_seeds": args.oracle_seeds,
        },
    }
    with execution.create() as backend:
        print(f"episodes on {backend.describe()}")
        for part in parts:
            start = time.perf_counter()
            print(f"part {part} ...")
            part_lines, part_data = PART_FUNCTIONS[part](args, figures, backend)
            lines += part_lines
            data[part] = part_data
            print(f"part {part} done in {time.perf_counter() - start:.0f} s")
    write_atomic(out, "\n".join(lines) + "\n")
    write_atomic(out.with_suffix(".json"), json.dumps(data, indent=1, default=float) + "\n")
    print(f"wrote {out}, {out.with_suffix('.json')} and {figures}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
