"""The robust proposed scheduler (agents/robust/) against the tuned baselines, on traffic it was
not fitted to: every number of docs/algorithm.md's "Robust to bursts" section comes from here.

Parts (``--parts``, comma-separated; default all):

- ``traces``: each packaged trace at its native rate and at 30% and 60% of LLM-3's capacity
  (``--traces all``: every trace scenario with a time split, ``batchenv.scenarios
  .trace_scenarios``). The timeout and util_switch baselines are tuned on the first half of the
  trace (``<name>_train``, seeds 1000-1003, ``agents.tuning.tune_scenario``; the tuned parameters
  are written to ``<out stem>/tuned/``) and every agent is evaluated on the second half
  (``<name>_test``, seeds 0..N-1). The scheduler has no parameter tuned per trace. Verdicts
  against the tuned timeout: *beats* (the 95% interval of the paired difference lies below 0),
  *ties* (it contains 0), *loses*.
- ``mmpp``: an MMPP alternating 50 and 450 requests/s with mean sojourns of 5 s in each phase,
  phases recorded; the rate-aware oracle knows the phase (``benchmarks/mmpp_phases.py``). The
  timeout and util_switch are tuned on the simulator's MMPP at seeds 1000-1003. *Closure* is the
  part of the tuned timeout's gap to the oracle that an agent closes.
- ``poisson``: stationary Poisson loads from 5% to 95% of capacity, against the exact optimum
  (the timeout with its tuned parameters from ``agents/tuned/``).
- ``design``: the measurements behind the design, on training data only (seeds 1000-1007, the
  first halves of the traces): where the proposed scheduler loses on the MMPP (excess cost by
  phase and time since the phase began), the latency tilt on Poisson loads and on traces, the
  burst meter's reading, the tilt and window of the burst-aware table, and the confidence z of the
  portfolio's switching test. Run only when asked for.
- ``guard``: the grid of the tail guard's target and price (``benchmarks/robust/guard.py``), on
  training seeds 1000-1019 only, with the selection rule of docs/algorithm.md applied to it (about
  26 min at ``--jobs 1`` on a shared machine). Run only when asked for.
- ``guard_test``: the guard grid's candidates on the held-out second halves of the 30% traces,
  after the fact, beside their largest Poisson gap from the ``guard`` part's JSON: the conflict
  between the p99 goal and the Poisson goal, measured; nothing is chosen from it. Run only when
  asked for.
- ``regime``: the grid of the regime memory of the burst-aware experts
  (``benchmarks/robust/regime.py``), on training seeds 1000-1019 only, with its selection rule
  applied (about 12 min at ``--jobs 1``, 5 at ``--jobs 2``). Run only when asked for.
- ``window``: the grid of the burst meter's window (``benchmarks/robust/window.py``), on the
  regime grid's training data, with its tail selection rule applied. Run only when asked for.
- ``replay``: ``robust`` (the default and the 80 ms/0.03 guard) and the tuned timeout on Poisson
  surrogates of the five halves of the Azure excerpt where robust loses the p99, each replayed
  like the half, on the recorded halves and on fresh Poisson arrivals at their rates
  (``benchmarks/robust/replay.py``): how far one realization of a half moves the p99 verdict
  (about 4 min at ``--jobs 2``). Run only when asked for.
- ``guard_rates``: every candidate of the guard grid on Poisson arrivals at the rates of the
  losing halves without an SLO penalty (25%, 30%, 150 requests/s, 50%), training seeds
  1000-1019, against the optimum and the timeout tuned on each trace's first half
  (``benchmarks/robust/guard_rates.py``): whether a setting within the Poisson goal reaches the
  timeout's tail at those rates; nothing is chosen from it. Run only when asked for.
- ``tail``: the optional tail rules of the portfolio (the tail term, burst-gated and always on,
  and the budgeted tail rule) on the goal traces, the Poisson loads and the MMPP; the tuned
  baselines of ``docs/results/robust/tuned/``. Run only when asked for.

Every cell pairs agents by seed (common random numbers). Usage::

    python benchmarks/robust_eval.py                      # all parts, 2 processes
    python benchmarks/robust_eval.py --parts mmpp --mmpp-seeds 40
    python benchmarks/robust_eval.py --help

It writes ``docs/results/robust.md`` (tables) and ``.json`` next to it, and prints where.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cli_parts import parse_parts  # noqa: E402
from benchmarks.proposed.common import display_path  # noqa: E402
from benchmarks.robust import guard, guard_rates, parts, regime, replay, window  # noqa: E402
from benchmarks.robust.common import write_results  # noqa: E402
from execution.backends import Backend  # noqa: E402
from execution.cli import add_execution_arguments, backend_spec_or_exit  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "results" / "robust.md"
PART_FUNCTIONS: dict[str, Callable[[argparse.Namespace, Backend, str], tuple[list[str], dict]]] = {
    "traces": parts.run_traces,
    "mmpp": parts.run_mmpp,
    "poisson": parts.run_poisson,
    "design": parts.run_design,
    "tail": parts.run_tail,
    "guard": guard.run_guard,
    "guard_test": guard.run_guard_test,
    "regime": regime.run_regime,
    "window": window.run_window,
    "replay": replay.run_replay,
    "guard_rates": guard_rates.run_guard_rates,
}
PARTS = tuple(PART_FUNCTIONS)
DEFAULT_PARTS = PARTS[:3]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python benchmarks/robust_eval.py",
        description="The robust proposed scheduler against tuned baselines on traces (tuned on the "
        "first half, evaluated on the second), an MMPP with a phase oracle and Poisson loads "
        "(see the module docstring).",
    )
    parser.add_argument(
        "--parts",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated, among {','.join(PARTS)} (default: {','.join(DEFAULT_PARTS)})",
    )
    parser.add_argument(
        "--traces",
        choices=("goal", "all"),
        default="goal",
        help="goal: each trace at its native rate, 30%% and 60%% of capacity; all: every trace scenario "
        "(default: goal)",
    )
    parser.add_argument(
        "--seeds", type=int, default=10, help="evaluation seeds 0..N-1 (traces, poisson) (default: 10)"
    )
    parser.add_argument(
        "--mmpp-seeds", type=int, default=20, help="evaluation seeds 0..N-1 of the mmpp part (default: 20)"
    )
    parser.add_argument(
        "--horizon-s", type=float, default=60.0, help="episode length (s): traces, poisson (default: 60)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"Markdown file to write (and .json) (default: {display_path(DEFAULT_OUT)})",
    )
    add_execution_arguments(parser, default_jobs=2)
    args = parser.parse_args(argv)
    chosen = parse_parts(parser, args.parts, PARTS)
    if min(args.seeds, args.mmpp_seeds) < 2:
        parser.error("--seeds and --mmpp-seeds must be >= 2")
    if not args.horizon_s > 0:
        parser.error("--horizon-s must be > 0")
    execution = backend_spec_or_exit(parser, args)
    command = "python benchmarks/robust_eval.py" + (" " + shlex.join(argv) if argv else "")
    lines = [
        "# Robust proposed scheduler: traces, bursts and Poisson loads",
        "",
        f'Produced by `{command}` (docs/algorithm.md, "Robust to bursts", explains every table).',
        "",
    ]
    data: dict[str, Any] = {
        "command": command,
        "settings": {
            "traces": args.traces,
            "seeds": args.seeds,
            "mmpp_seeds": args.mmpp_seeds,
            "horizon_s": args.horizon_s,
        },
    }
    with execution.create() as backend:
        print(f"episodes on {backend.describe()}", flush=True)
        for part in chosen:
            start = time.perf_counter()
            print(f"part {part} ...", flush=True)
            part_lines, data[part] = PART_FUNCTIONS[part](args, backend, command)
            lines += part_lines
            print(f"part {part} done in {time.perf_counter() - start:.0f} s", flush=True)
    out = Path(args.out)
    write_results(out, lines, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
