"""The objective studies: latency targets, frontiers and the sensitivity of the conclusions to
the cost weights (``benchmarks/slo_targets.py``, ``benchmarks/frontiers.py``,
``benchmarks/sensitivity.py``)."""
