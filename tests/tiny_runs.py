"""The command line of a tiny, quiet PPO run of train.py (a few hundred steps), shared by the
tests of train.py's options, sweeps and searches."""

from __future__ import annotations

from pathlib import Path

TINY_PPO_HYPERPARAMS = ["--hyperparams", "n_steps:128", "batch_size:64", "n_epochs:1"]
"""PPO hyperparameters small enough for a run of 256 steps (``--hyperparams`` and its items)."""


def tiny_ppo_argv(runs: Path, *flags: str) -> list[str]:
    """train.py's flags for 256 steps of PPO on one env into ``runs``, evaluating (when
    ``--eval-freq`` is among ``flags``) on one seed for 2 s, without checkpoints unless
    ``--save-freq`` is given; ``flags`` come last."""
    return [
        "--algo",
        "ppo",
        "-n",
        "256",
        "--n-envs",
        "1",
        "--save-freq",
        "0",
        "--eval-horizon-s",
        "2",
        "--eval-seeds",
        "1",
        "-f",
        str(runs),
        "--no-progress",
        "--verbose",
        "0",
        *flags,
    ]
