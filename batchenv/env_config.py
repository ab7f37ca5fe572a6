"""Options of the Gymnasium environment that are not part of the served system:
:class:`EnvConfig` (the ``env`` section), checked. Plain data: no Gymnasium here.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchenv.config_fields import ConfigError, _number_list, _positive, short_repr

__all__ = [
    "RATE_SCALES",
    "SLO_WAIT_MODES",
    "EnvConfig",
]

RATE_SCALES = ("linear", "log")
SLO_WAIT_MODES = ("always", "penalised")
"""``env.observe_slo_wait``: when the oldest-wait-over-the-bound entry reads the wait."""


@dataclass(frozen=True)
class EnvConfig:
    """Options of the Gymnasium environment that are not part of the served system.

    :param batch_choice: if true the agent also chooses the batch size from the table sizes.
    :param rate_ewma_tau_s: time constant (s) of the arrival-rate and utilisation estimates.
    :param rate_scale: how the observation reports arrival rates: ``"linear"`` (rate / max
        throughput, the default) or ``"log"`` (log(1 + rate x 1 s) / log(1 + 2 x max throughput x
        1 s)), which resolves 1/s from 10/s as well as 100/s from 1000/s.
    :param extra_rate_taus_s: more arrival-rate estimates with these time constants (s), each one
        more observation entry after the workers' (e.g. ``[0.05, 10]``: a fast one that sees a
        burst, a slow one that sees the level of a low rate); empty by default.
    :param rate_ewma_unbiased: start the rate and utilisation estimates without their bias to 0:
        before ``t >> tau`` an estimate is the average since the episode began
        (:class:`~batchenv.estimators.EwmaRate`), not an average with zero; default false.
    :param observe_slo: two more observation entries, last: the episode's SLO penalty as a
        share of itself plus the latency cost of ``max_wait_ms``, and the oldest wait relative
        to the episode's SLO bound (for agents trained across objectives,
        ``reward.slo_probability``); default false.
    :param observe_slo_wait: with ``observe_slo``, when the second entry reads the oldest wait
        over the episode's bound: ``"always"`` (the default) or ``"penalised"`` (only in episodes
        with an SLO penalty, ``w_slo > 0``; 0 in the others, where the bound costs nothing).
    """

    batch_choice: bool = False
    rate_ewma_tau_s: float = 1.0
    rate_scale: str = "linear"
    extra_rate_taus_s: tuple[float, ...] = ()
    rate_ewma_unbiased: bool = False
    observe_slo: bool = False
    observe_slo_wait: str = "always"

    def validate(self, path: str) -> EnvConfig:
        """The env options, checked; ConfigError naming the field under ``path`` otherwise."""
        if not isinstance(self.batch_choice, bool):
            raise ConfigError(
                f"{path}.batch_choice", f"must be true or false, got {short_repr(self.batch_choice)}"
            )
        if self.rate_scale not in RATE_SCALES:
            raise ConfigError(
                f"{path}.rate_scale", f"must be one of {list(RATE_SCALES)}, got {short_repr(self.rate_scale)}"
            )
        if self.observe_slo_wait not in SLO_WAIT_MODES:
            raise ConfigError(
                f"{path}.observe_slo_wait",
                f"must be one of {list(SLO_WAIT_MODES)}, got {short_repr(self.observe_slo_wait)}",
            )
        for name in ("rate_ewma_unbiased", "observe_slo"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{path}.{name}", f"must be true or false, got {short_repr(getattr(self, name))}"
                )
        taus = _number_list(f"{path}.extra_rate_taus_s", self.extra_rate_taus_s, min_len=0)
        if len(taus) > 8:
            raise ConfigError(f"{path}.extra_rate_taus_s", f"at most 8 time constants, got {len(taus)}")
        for i, tau in enumerate(taus):
            _positive(f"{path}.extra_rate_taus_s[{i}]", tau)
        return EnvConfig(
            batch_choice=self.batch_choice,
            rate_ewma_tau_s=_positive(f"{path}.rate_ewma_tau_s", self.rate_ewma_tau_s),
            rate_scale=self.rate_scale,
            extra_rate_taus_s=taus,
            rate_ewma_unbiased=self.rate_ewma_unbiased,
            observe_slo=self.observe_slo,
            observe_slo_wait=self.observe_slo_wait,
        )
