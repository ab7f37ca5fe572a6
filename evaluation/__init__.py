"""Compare schedulers on scenarios: every agent x scenario x seed, with common random numbers
(the package behind ``python evaluate.py``).

Every agent meets the same arrivals for the same (scenario, seed). Per agent and scenario it
reports the mean over seeds with a 95% confidence interval (t distribution) of every metric of
:class:`batchenv.metrics.EpisodeMetrics`, the cost per request (best quality - score) and the
relative gap of the mean cost to a reference agent, with a confidence interval from the
seed-paired cost differences (:mod:`evaluation.stats`; docs/design.md, "Metrics").

It prints a table per scenario and writes, into a new folder ``<out>/eval_<time>_<n>/`` (never
an existing one; every file written to a temporary name, then renamed):

- ``summary.csv``: one row per agent and scenario, ``<metric>_mean`` and ``<metric>_ci95``;
- ``per_seed.csv``: one row per agent, scenario and seed;
- ``results.json``: both, with the command, the seeds and each agent's parameters and their source
  (``schema_version``: :data:`evaluation.outputs.SCHEMA_VERSION`);
- ``report.md``: the tables in Markdown, with the definition of every column and the notes per
  scenario (the hindsight bound, the seeds a mean uses when fewer, why a cell is n/a);
- ``latency_cdf.png``, ``score_vs_rate.png`` (cost per request and p99 latency against the
  rate), ``pareto_quality_p99.png``.

A ratio an episode cannot define (no arrival, no batch, nothing served) is NaN and left out of
its mean (:mod:`evaluation.cells`).

Episodes run on a backend of :mod:`execution` (``--jobs`` local processes by default, or Ray with
``--backend ray``); each episode is a pure function of (agent, scenario, seed), so the results
do not depend on the backend or ``--jobs``.

Modules, one step each (the command line's ``main`` is :func:`apps.evaluate.main`):

==========  ===================================================================================
plan        the command line (``--help``) and the validated :class:`~evaluation.plan.Plan`
runner      one task per episode (:mod:`execution.episode`), run on the plan's backend
stats       the statistics: means with 95% confidence intervals, the gap (used everywhere)
cells       results per (agent, scenario) cell and their summary over seeds
tuning      grid search of the timeout baselines (``python -m apps.tune``)
outputs     the run folder, ``summary.csv``, ``per_seed.csv``, ``results.json``
tables      the Markdown report and the terminal tables
plots       the three figures
==========  ===================================================================================
"""
