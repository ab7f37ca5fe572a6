"""The parts of the learning benchmark (``python benchmarks/learning.py``, which keeps the command
line and ``main``), one job each:

- :mod:`benchmarks.learning_parts.experiments`: what is trained (:class:`Experiment`, the table);
- :mod:`benchmarks.learning_parts.runs`: training the sweeps, reading their run folders;
- :mod:`benchmarks.learning_parts.assessment`: the tuned timeouts, the episodes, the shipping gate
  and the assessment of the trained models on fresh seeds;
- :mod:`benchmarks.learning_parts.tables`: the Markdown report;
- :mod:`benchmarks.learning_parts.summary`: the summary in docs/rl.md;
- :mod:`benchmarks.learning_parts.plot`: the learning curves.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
