"""What a schedule is scored against: the reward weights (:class:`RewardConfig`, the ``reward``
section) and an operator's latency objective on top of the score (:class:`LatencyTarget`, the
``latency_target`` field), checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batchenv.config_fields import (
    ConfigError,
    _non_negative,
    _number,
    _optional_range,
    _positive,
    short_repr,
)

__all__ = [
    "LatencyTarget",
    "RewardConfig",
]


@dataclass(frozen=True)
class RewardConfig:
    """Reward weights. Per request: ``quality - w_latency_per_s * latency_s``, minus ``w_slo`` if it
    misses its SLO; a dropped request scores ``-w_drop``.

    Training across objectives: with ``slo_probability`` > 0, each episode draws (from the
    episode's generator, before its arrivals) whether it has an SLO objective of its own; if so,
    its SLO bound (ms) and penalty are drawn uniformly from ``slo_ms_range`` and
    ``w_slo_range`` and replace the system's ``slo_ms`` and ``w_slo`` for that episode: the
    reward, the per-request scores and the count of late requests use them, and
    ``env.observe_slo`` shows them to the agent. A training option: a score per request computed
    from the totals (``EpisodeMetrics.score_per_request``) weighs the late requests with the
    system's ``w_slo``, so evaluate on scenarios without drawn objectives.

    :param w_latency_per_s: cost of one second of latency (default 1).
    :param w_slo: penalty per request that misses ``slo_ms`` (default 0).
    :param w_drop: penalty per dropped request (default 1).
    :param slo_probability: share of episodes with a drawn SLO objective, in [0, 1] (default 0:
        every episode has the system's own).
    :param slo_ms_range: [low, high] of the drawn SLO bound (ms), 0 < low <= high; required
        with ``slo_probability`` > 0.
    :param w_slo_range: [low, high] of the drawn penalty per late request (score units),
        0 <= low <= high; required with ``slo_probability`` > 0.
    """

    w_latency_per_s: float = 1.0
    w_slo: float = 0.0
    w_drop: float = 1.0
    slo_probability: float = 0.0
    slo_ms_range: tuple[float, float] | None = None
    w_slo_range: tuple[float, float] | None = None

    def validate(self, path: str) -> RewardConfig:
        """The weights, checked; ConfigError naming the field under ``path`` otherwise."""
        probability = _non_negative(f"{path}.slo_probability", self.slo_probability)
        if probability > 1:
            raise ConfigError(f"{path}.slo_probability", f"must be in [0, 1], got {short_repr(probability)}")
        slo_ms_range = _optional_range(f"{path}.slo_ms_range", self.slo_ms_range, "ms", positive=True)
        w_slo_range = _optional_range(f"{path}.w_slo_range", self.w_slo_range, "score units")
        if probability > 0:
            for name, value in (("slo_ms_range", slo_ms_range), ("w_slo_range", w_slo_range)):
                if value is None:
                    raise ConfigError(f"{path}.{name}", "is required with slo_probability > 0 ([low, high])")
        return RewardConfig(
            w_latency_per_s=_non_negative(f"{path}.w_latency_per_s", self.w_latency_per_s),
            w_slo=_non_negative(f"{path}.w_slo", self.w_slo),
            w_drop=_non_negative(f"{path}.w_drop", self.w_drop),
            slo_probability=probability,
            slo_ms_range=slo_ms_range,
            w_slo_range=w_slo_range,
        )


_TARGET_TEXT = re.compile(
    r"^\s*(?:p(?P<pct>[0-9]*\.?[0-9]+)|(?P<att>[0-9]*\.?[0-9]+)\s*%)\s*"
    r"(?:<=\s*(?P<bound>[0-9]*\.?[0-9]+)\s*(?:ms)?)?\s*$"
)


@dataclass(frozen=True)
class LatencyTarget:
    """A latency objective as an operator states it, on top of the score: either a percentile
    and a bound (``percentile: 99, bound_ms: 100``: p99 <= 100 ms) or an attainment of a bound
    (``attainment: 0.95``: 95% of the requests within ``bound_ms``, by default the system's
    ``slo_ms``).

    Both forms are one requirement: at least a fraction :attr:`quantile` of the requests
    finishes within the bound, dropped requests counting as late (the definition of
    ``slo_attainment`` in :mod:`batchenv.metrics`). Exactly one of ``percentile`` and
    ``attainment`` is given.

    :param percentile: the percentile of the latency that must stay within ``bound_ms``, in
        (0, 100) (99 = p99).
    :param bound_ms: the latency bound (ms) > 0; required with ``percentile``; with
        ``attainment`` it defaults to the system's ``slo_ms``.
    :param attainment: the fraction of requests that must finish within the bound, in (0, 1).
    """

    percentile: float | None = None
    bound_ms: float | None = None
    attainment: float | None = None

    def validate(self, path: str) -> LatencyTarget:
        """The target, checked; ConfigError naming the field under ``path`` otherwise."""
        if (self.percentile is None) == (self.attainment is None):
            raise ConfigError(
                path,
                "give exactly one of percentile (with bound_ms, e.g. 99 and 100 for p99 <= 100 ms) "
                "or attainment (a fraction in (0, 1) of requests within bound_ms or slo_ms)",
            )
        percentile = attainment = bound = None
        if self.percentile is not None:
            percentile = _number(f"{path}.percentile", self.percentile)
            if not 0 < percentile < 100:
                raise ConfigError(f"{path}.percentile", f"must be in (0, 100), got {short_repr(percentile)}")
            if self.bound_ms is None:
                raise ConfigError(
                    f"{path}.bound_ms", "is required with percentile (a latency bound in ms > 0)"
                )
        if self.attainment is not None:
            attainment = _number(f"{path}.attainment", self.attainment)
            if not 0 < attainment < 1:
                raise ConfigError(f"{path}.attainment", f"must be in (0, 1), got {short_repr(attainment)}")
        if self.bound_ms is not None:
            bound = _positive(f"{path}.bound_ms", self.bound_ms)
        return LatencyTarget(percentile=percentile, bound_ms=bound, attainment=attainment)

    @classmethod
    def parse(cls, text: str, path: str = "latency_target") -> LatencyTarget:
        """A target from its short form: ``p99<=100ms`` (a percentile and a bound),
        ``95%<=250ms`` (an attainment and a bound) or ``95%`` (an attainment of ``slo_ms``);
        ConfigError naming ``path`` otherwise."""
        match = _TARGET_TEXT.match(text) if isinstance(text, str) and len(text) <= 64 else None
        if match is None:
            raise ConfigError(
                path,
                f"cannot read latency target {short_repr(text)}; expected e.g. p99<=100ms (a "
                "percentile and a bound), 95%<=250ms or 95% (of requests within slo_ms)",
            )
        bound = float(match["bound"]) if match["bound"] else None
        if match["pct"] is not None:
            return cls(percentile=float(match["pct"]), bound_ms=bound).validate(path)
        return cls(attainment=float(match["att"]) / 100.0, bound_ms=bound).validate(path)

    @property
    def quantile(self) -> float:
        """The fraction of requests that must finish within the bound, in (0, 1)."""
        return self.percentile / 100.0 if self.percentile is not None else float(self.attainment or 0.0)

    def bound_for(self, slo_ms: float) -> float:
        """The latency bound (ms): ``bound_ms``, or the system's ``slo_ms`` when not given."""
        return self.bound_ms if self.bound_ms is not None else float(slo_ms)

    def describe(self, slo_ms: float) -> str:
        """``p99 <= 100 ms`` or ``95% within 250 ms``."""
        bound = self.bound_for(slo_ms)
        if self.percentile is not None:
            return f"p{self.percentile:g} <= {bound:g} ms"
        return f"{100 * self.quantile:g}% within {bound:g} ms"

    def short(self, slo_ms: float) -> str:
        """The short form :meth:`parse` reads: ``p99<=100ms``, ``95%<=250ms``."""
        bound = self.bound_for(slo_ms)
        if self.percentile is not None:
            return f"p{self.percentile:g}<={bound:g}ms"
        return f"{100 * self.quantile:g}%<={bound:g}ms"

    def slug(self, slo_ms: float) -> str:
        """A short name for files: ``p99-100ms``, ``att95-250ms``."""
        bound = self.bound_for(slo_ms)
        if self.percentile is not None:
            return f"p{self.percentile:g}-{bound:g}ms"
        return f"att{100 * self.quantile:g}-{bound:g}ms"
