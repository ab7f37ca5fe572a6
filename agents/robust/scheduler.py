"""The robust proposed scheduler: a burst-aware SMDP table, protected by a shadow-evaluated
portfolio of alternatives (docs/algorithm.md, "Robust to bursts").

    scheduler = RobustProposed(config)         # builds its tables (cached per system)
    sim = simulate(config, scheduler, seed)

The real server follows the burst-aware table (:class:`agents.robust.burst.BurstAwareProposed`)
unless another expert of the portfolio has cost significantly less on the arrivals seen so far
(:class:`agents.robust.portfolio.ExpertPortfolio`): the plain table (Poisson risk), the
burst-aware table with a drop detector (agile after the end of a burst) and six Triton-style
timeouts on the two fastest models. Every expert runs in a shadow simulation on the real
arrivals, so the real cost is, exactly, the followed experts' shadow costs spliced at the
switches, and the regret against any expert is measured online.

The table experts also guard the latency tail (:func:`tail_guarded`: on scenarios without an
SLO penalty their SLO guard protects :data:`TAIL_GUARD_MS`), and the burst-aware ones raise their
rate estimate to the rate a significant backlog implies (:data:`BACKLOG_LLR`).

Ablations (constructor flags): ``portfolio=False`` runs the burst-aware table alone;
``burst_tilt=False`` uses the plain proposed table instead of the burst-aware one (as the start
expert, and drops the plain-table expert); ``timeouts=False`` and ``agile=False`` remove those
experts; ``tail_guard=False`` and ``backlog_llr=0`` remove the tail guard and the backlog-aware
estimate. Two tail rules were tried and are off by default (docs/algorithm.md, "Robust to
bursts", section 3): the tail term (``tilted=True, tail_tolerance=...``) and the budgeted tail
rule (``guarded=True, tail_budget=TAIL_BUDGET``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from agents.baselines import Timeout
from agents.proposed import Proposed, latency_weight_scaled
from agents.robust.burst import BurstAwareProposed, checked_number
from agents.robust.portfolio import ExpertPortfolio
from batchenv.config import SystemConfig
from batchenv.timing import ServiceTable

__all__ = [
    "AGILE_ESTIMATOR",
    "BACKLOG_LLR",
    "BURST_HISTORY_S",
    "BURST_KEYS",
    "BURST_WINDOW_S",
    "GUARD_EXPERTS",
    "REGIME_HOLD_S",
    "REGIME_LLR",
    "TAIL_BUDGET",
    "TAIL_GUARD_MS",
    "TAIL_GUARD_PENALTY",
    "TAIL_SIGMA",
    "TAIL_TOLERANCE",
    "TILTED_EXPERTS",
    "TIMEOUT_EXPERTS",
    "RobustProposed",
    "expert_catalogue",
    "tail_guarded",
]

AGILE_ESTIMATOR = {"detect_drops": True, "cusum_threshold": 7.0}
"""Rate-estimator settings of the agile expert: drops restart the estimate too, and the CUSUM
alarm level is 7 instead of 10 (:class:`agents.proposed.RateEstimator`)."""

BURST_KEYS = ("tilt", "tilts", "burst_window_s", "burst_memory", "backlog_llr", "regime_hold_s", "regime_llr")
"""Keyword arguments of :class:`agents.robust.burst.BurstAwareProposed` that the plain table
experts do not take."""

BACKLOG_LLR = 6.0
"""Default ``backlog_llr`` of the burst-aware experts: the backlog raises the rate estimate when
its Poisson log-likelihood ratio against the estimate exceeds 6
(:meth:`agents.robust.burst.BurstAwareProposed._estimate_rate`). Chosen on the MMPP's training
seeds and the Poisson loads (docs/algorithm.md, "Robust to bursts", section 4)."""

BURST_WINDOW_S = 0.5
"""Default window (s) of the burst-aware experts' burst meter (``burst_window_s`` of
:class:`agents.robust.burst.BurstAwareProposed`)."""
BURST_HISTORY_S = 20.0
"""History (s) the burst meter averages over: its memory is this many seconds of windows."""
REGIME_HOLD_S = 0.25
"""Default ``regime_hold_s`` of the burst-aware experts (:class:`agents.robust.burst
.BurstAwareProposed`): how long (s) after a jump up the rate estimate is held at least at the
previous high regime's rate; 0: off. Chosen with :data:`REGIME_LLR` by the rule of
docs/algorithm.md ("Robust to bursts", section 4) on training data only (``python
benchmarks/robust_eval.py --parts regime``)."""

REGIME_LLR = 4.0
"""Default ``regime_llr`` of the burst-aware experts: the level of the CUSUM that detects a return
to the previous high regime's rate; 0: only the estimator's own alarms."""

TAIL_GUARD_MS = 65.0
"""Latency (ms) the tail guard of the table experts protects on scenarios without an SLO penalty
(``reward.w_slo == 0``): the SLO guard of :class:`agents.proposed.Proposed` with
``guard_slo_ms``. Chosen with :data:`TAIL_GUARD_PENALTY` by the rule of docs/algorithm.md ("Robust
to bursts", section 4) on training data only: every Poisson load of the suite and 173/s, and the
30%-load traces' first halves, seeds 1000-1019 (``python benchmarks/robust_eval.py --parts
guard``)."""

TAIL_GUARD_PENALTY = 0.01
"""Price (score units) per request the tail guard expects to finish later than
:data:`TAIL_GUARD_MS`: ``guard_penalty`` of :class:`agents.proposed.Proposed`. It only steers the
guard's choice of model and the end of waits; the scenario's score is unchanged."""

TAIL_BUDGET = 0.0025
"""The ``tail_budget`` measured in docs/algorithm.md: half the 0.5% no-regression margin on
Poisson arrivals (the other half is the table's own estimation noise there)."""

GUARD_EXPERTS = ((78, 0.02), (75, 0.02), (72, 0.02), (70, 0.02), (65, 0.03), (65, 0.05))
"""(latency ms, price per late request) of the guarded experts of the budgeted tail rule: the
start expert with a stronger tail guard than :data:`TAIL_GUARD_MS` at :data:`TAIL_GUARD_PENALTY`,
a ladder of longer waits cut and more fast-model batches."""

TIMEOUT_EXPERTS = ((0, 2, 1.0), (0, 2, 10.0), (0, 4, 5.0), (0, 12, 10.0), (1, 1, 1.0), (1, 4, 2.0))
"""Timeout experts as (speed rank of the model: 0 fastest, preferred batch size, queue delay ms)."""

TILTED_EXPERTS = (1.1, 1.25, 1.35, 1.5, 2.0)
"""Latency-weight multipliers kappa of the fixed latency-tilted table experts (the plain
proposed table solved with ``kappa * w_latency_per_s``): cheaper tails than the table's, for the
tail term."""

TAIL_SIGMA = 0.05
"""The tail term is on while the burst meter of the start expert reads more extra-Poisson
variability than this (:class:`agents.robust.burst.BurstMeter`; it reads 0.00-0.01 on Poisson
arrivals and 0.05-0.19 on the shipped traces at 0.5-s windows). On Poisson arrivals the table is
the optimum, and its latency tail is part of the price of that optimum."""

TAIL_TOLERANCE = 0.02
"""Default ``tail_tolerance``: one bin of the shadows' latency histograms (2% apart), the
resolution at which their p99 latencies are compared."""

Factory = Callable[[SystemConfig], Any]


def _timeout(config: SystemConfig, *, model: int, batch: int, delay_ms: float) -> Timeout:
    """A timeout expert: dispatch on ``model`` at ``batch`` waiting or after ``delay_ms``."""
    return Timeout(config, preferred_batch_size=batch, max_queue_delay_ms=delay_ms, model=model)


def _tilted(config: SystemConfig, *, kappa: float, proposed: dict[str, Any]) -> Proposed:
    """A table expert solved with the latency weight times ``kappa`` (its cost is still measured
    with the system's own weights, by the shadow)."""
    return Proposed(latency_weight_scaled(config, kappa), **proposed)


def _models_by_speed(config: SystemConfig) -> list[int]:
    """Model indices, fastest first (service time of a full batch)."""
    service = ServiceTable(config).service_s
    return sorted(range(config.n_models), key=lambda m: service[m][config.max_batch_size])


def expert_catalogue(
    config: SystemConfig,
    proposed: dict[str, Any],
    *,
    burst_tilt: bool = True,
    agile: bool = True,
    timeouts: bool = True,
    tilted: tuple[float, ...] = (),
    guards: tuple[tuple[float, float], ...] = (),
) -> tuple[list[str], list[Factory]]:
    """Labels and factories of the portfolio's experts, the start expert first, the timeouts last.

    :param config: the system (the timeouts use its two fastest models, batch sizes and delays
        clipped to ``max_batch_size`` and ``max_wait_ms``).
    :param proposed: keyword arguments passed to every table expert.
    :param tilted: kappa of the fixed latency-tilted table experts (:data:`TILTED_EXPERTS`).
    :param guards: (latency ms, price per late request) of the guarded experts: the start
        expert with its tail guard at that setting (:data:`GUARD_EXPERTS`).
    """
    base = BurstAwareProposed if burst_tilt else Proposed
    plain = {k: v for k, v in proposed.items() if k not in BURST_KEYS}
    labels = ["burst_aware" if burst_tilt else "table"]
    factories: list[Factory] = [lambda c: base(c, **proposed)]
    if burst_tilt:
        labels.append("table")
        factories.append(lambda c: Proposed(c, **plain))
    if agile and proposed.get("rate_estimation", True):
        estimator = {**proposed.get("estimator", {}), **AGILE_ESTIMATOR}
        labels.append(f"{labels[0]}_agile")
        factories.append(lambda c: base(c, **{**proposed, "estimator": estimator}))
    for slo_ms, price in guards:
        labels.append(f"{labels[0]}(guard={slo_ms:g}ms@{price:g})")
        guarded = {**proposed, "guard_slo_ms": float(slo_ms), "guard_penalty": float(price)}
        factories.append(functools.partial(base, **guarded))
    for kappa in tilted:
        labels.append(f"table(kappa={kappa:g})")
        factories.append(functools.partial(_tilted, kappa=kappa, proposed=plain))
    if timeouts:
        order = _models_by_speed(config)
        for rank, batch, delay in TIMEOUT_EXPERTS:
            if rank >= len(order):
                continue
            model = order[rank]
            b = min(batch, config.max_batch_size)
            t = min(delay, config.max_wait_ms)
            labels.append(f"timeout({config.model_names[model]},B={b},T={t:g})")
            factories.append(functools.partial(_timeout, model=model, batch=b, delay_ms=t))
    return labels, factories


def guard_applies(config: SystemConfig, proposed: dict[str, Any]) -> bool:
    """Whether the table experts get the tail guard (:func:`tail_guarded`): the scenario has no
    SLO penalty and ``proposed`` sets no guard of its own."""
    return config.reward.w_slo == 0 and "guard_slo_ms" not in proposed and "guard_penalty" not in proposed


def tail_guarded(
    config: SystemConfig,
    proposed: dict[str, Any],
    *,
    slo_ms: float = TAIL_GUARD_MS,
    penalty: float = TAIL_GUARD_PENALTY,
    waits: bool = True,
) -> dict[str, Any]:
    """The table experts' keyword arguments ``proposed`` with the tail guard
    (``guard_slo_ms=slo_ms``, ``guard_penalty=penalty``, and ``guard_waits=False`` when ``waits``
    is False) when the scenario has no SLO penalty and ``proposed`` sets neither; otherwise
    ``proposed`` unchanged.

    The proposed table is age-blind and optimal for Poisson arrivals in cost, not in tail: at
    140-180 requests/s its LLM-1 batches give it a 99th latency percentile above a tuned
    timeout's (11 ms above on the Azure excerpt's second half at 173 requests/s).
    Pricing a request that would finish after ``slo_ms`` (default :data:`TAIL_GUARD_MS`) turns
    the guard's one-step improvement on the table into a tail guard: it picks a faster model for
    a batch whose oldest request is already late, and (with ``waits``) ends waits before that
    request would be."""
    if not guard_applies(config, proposed):
        return proposed
    guard: dict[str, Any] = {"guard_slo_ms": float(slo_ms), "guard_penalty": float(penalty)}
    if not waits:
        guard["guard_waits"] = False
    return {**proposed, **guard}


class RobustProposed(ExpertPortfolio):
    """The robust proposed scheduler (module docstring).

    :param config: the system; any arrival process, any number of workers.
    :param portfolio: follow the portfolio (default); False runs the start expert alone.
    :param burst_tilt: the start expert is the burst-aware table (default); False: the plain
        proposed table.
    :param agile: include the agile (drop-detecting) table expert.
    :param timeouts: include the timeout experts (:data:`TIMEOUT_EXPERTS`).
    :param tilted: include the fixed latency-tilted table experts (:data:`TILTED_EXPERTS`);
        default False (they serve the tail term).
    :param tail_tolerance: the tail term of the portfolio
        (:class:`agents.robust.portfolio.ExpertPortfolio`): while the burst meter reads more than
        ``tail_sigma``, follow only experts whose p99 latency is at most ``1 + tail_tolerance``
        times the cheapest timeout expert's (:data:`TAIL_TOLERANCE` is the histogram's
        resolution); None (default): no tail term. It trades cost for p99: docs/algorithm.md,
        "Robust to bursts", gives the measurements and why it is off by default.
    :param tail_sigma: the burst-meter reading above which the tail term is on (>= 0); 0: always
        on. Default :data:`TAIL_SIGMA`. The budgeted tail rule is on *below* it (smooth traffic).
    :param tail_budget: the budgeted tail rule of the portfolio (``tail_budget`` of
        :class:`agents.robust.portfolio.ExpertPortfolio`): while the burst meter reads at most
        ``tail_sigma``, follow the expert with the shortest p99 among those the budget allows,
        keeping the real cost within ``1 + tail_budget`` times the start expert's (or a
        significantly cheaper expert's); None (default): off. :data:`TAIL_BUDGET` is half the
        no-regression margin. docs/algorithm.md ("Robust to bursts", section 3) gives the
        measurements and why it is off by default. Exclusive with ``tail_tolerance``.
    :param guarded: add the guarded experts (:data:`GUARD_EXPERTS`: the start expert with
        stronger tail guards), the experts the budgeted rule buys its tail from; default False.
        Only where the tail guard applies (no SLO penalty, no guard set in ``proposed``).
    :param z: confidence of the switching test (standard deviations); default 2.
    :param min_blocks: 1-s cost blocks before any switch; default 5.
    :param tail_guard: on scenarios without an SLO penalty, the table experts guard the latency
        tail: their SLO guard protects ``guard_ms`` at ``guard_penalty`` per late request
        (:func:`tail_guarded`; default True). Ignored where ``reward.w_slo > 0`` (the SLO guard
        then protects the scenario's own SLO) or ``proposed`` sets the guard.
    :param guard_ms: latency (ms, > 0) the tail guard protects; default :data:`TAIL_GUARD_MS`.
    :param guard_penalty: price (score units, >= 0) per request the tail guard expects late;
        default :data:`TAIL_GUARD_PENALTY`.
    :param guard_waits: the tail guard also ends waits (default); False: it only chooses models.
    :param backlog_llr: the burst-aware experts raise their rate estimate to the rate the backlog
        implies when that is this significant (``backlog_llr`` of
        :class:`agents.robust.burst.BurstAwareProposed`; 0: never); default :data:`BACKLOG_LLR`.
    :param regime_hold_s: after a detected jump up, the burst-aware experts hold their rate
        estimate for this long (s) at least at the rate of the previous high regime
        (``regime_hold_s`` of :class:`agents.robust.burst.BurstAwareProposed`; 0: never);
        default :data:`REGIME_HOLD_S`.
    :param regime_llr: the burst-aware experts also detect a return to that rate with a CUSUM at
        this level (``regime_llr`` of :class:`agents.robust.burst.BurstAwareProposed`; 0: only
        the estimator's alarms); default :data:`REGIME_LLR`.
    :param burst_window_s: window (s, > 0) of the burst-aware experts' burst meter, which
        averages :data:`BURST_HISTORY_S` of windows; default :data:`BURST_WINDOW_S`.
    :param proposed: keyword arguments of every table expert (:class:`agents.proposed.Proposed`
        and :class:`agents.robust.burst.BurstAwareProposed` parameters, e.g. ``tilt``,
        ``slo_guard``).
    """

    name = "robust"

    def __init__(
        self,
        config: SystemConfig,
        portfolio: bool = True,
        burst_tilt: bool = True,
        agile: bool = True,
        timeouts: bool = True,
        tilted: bool = False,
        tail_tolerance: float | None = None,
        tail_sigma: float = TAIL_SIGMA,
        z: float = 2.0,
        min_blocks: int = 5,
        tail_guard: bool = True,
        backlog_llr: float = BACKLOG_LLR,
        proposed: dict[str, Any] | None = None,
        guard_ms: float = TAIL_GUARD_MS,
        guard_penalty: float = TAIL_GUARD_PENALTY,
        guard_waits: bool = True,
        regime_hold_s: float = REGIME_HOLD_S,
        regime_llr: float = REGIME_LLR,
        tail_budget: float | None = None,
        guarded: bool = False,
        burst_window_s: float = BURST_WINDOW_S,
    ) -> None:
        self.proposed_kwargs = dict(proposed or {})
        if not burst_tilt:
            for key in BURST_KEYS:
                self.proposed_kwargs.pop(key, None)
        backlog_llr = checked_number("backlog_llr", backlog_llr)
        guard_ms = checked_number("guard_ms", guard_ms, positive=True, unit="ms")
        guard_penalty = checked_number("guard_penalty", guard_penalty)
        regime_hold_s = checked_number("regime_hold_s", regime_hold_s, unit="s")
        regime_llr = checked_number("regime_llr", regime_llr)
        burst_window_s = checked_number("burst_window_s", burst_window_s, positive=True, unit="s")
        experts = self.proposed_kwargs
        guards = GUARD_EXPERTS if guarded and tail_guard and guard_applies(config, experts) else ()
        if tail_guard:
            experts = tail_guarded(config, experts, slo_ms=guard_ms, penalty=guard_penalty, waits=guard_waits)
        if burst_tilt and "backlog_llr" not in experts:
            experts = {**experts, "backlog_llr": backlog_llr}
        if burst_tilt and regime_hold_s and "regime_hold_s" not in experts:
            experts = {**experts, "regime_hold_s": regime_hold_s, "regime_llr": regime_llr}
        if burst_tilt and "burst_window_s" not in experts:
            memory = max(1, round(BURST_HISTORY_S / burst_window_s))
            experts = {**experts, "burst_window_s": burst_window_s, "burst_memory": memory}
        labels, factories = expert_catalogue(
            config,
            experts,
            burst_tilt=burst_tilt,
            agile=agile,
            timeouts=timeouts,
            tilted=TILTED_EXPERTS if tilted else (),
            guards=guards,
        )
        if not portfolio:
            labels, factories = labels[:1], factories[:1]
        if not (isinstance(tail_sigma, int | float) and tail_sigma >= 0):
            raise ValueError(f"tail_sigma must be a number >= 0, got {tail_sigma!r}")
        references = [i for i, label in enumerate(labels) if label.startswith("timeout(")]
        if tail_tolerance is None:
            references = []
        super().__init__(
            config,
            factories,
            labels=labels,
            z=z,
            min_blocks=min_blocks,
            tail_references=references,
            tail_tolerance=0.0 if tail_tolerance is None else tail_tolerance,
            tail_budget=tail_budget,
            tail_step=TAIL_TOLERANCE,
        )
        self.portfolio = bool(portfolio)
        self.burst_tilt = bool(burst_tilt)
        self.agile = bool(agile)
        self.timeouts = bool(timeouts)
        self.tilted = bool(tilted)
        self.guarded = bool(guarded)
        self.tail_sigma = float(tail_sigma)
        self.tail_guard = bool(tail_guard)
        self.backlog_llr = backlog_llr
        self.guard_ms = guard_ms
        self.guard_penalty = guard_penalty
        self.guard_waits = bool(guard_waits)
        self.regime_hold_s = regime_hold_s
        self.regime_llr = regime_llr
        self.burst_window_s = burst_window_s

    def eligible(self) -> list[bool]:
        """The portfolio's tail term, on only while the start expert's burst meter reads more
        than ``tail_sigma`` (always on without a meter)."""
        meter = getattr(self.experts[0], "meter", None)
        if meter is not None and not meter.sigma > self.tail_sigma:
            return [True] * len(self.experts)
        return super().eligible()

    def tail_active(self) -> bool:
        """The budgeted tail rule applies while the start expert's burst meter reads at most
        ``tail_sigma`` (smooth traffic), always without a meter."""
        meter = getattr(self.experts[0], "meter", None)
        return meter is None or not meter.sigma > self.tail_sigma

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that differ from the defaults."""
        defaults = {
            "portfolio": True,
            "burst_tilt": True,
            "agile": True,
            "timeouts": True,
            "tilted": False,
            "guarded": False,
            "tail_sigma": TAIL_SIGMA,
            "z": 2.0,
            "min_blocks": 5,
            "tail_guard": True,
            "backlog_llr": BACKLOG_LLR,
            "guard_ms": TAIL_GUARD_MS,
            "guard_penalty": TAIL_GUARD_PENALTY,
            "guard_waits": True,
            "regime_hold_s": REGIME_HOLD_S,
            "regime_llr": REGIME_LLR,
            "burst_window_s": BURST_WINDOW_S,
        }
        params = {key: getattr(self, key) for key, value in defaults.items() if getattr(self, key) != value}
        if self.tail_references:
            params["tail_tolerance"] = self.tail_tolerance
        if self.tail_budget is not None:
            params["tail_budget"] = self.tail_budget
        if self.proposed_kwargs:
            params["proposed"] = dict(self.proposed_kwargs)
        return params
