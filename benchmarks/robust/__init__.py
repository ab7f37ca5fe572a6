"""The parts of the robust scheduler's benchmarks (``python benchmarks/robust_eval.py``):
:mod:`benchmarks.robust.parts` (traces, MMPP, Poisson, design), sharing
:mod:`benchmarks.robust.common` (agents, episodes on the execution layer, statistics)."""
