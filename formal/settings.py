"""What a verification run checks: :class:`Settings`, the input of
:func:`formal.verification.run_verification` (``verify.py`` builds it from its flags), and the
discrete-time model and the system it describes."""

from __future__ import annotations

from dataclasses import dataclass

from batchenv.config import ConfigError, SystemConfig
from formal.band import EstimateBand
from formal.check import CPU_BUDGET_S
from formal.discrete import TickModel

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """What ``verify.py`` checks.

    :param config: the system.
    :param rate_per_s: Poisson rate (requests/s); None = the config's mean rate.
    :param tick_ms: tick of the discrete model (ms), in [1, 5].
    :param queue_cap: queue capacity of the discrete model (requests).
    :param overflow_s: time bound (s) of the overflow probability.
    :param agents: agent specs of :mod:`agents.registry` to distil into tables and check
        (e.g. ``util_switch``, ``proposed``, a ``.zip`` checkpoint). Each decision state is
        probed on a fresh simulator, so an agent that estimates the arrival rate online would see
        only the probe's few arrivals: ``proposed`` is distilled with its nominal rate
        (``rate_estimation=false``).
    :param crosscheck_ticks: ticks simulated per policy by the tick simulator.
    :param sim_horizon_s: simulated time (s) per policy in the event-driven simulator.
    :param jobs: parallel processes (or Ray CPUs) for the model checking.
    :param backend: ``"local"`` (processes on this machine) or ``"ray"`` (:mod:`execution`).
    :param address: Ray cluster to join with ``backend="ray"`` (None: an embedded local Ray).
    :param seed: seed of the simulations.
    :param arrivals: ``"auto"``: a scenario with Markov-modulated arrivals (``bursty``) is
        modelled phase by phase, any other as Poisson at its mean rate; ``"poisson"``: Poisson at
        the mean rate always.
    :param band_scheduler: agent spec of the scheduler whose own rows are checked with its rate
        estimate as an adversary (it must have ``decision_rows``, :mod:`batchenv.decision_rows`);
        None or ``""`` to skip.
    :param bands: the band factors ``f`` of the estimate, ``[rate / f, rate * f]`` (1: exact).
    :param cpu_budget_s: CPU time (s) of one sound MDP long-run-average query before Storm's
        default solver answers it.
    :param agent_seeds: seeds of the real agents' event simulations (0, 1, ...).
    :param agent_horizon_s: simulated time (s) per seed of each real agent and its table.
    :param portfolio_scheduler: agent spec of a portfolio scheduler (``robust``) checked as an
        adversarial switch among its experts, each with its estimate within each band of
        ``bands`` (:mod:`formal.portfolio`); None or ``""`` to skip (default).
    """

    config: SystemConfig
    rate_per_s: float | None = None
    tick_ms: float = 2.0
    queue_cap: int = 64
    overflow_s: float = 1.0
    agents: tuple[str, ...] = ("util_switch", "proposed(rate_estimation=false)")
    crosscheck_ticks: int = 300_000
    sim_horizon_s: float = 600.0
    jobs: int = 2
    seed: int = 0
    backend: str = "local"
    address: str | None = None
    arrivals: str = "auto"
    band_scheduler: str | None = "proposed"
    bands: tuple[float, ...] = (1.0, 1.25, 2.0)
    cpu_budget_s: float = CPU_BUDGET_S
    agent_seeds: int = 3
    agent_horizon_s: float = 200.0
    portfolio_scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.arrivals not in ("auto", "poisson"):
            raise ConfigError("arrivals", f"must be 'auto' or 'poisson', got {self.arrivals!r}")
        for f in self.bands:
            try:
                EstimateBand(f)
            except ValueError as exc:
                raise ConfigError("bands", str(exc)) from None
        if not self.cpu_budget_s >= 0:
            raise ConfigError("cpu_budget_s", f"must be >= 0 (s of CPU time), got {self.cpu_budget_s!r}")
        if (
            isinstance(self.agent_seeds, bool)
            or not isinstance(self.agent_seeds, int)
            or self.agent_seeds < 0
        ):
            raise ConfigError("agent_seeds", f"must be an integer >= 0, got {self.agent_seeds!r}")
        if not self.agent_horizon_s > 0:
            raise ConfigError("agent_horizon_s", f"must be > 0 (s), got {self.agent_horizon_s!r}")

    @property
    def phased(self) -> bool:
        """Markov-modulated arrivals are modelled phase by phase."""
        return self.arrivals == "auto" and self.config.arrivals.process == "mmpp"

    def model_config(self) -> SystemConfig:
        """The config the model describes: its MMPP (when :attr:`phased`) or Poisson arrivals at
        ``rate_per_s`` (default the config's mean rate), no per-episode rate range. Agents, tuned
        parameters and the SMDP are looked up for it, so they act at the rate being verified."""
        rate = self.config.arrivals.mean_rate_per_s if self.rate_per_s is None else self.rate_per_s
        arrivals = self.config.arrivals
        if self.phased:
            if rate == arrivals.mean_rate_per_s and arrivals.rate_range_per_s is None:
                return self.config
            return self.config.at_rate(rate)
        if (
            arrivals.process == "poisson"
            and arrivals.rate_per_s == rate
            and arrivals.rate_range_per_s is None
        ):
            return self.config
        return self.config.replace(
            arrivals={
                "process": "poisson",
                "rate_per_s": rate,
                "rates_per_s": None,
                "switch_rates_per_s": None,
                "trace_path": None,
                "rate_range_per_s": None,
            }
        )

    def tick_model(self) -> TickModel:
        return TickModel(self.model_config(), None, self.tick_ms, self.queue_cap, mmpp=self.phased)
