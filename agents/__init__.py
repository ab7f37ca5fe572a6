"""Schedulers: baselines, the exact optimum, the proposed scheduler and learned agents."""
