"""The robust proposed scheduler: a burst-aware SMDP table inside a shadow-evaluated portfolio.

- :mod:`agents.robust.burst`: the burstiness meter and the burst-aware (latency-tilted) table;
- :mod:`agents.robust.shadow`: a scheduler simulated on the arrivals a real server observes;
- :mod:`agents.robust.portfolio`: follow the best of several shadow-evaluated schedulers, with
  switches at coupling epochs (exact cost accounting);
- :mod:`agents.robust.scheduler`: :class:`RobustProposed`, the scheduler itself.
"""

from agents.robust.burst import BurstAwareProposed, BurstMeter
from agents.robust.portfolio import ExpertPortfolio
from agents.robust.scheduler import RobustProposed
from agents.robust.shadow import ShadowSim

__all__ = ["BurstAwareProposed", "BurstMeter", "ExpertPortfolio", "RobustProposed", "ShadowSim"]
