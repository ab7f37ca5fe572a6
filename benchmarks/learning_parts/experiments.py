"""What the learning benchmark trains: :class:`Experiment` (one ``train.py`` command, trained
once per seed) and the table of them, :data:`EXPERIMENTS`, with the default and the compared
ones."""

from __future__ import annotations

from dataclasses import dataclass

from agents.hyperparameters import load_hyperparams

TRAINING_EVALUATION = (
    "poisson_rate_1,poisson_rate_10,default,poisson_50,high_load,bursty,"
    "azure_trace_native_train,mooncake_conv_30_train,azure_trace_60_train"
)
"""What the runs evaluate on while training (model selection): Poisson at 1 to 400/s, the bursty
MMPP and the *training* halves of three trace scenarios; never a ``_test`` half."""
SLO_EVALUATION = f"{TRAINING_EVALUATION},azure_trace_slo_train"
"""The training evaluation of the experiments across objectives: :data:`TRAINING_EVALUATION` and
the first half of the SLO scenario (``azure_trace_slo``: 0.2 per request over 80 ms)."""
WIDE_LAYERS = "policy_kwargs:{net_arch: [256, 256]}"
"""The ``--hyperparams`` override of the wide experiments: two hidden layers of 256 units in the
policy and the value networks (64 in agents/hyperparams/ppo.yml)."""

ENTROPY_BONUS = "ent_coef:0.01"
"""The ``--hyperparams`` override of the entropy experiment: SB3's entropy coefficient (0 in
agents/hyperparams/ppo.yml)."""
SMALL_ENTROPY_BONUS = "ent_coef:0.001"
"""The override of the small-entropy experiment: a tenth of :data:`ENTROPY_BONUS`."""


@dataclass(frozen=True)
class Experiment:
    """One training setup: ``train.py --algo <algo> <flags>``, trained once per seed."""

    name: str
    algo: str
    flags: tuple[str, ...]
    description: str

    def command(self, seeds: str, runs_dir: str, jobs: int) -> list[str]:
        """The train.py command line that trains every seed of the experiment."""
        return [
            "python",
            "train.py",
            "--algo",
            self.algo,
            *self.flags,
            "--seeds",
            seeds,
            "--jobs",
            str(jobs),
            "-f",
            runs_dir,
            "--run-name",
            self.name,
            "--no-progress",
        ]


def _mixture_flags(
    steps: int,
    *hyperparams: str,
    env: str = "default_mixture",
    eval_scenarios: str = TRAINING_EVALUATION,
) -> tuple[str, ...]:
    flags = (
        "--env",
        env,
        "-n",
        str(steps),
        "--eval-freq",
        "100000",
        "--eval-scenarios",
        eval_scenarios,
        "--eval-horizon-s",
        "30",
        "--save-freq",
        "250000",
    )
    return (*flags, "--hyperparams", *hyperparams) if hyperparams else flags


def _entry_overrides(algo: str, entry: str = "default_mixture") -> tuple[str, ...]:
    """``--hyperparams`` overrides (``KEY:VALUE``, sorted by key) that give a run on another env
    file, which train.py looks up under ``default``, the hyperparameters of ``entry`` of
    ``agents/hyperparams/<algo>.yml``: the keys where the two entries differ."""
    default, own = load_hyperparams(algo, "default"), load_hyperparams(algo, entry)
    return tuple(
        f"{key}:{str(value).lower() if isinstance(value, bool) else value}"
        for key, value in sorted(own.items())
        if default.get(key) != value
    )


EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        Experiment(
            "ppo_mixture",
            "ppo",
            _mixture_flags(1_000_000),
            "PPO on default_mixture (agents/hyperparams/ppo.yml, entry default_mixture: reward per "
            "request, 1 s time discount, no centring), 1M steps",
        ),
        Experiment(
            "dqn_mixture",
            "dqn",
            _mixture_flags(1_000_000),
            "DQN on default_mixture (agents/hyperparams/dqn.yml, entry default_mixture: reward per "
            "request, 1 s time discount, no centring), 1M steps",
        ),
        Experiment(
            "ppo_mixture_plain_reward",
            "ppo",
            _mixture_flags(300_000, "reward_per_request:false"),
            "ablation: ppo_mixture without the reward per request (the plain regret), 300k steps "
            "(compared with ppo_mixture's training evaluation at the same step)",
        ),
        Experiment(
            "ppo_mixture_observation",
            "ppo",
            _mixture_flags(
                300_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_observation.yaml",
            ),
            "ablation: ppo_mixture with rates on a log scale, 50 ms and 10 s rate estimates and "
            "unbiased estimates (benchmarks/configs/default_mixture_observation.yaml), 300k steps "
            "(compared with ppo_mixture's training evaluation at the same step)",
        ),
        Experiment(
            "ppo_mixture_spikes",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_spikes.yaml",
            ),
            "ppo_mixture trained on default_mixture plus a sixth component, sharp spikes on a quiet "
            "server (400x bursts of 100 ms every 5 s on average, mean 1-30 requests/s; "
            "benchmarks/configs/default_mixture_spikes.yaml; the hyperparameters of the "
            "default_mixture entry), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high.yaml",
            ),
            "ppo_mixture trained on default_mixture plus a sixth component, Poisson at 150-600 "
            "requests/s drawn uniformly (25% of the episodes above 250/s instead of 12%; "
            "benchmarks/configs/default_mixture_high.yaml; the hyperparameters of the "
            "default_mixture entry), 1M steps",
        ),
        Experiment(
            "ppo_mixture_slo",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_slo.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high across objectives: 30% of the episodes draw an SLO bound (50-250 ms) "
            "and a penalty per late request (0.05-0.5), and the observation shows the episode's "
            "objective (benchmarks/configs/default_mixture_slo.yaml); the training evaluation "
            "adds azure_trace_slo_train (the SLO scenario's first half); the hyperparameters of "
            "the default_mixture entry; 1M steps",
        ),
        Experiment(
            "ppo_mixture_slo_low",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_slo_low.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_slo with 15% of the episodes drawing an SLO objective instead of 30% "
            "(benchmarks/configs/default_mixture_slo_low.yaml), 1M steps",
        ),
        Experiment(
            "ppo_mixture_slo_gated",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_slo_gated.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_slo with the oldest-wait entry of the objective read only in the episodes "
            "with an SLO penalty, 0 in the others (env.observe_slo_wait: penalised; "
            "benchmarks/configs/default_mixture_slo_gated.yaml), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_observed",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high_observed.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ablation: ppo_mixture_slo without the SLO episodes (its observation and training "
            "evaluation on default_mixture_high; benchmarks/configs/default_mixture_high_observed.yaml), "
            "1M steps",
        ),
        Experiment(
            "ppo_mixture_high_blank",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high_blank.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ablation: ppo_mixture_high_observed with both entries of the objective reading 0 "
            "(env.observe_slo_wait: penalised, no SLO episode; "
            "benchmarks/configs/default_mixture_high_blank.yaml): what ppo_mixture_high_slo_eval "
            "sees, on a network with two more inputs, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_slo_eval",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ablation: ppo_mixture_high with the SLO scenario's first half in its training "
            "evaluation, nothing else changed (ppo_mixture_high_observed without the observation "
            "entries), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_short",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high_short.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_slo_eval with 10 s training episodes instead of 60 s, six times as "
            "many draws of the workload per step (benchmarks/configs/default_mixture_high_short.yaml), "
            "1M steps",
        ),
        Experiment(
            "ppo_mixture_high_wide",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                WIDE_LAYERS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_slo_eval with two hidden layers of 256 units instead of 64 in the "
            "policy and the value networks, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_short_wide",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                WIDE_LAYERS,
                env="benchmarks/configs/default_mixture_high_short.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_short and ppo_mixture_high_wide together: 10 s training episodes and "
            "two hidden layers of 256 units, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_entropy",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                ENTROPY_BONUS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_slo_eval with an entropy bonus (ent_coef 0.01 instead of 0): the "
            "policy keeps trying the other models and batch choices for longer, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_entropy_small",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                SMALL_ENTROPY_BONUS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_entropy with a tenth of its bonus (ent_coef 0.001), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_entropy_wide",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                ENTROPY_BONUS,
                WIDE_LAYERS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_entropy and ppo_mixture_high_wide together: the entropy bonus 0.01 and "
            "two hidden layers of 256 units, 1M steps",
        ),
        Experiment(
            "dqn_mixture_high",
            "dqn",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("dqn"),
                env="benchmarks/configs/default_mixture_high.yaml",
            ),
            "dqn_mixture trained on default_mixture_high (ppo_mixture_high's mixture: 25% of the "
            "episodes above 250/s; the hyperparameters of the default_mixture entry), 1M steps",
        ),
    )
}
DEFAULT_EXPERIMENTS = ("ppo_mixture", "dqn_mixture", "ppo_mixture_spikes")
ABLATIONS = ("ppo_mixture_plain_reward", "ppo_mixture_observation")
"""Experiments compared with ``ppo_mixture`` by their training evaluation only (not assessed)."""
