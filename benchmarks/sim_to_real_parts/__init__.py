"""The parts of the sim-to-real study (``python benchmarks/sim_to_real.py``, which keeps the command
line and ``main``), one job each:

- :mod:`benchmarks.sim_to_real_parts.prepare`: the set-up: calibration, scenarios, agents, and the
  command line's files checked before any work;
- :mod:`benchmarks.sim_to_real_parts.lifecycle`: the work folder and a clean stop on SIGTERM/SIGINT;
- :mod:`benchmarks.sim_to_real_parts.runs`: running, simulated and measured, into each
  (scenario, agent) :class:`~benchmarks.sim_to_real_parts.runs.Cell`;
- :mod:`benchmarks.sim_to_real_parts.checks`: the validity gate, saturated cells, the flags and
  the failures, on the results' JSON form;
- :mod:`benchmarks.sim_to_real_parts.tables`: the report's Markdown tables;
- :mod:`benchmarks.sim_to_real_parts.figures`: the report's figures;
- :mod:`benchmarks.sim_to_real_parts.report`: the JSON and the Markdown rendered from it.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results"
