"""The parts of the proposed scheduler's benchmarks (``python benchmarks/proposed_eval.py``), one
module each, sharing :mod:`benchmarks.proposed.common` (the episode grid on the execution layer,
the gap, formatting). Each part's ``run(args, figures, backend)`` returns its Markdown lines and
its data for the JSON file."""
