"""What a verification run found: :class:`VerificationReport`, the result of
:func:`formal.verification.run_verification`, and the dataclasses of its rows, which
:mod:`formal.report` turns into Markdown, JSON and terminal tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from formal.band import EstimateBand
from formal.check import ChoiceFigures, OptimumResult, PolicyFigures, SafetyResult
from formal.discrete import TickModel
from formal.real_agents import RealAgentResult
from formal.settings import Settings
from formal.ticksim import TickSimResult

__all__ = [
    "CROSS_CHECK_FIELDS",
    "BandRow",
    "ContinuousResult",
    "PolicyRow",
    "SmdpComparison",
    "VerificationReport",
]


CROSS_CHECK_FIELDS = (
    "throughput_per_s",
    "utilisation",
    "mean_queue",
    "latency_ms",
    "mean_batch",
    "cost_per_request",
)
"""Quantities compared between Storm and the simulators (every figure of a policy's row that both
measure); the cross-checks' largest differences and tolerances cover all six."""


@dataclass
class ContinuousResult:
    """Figures of a policy in the event-driven simulator (:func:`simulate_continuous`)."""

    throughput_per_s: float
    utilisation: float
    mean_queue: float
    mean_batch: float
    latency_ms: float
    cost_per_request: float
    horizon_s: float


@dataclass
class PolicyRow:
    """Everything computed for one policy."""

    key: str
    name: str
    source: str
    same_as: str | None = None
    figures: PolicyFigures | None = None
    ticksim: TickSimResult | None = None
    continuous: ContinuousResult | None = None
    error: str | None = None

    def deviation(self, other: Any) -> float:
        """Largest relative difference between Storm and ``other`` over CROSS_CHECK_FIELDS."""
        if self.figures is None or other is None:
            return math.nan
        return max(
            abs(getattr(other, f) - getattr(self.figures, f)) / abs(getattr(self.figures, f))
            for f in CROSS_CHECK_FIELDS
            if getattr(self.figures, f)
        )


@dataclass
class SmdpComparison:
    """Storm's discrete optimum against the continuous-time SMDP optimum of agents.optimal.

    :ivar cost_whole: SMDP optimum cost per request with whole-queue dispatches (the MDP's
        actions); ``cost_any``: with any batch size.
    :ivar agreement: fraction of the optimal scheduler's decisions (decision states weighted by
        how often the tick simulator visits them) where the SMDP policy decides the same.
    :ivar q_max: the SMDP's 99.99% queue quantile (range of the policy descriptions).
    :ivar storm_policy: Storm's decisions by queue length, each at its most visited age.
    """

    cost_whole: float
    cost_any: float
    q_max: int
    agreement: float
    storm_policy: str
    smdp_policy: str


@dataclass
class BandRow:
    """The band scheduler's rows with its estimate within one band (:mod:`formal.band`).

    :ivar rows: per phase, a summary of the rows the band allows.
    :ivar same_as: key of the (c) policy whose table equals these rows in every state (the
        figures are then that policy's).
    """

    factor: float
    scheduler: str
    rows: list[str]
    figures: ChoiceFigures | None = None
    same_as: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return EstimateBand(self.factor).label


@dataclass
class VerificationReport:
    """Results of :func:`run_verification`, timings in seconds."""

    settings: Settings
    model: TickModel
    safety: SafetyResult | None = None
    optimum: OptimumResult | None = None
    smdp: SmdpComparison | None = None
    rows: list[PolicyRow] = field(default_factory=list)
    bands: list[BandRow] = field(default_factory=list)
    portfolio: list[BandRow] = field(default_factory=list)
    portfolio_experts: list[BandRow] = field(default_factory=list)
    real_agents: list[RealAgentResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    total_s: float = 0.0
    cpu_s: float = 0.0
