"""The command line of ``evaluate.py`` and the validated run plan it becomes: agents, scenarios,
seeds, horizon, reference agent, execution backend and output places.

Everything that can be checked before an episode runs is checked here: agent specs, scenario
files and their trace files, and that the output places can be written."""

from __future__ import annotations

import argparse
import math
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from agents.registry import (
    EXTERNAL,
    AgentSpec,
    AgentSpecError,
    NotApplicableError,
    make_agent,
    parse_agent_spec,
    split_specs,
)
from batchenv.arrivals import make_arrival_process
from batchenv.config import ConfigError, LatencyTarget, SystemConfig
from batchenv.scenarios import SUITE, load_scenario
from batchenv.seeds import MAX_SEEDS, TRAINING_SEEDS, parse_seeds
from execution.backends import BackendSpec
from execution.cli import (
    ExecutionUsageError,
    add_execution_arguments,
    backend_spec_from_args,
    without_execution_flags,
)

__all__ = [
    "BASELINE_AGENTS",
    "DEMO_AGENTS",
    "DEMO_SCENARIOS",
    "HELP_EPILOG",
    "HINDSIGHT_CACHE",
    "REFERENCE_RULE",
    "Plan",
    "ScenarioEntry",
    "UsageError",
    "build_parser",
    "check_writable_folder",
    "default_hindsight_cache",
    "make_plan",
    "recorded_command",
    "seeds_for_requests",
]

BASELINE_AGENTS = ("greedy", "static", "timeout", "aimd", "util_switch")
"""The agents evaluated when ``--agents`` is not given (with ``optimal`` where it is available)."""

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "ppo_default_mixture.zip"
DEMO_AGENTS = ("greedy", "timeout", "util_switch", "optimal", "proposed")
"""``--demo``: the baselines that matter, the optimum, the proposed scheduler and (when the
repository's checkpoint is there) the shipped PPO agent trained on the workload mixture."""
DEMO_SCENARIOS = ("bursty", "azure_trace", "high_load")
"""``--demo``: loads where decisions matter: bursts, a production trace, a high steady load."""
DEMO_SEEDS = 5


HINDSIGHT_CACHE = ".hindsight_cache"
"""The name of the default cache of hindsight bounds (:class:`agents.hindsight.cache.BoundCache`)
inside ``--out``, beside the run folders: every run into the same ``--out`` shares it."""


def default_hindsight_cache(out: Path) -> Path:
    """Where a run into the results folder ``out`` keeps its hindsight bounds unless
    ``--hindsight-cache`` says otherwise: ``out/.hindsight_cache`` (``results/.hindsight_cache``
    by default). The tests replace this function, so that no test writes into the repository."""
    return out / HINDSIGHT_CACHE


MAX_MIN_REQUESTS = 10_000_000
"""Largest ``--min-requests`` (more is a typing slip: weeks of simulated time at 1 request/s)."""


def seeds_for_requests(seeds: Sequence[int], requests_per_episode: float, min_requests: int) -> list[int]:
    """``seeds``, then the seeds that follow the last one, until the episodes hold at least
    ``min_requests`` requests on average (``requests_per_episode`` each: mean arrival rate in
    requests/s x horizon in s). A busy scenario keeps ``seeds``; a quiet one gets more episodes,
    so that a gap is not measured on a few hundred requests (a few bursts of a spiky scenario)."""
    if requests_per_episode <= 0:
        raise ValueError(f"requests_per_episode must be > 0, got {requests_per_episode}")
    count = max(len(seeds), math.ceil(min_requests / requests_per_episode))
    return [*seeds, *range(seeds[-1] + 1, seeds[-1] + 1 + count - len(seeds))]


REFERENCE_RULE = (
    "optimal where it applies, else the tuned timeout (the spec 'timeout' without parameters if "
    "given, else the first timeout spec listed), else none"
)
"""What ``--reference auto`` picks, in words (the help and the report quote it;
:func:`evaluation.cells.collect` applies it)."""


class UsageError(Exception):
    """A bad command line; reported as ``evaluate.py: error: ...`` with exit code 2."""


HELP_EPILOG = """\
agents (--agents, comma-separated):
  greedy                      dispatch everything at once on LLM-1
  static(B=8)                 wait for exactly B requests (or max_wait_ms)
  timeout(B=16,T=30,model=LLM-2)
                              Triton-like: dispatch at B queued or after T ms; tuned per
                              scenario by default (agents/tuned/<scenario>.yaml)
  aimd                        Clipper-like AIMD batch cap
  util_switch                 timeout that steps LLM-1 -> LLM-2 -> LLM-3 under load; tuned
  optimal                     the exact SMDP optimum (one worker, Poisson arrivals; other
                              scenarios are reported as n/a)
  proposed                    the project's own scheduler (agents/proposed.py)
  robust                      proposed made robust to bursts: a burst-aware table in a
                              portfolio of experts evaluated on the real arrivals
                              (agents/robust/; docs/algorithm.md, "Robust to bursts")
  slo_target(inner=proposed)  a table-based scheduler (proposed or optimal) at the smallest
                              latency weight that meets the scenario's latency target
                              (--target or the scenario's latency_target)
  path/to/agent.zip           a checkpoint saved by train.py
  Parameters in a spec override tuned values; quote specs with brackets in the shell.

examples:
  python evaluate.py --demo                           what the project is for (3 min, then 20 s)
  python evaluate.py                                  baselines on the default scenario
  python evaluate.py --agents timeout,optimal --scenarios poisson_25,poisson_75 --n-seeds 20
  python evaluate.py --scenarios suite --jobs 2 --report docs/results/baselines.md
  python evaluate.py --scenarios suite --backend ray --address auto    on a Ray cluster
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description=(
            "Evaluate schedulers on scenarios with common random numbers (the same arrivals for "
            "every agent), report every metric with 95% confidence intervals across seeds, and "
            "write CSV, JSON, Markdown and plots to a new results folder."
        ),
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--agents",
        default=None,
        help="comma-separated agent specs, names or checkpoint paths (default: the baselines "
        f"{','.join(BASELINE_AGENTS)}, plus optimal)",
    )
    parser.add_argument(
        "--scenarios",
        default="default",
        help="comma-separated scenario names (see batchenv/configs/) or YAML paths; 'suite' = "
        f"{','.join(SUITE)} (default: default)",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds",
        default=None,
        help="evaluation seeds, e.g. 0-9, 0,3,7 or 0-4,10-12 (ranges inclusive); keep them "
        f"below {TRAINING_SEEDS[0]}, which are tuning seeds",
    )
    seeds.add_argument(
        "--n-seeds",
        type=int,
        default=None,
        help="use seeds 0..N-1 (default: 10; 5 with --quick)",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=0,
        help="a scenario whose episodes hold fewer requests than this on average (mean rate x "
        "horizon x seeds) also runs the seeds that follow, up to that many requests: a quiet or "
        "spiky scenario is then measured on as many requests as a busy one (default: 0: the same "
        "seeds everywhere)",
    )
    parser.add_argument(
        "--horizon-s",
        type=float,
        default=None,
        help="simulated seconds per episode (default: each scenario's horizon_s; 30 with --quick)",
    )
    parser.add_argument(
        "--reference",
        default="auto",
        help="agent (as given in --agents) that gaps are measured against; 'auto' = "
        f"{REFERENCE_RULE.replace('%', '%%')}, per scenario; 'none' = no gap (default: auto)",
    )
    parser.add_argument(
        "--target",
        default=None,
        help="a latency target for every scenario (replaces a scenario's own latency_target), e.g. "
        "p99<=100ms, 95%%<=250ms or 95%% (of requests within slo_ms): the tables then say, per agent, "
        "whether it was met, with the quality and throughput under it; agent slo_target aims at it, "
        "timeout and util_switch take the parameters tuned to meet it "
        "(python -m apps.tune --target ...)",
    )
    parser.add_argument(
        "--no-tuned",
        action="store_true",
        help="use the default parameters of timeout and util_switch instead of the tuned ones",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help=f"parent folder of the run folder eval_<time>_<n>/ and of the hindsight cache "
        f"{HINDSIGHT_CACHE}/ (default: results)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write the Markdown report to this file (its folder must exist), the run's "
        "results.json next to it as <file stem>.json and its figures in <file stem>_figures/ "
        "(e.g. docs/results/baselines.md)",
    )
    parser.add_argument(
        "--title",
        default="Evaluation results",
        help="title of the Markdown report (default: Evaluation results)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument(
        "--no-hindsight",
        action="store_true",
        help="skip the hindsight bound (by default every one-worker scenario's episodes get the "
        "least cost any FIFO schedule, i.e. any policy of this simulator, reaches on their "
        "arrivals, agents/hindsight/, and each agent its "
        "gap to it: seconds of CPU per episode at a few hundred requests/s)",
    )
    parser.add_argument(
        "--hindsight-several",
        action="store_true",
        help="also bound the scenarios with several workers (a lower bound from a relaxation, beside "
        "the best schedule found; slow: docs/results/hindsight_workers.md gives the CPU time per "
        "10 s of episode at 400 requests/s on 2 workers and 800/s on 4; docs/hindsight.md, "
        "'Several workers')",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--hindsight-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="where hindsight bounds are kept between runs: a bound depends only on the episode's "
        "arrivals and system, so a later run (other agents, the same scenarios, seeds and horizon) "
        "reads it instead of computing it again, and gets the same results (docs/hindsight.md, "
        "'Computed once: the cache'); each bound is stored as soon as it is computed, so an "
        f"interrupted run keeps those it finished (default: {HINDSIGHT_CACHE}/ in the --out folder)",
    )
    cache.add_argument(
        "--no-hindsight-cache",
        action="store_true",
        help="compute every hindsight bound, neither reading nor writing the cache",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 5 seeds and 30 s episodes unless --seeds/--n-seeds/--horizon-s say otherwise",
    )
    parser.add_argument(
        "--list-scenarios",
        action="store_true",
        help="print every scenario name (packaged, then $BATCHENV_SCENARIO_PATH's) with its one-line "
        "description, and exit",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help=f"the first run to try: {', '.join(DEMO_AGENTS)} and the shipped PPO agent on "
        f"{', '.join(DEMO_SCENARIOS)}, {DEMO_SEEDS} seeds, unless --agents, --scenarios or the seeds "
        "are given. On 2 cores shared with other jobs it took 2 min 42 s the first time, about 2 min "
        "20 s of it computing the 15 hindsight bounds, and 22 s once they were in the cache "
        "(--no-hindsight skips them)",
    )
    add_execution_arguments(parser)
    return parser


@dataclass(frozen=True)
class ScenarioEntry:
    """One scenario of the run. ``spec`` is what the user typed (a name or a YAML path)."""

    spec: str
    config: SystemConfig

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def target(self) -> LatencyTarget | None:
        """The scenario's latency target (``--target`` or its own ``latency_target``), if any."""
        return self.config.latency_target

    def describe(self) -> str:
        arrivals = self.config.arrivals
        workers = self.config.n_workers
        rate = f"{arrivals.mean_rate_per_s:.4g}/s"
        if arrivals.rate_range_per_s is not None:
            low, high = arrivals.rate_range_per_s
            rate = f"{low:g}-{high:g}/s per episode"
        return f"{arrivals.process}, {rate}, {workers} worker{'s' if workers > 1 else ''}"


@dataclass
class Plan:
    """Everything a run needs, validated."""

    agents: list[AgentSpec]
    scenarios: list[ScenarioEntry]
    seeds: list[int]
    horizon_s: float | None
    tuned: bool
    reference: str
    backend: BackendSpec
    out: Path
    report: Path | None
    title: str
    plots: bool
    command: str
    warnings: list[str] = field(default_factory=list)
    demo: bool = False
    hindsight: bool = True
    hindsight_several: bool = False
    hindsight_cache: Path | None = None
    target: LatencyTarget | None = None
    min_requests: int = 0

    def seeds_of(self, scenario: ScenarioEntry) -> list[int]:
        """The seeds ``scenario`` runs on: :attr:`seeds`, extended by :func:`seeds_for_requests`
        to :attr:`min_requests` requests (mean rate x the scenario's horizon per episode)."""
        return _scenario_seeds(scenario, self.seeds, self.min_requests)


def _scenario_seeds(scenario: ScenarioEntry, seeds: list[int], min_requests: int) -> list[int]:
    """``seeds`` extended to ``min_requests`` requests of ``scenario`` (none when 0)."""
    if min_requests <= 0:
        return list(seeds)
    config = scenario.config
    return seeds_for_requests(seeds, config.arrivals.mean_rate_per_s * config.horizon_s, min_requests)


def distinct_checkpoint_labels(agents: list[AgentSpec]) -> list[AgentSpec]:
    """``agents`` with the checkpoints whose file stems clash (every run names its model
    ``final_model.zip``) labelled ``<folder>/<stem>`` instead; other agents unchanged."""
    stems = [a.path.stem for a in agents if a.path is not None]
    return [
        replace(a, alias=f"{a.path.parent.name}/{a.path.stem}")
        if a.path is not None and stems.count(a.path.stem) > 1
        else a
        for a in agents
    ]


def check_writable_folder(folder: Path, flag: str, create: bool) -> None:
    """Make sure files can be written into ``folder`` (created with its parents if ``create``):
    a probe file is created and removed there.

    :raises UsageError: naming ``flag``, the folder and the reason.
    """
    if not folder.is_dir():
        if not create:
            raise UsageError(f"{flag}: folder {folder} does not exist (create it first)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{flag}: cannot create folder {folder}: {exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write into {folder}: {exc.strerror or exc}") from None


def _apply_demo(args: argparse.Namespace, warnings: list[str]) -> None:
    """Fill in the ``--demo`` preset where the command line left the default."""
    if args.agents is None:
        agents = list(DEMO_AGENTS)
        if DEMO_CHECKPOINT.is_file():
            agents.append(str(DEMO_CHECKPOINT))
        else:
            warnings.append(f"--demo: {DEMO_CHECKPOINT} is not there; running without a learned agent")
        args.agents = ",".join(agents)
    if args.scenarios == "default":
        args.scenarios = ",".join(DEMO_SCENARIOS)
    if args.seeds is None and args.n_seeds is None:
        args.n_seeds = DEMO_SEEDS


def make_plan(args: argparse.Namespace, argv: Sequence[str]) -> Plan:
    """Validate the arguments; raises :class:`UsageError` with a clear message."""
    warnings: list[str] = []
    if args.demo:
        _apply_demo(args, warnings)
    if args.agents is None:
        agent_specs = [*BASELINE_AGENTS, "optimal"]
    else:
        try:
            agent_specs = split_specs(args.agents)
        except AgentSpecError as exc:
            raise UsageError(f"--agents: {exc}") from None
    if not agent_specs:
        raise UsageError("--agents: no agent given")
    try:
        agents = [parse_agent_spec(spec) for spec in agent_specs]
    except AgentSpecError as exc:
        raise UsageError(f"--agents: {exc}") from None
    agents = distinct_checkpoint_labels(agents)
    labels = [a.label for a in agents]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise UsageError(f"--agents: {duplicates[0]!r} given twice")

    if args.quick:
        if args.seeds is None and args.n_seeds is None:
            args.n_seeds = 5
        if args.horizon_s is None:
            args.horizon_s = 30.0
    if args.seeds is not None:
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as exc:
            raise UsageError(f"--seeds: {exc}") from None
    else:
        n_seeds = 10 if args.n_seeds is None else args.n_seeds
        if not 1 <= n_seeds <= MAX_SEEDS:
            raise UsageError(f"--n-seeds must be in [1, {MAX_SEEDS}], got {n_seeds}")
        seeds = list(range(n_seeds))
    if not 0 <= args.min_requests <= MAX_MIN_REQUESTS:
        raise UsageError(f"--min-requests must be in [0, {MAX_MIN_REQUESTS}], got {args.min_requests}")
    if len(seeds) < 2:
        warnings.append("one seed: no confidence intervals")
    if args.horizon_s is not None and not (math.isfinite(args.horizon_s) and args.horizon_s > 0):
        raise UsageError(f"--horizon-s must be a number > 0, got {args.horizon_s}")

    target = None
    if args.target is not None:
        try:
            target = LatencyTarget.parse(args.target, "--target")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    names = list(SUITE) if args.scenarios.strip() == "suite" else split_specs(args.scenarios)
    if not names:
        raise UsageError("--scenarios: no scenario given")
    scenarios = []
    for spec in names:
        try:
            config = load_scenario(spec)
        except ConfigError as exc:
            raise UsageError(_scenario_error(spec, exc)) from None
        if args.horizon_s is not None:
            try:
                config = config.replace(horizon_s=args.horizon_s)
            except ConfigError as exc:  # the flag's value, not the scenario file's
                text = exc.message if exc.field == "horizon_s" else str(exc)
                raise UsageError(f"--horizon-s: on scenario {spec!r}: {text}") from None
        try:
            if target is not None:
                config = config.replace(latency_target=target)
            make_arrival_process(config)  # reads and checks a trace file now, not in a worker
        except ConfigError as exc:
            raise UsageError(_scenario_error(spec, exc)) from None
        scenarios.append(ScenarioEntry(spec, config))
    _check_seeds(scenarios, seeds, args.min_requests, warnings)
    scenario_names = [s.name for s in scenarios]
    repeated = sorted({n for n in scenario_names if scenario_names.count(n) > 1})
    if repeated:
        raise UsageError(f"--scenarios: two scenarios are named {repeated[0]!r}")

    for spec in agents:  # build what is cheap to build now: errors before any episode runs
        if spec.name in EXTERNAL:  # expensive to build (they solve SMDPs): built when they run
            continue
        targets = scenarios[:1] if spec.name == "checkpoint" else scenarios
        for scenario in targets:
            try:
                make_agent(spec, scenario.config, tuned=not args.no_tuned, scenario_spec=scenario.spec)
            except NotApplicableError:
                pass
            except AgentSpecError as exc:
                raise UsageError(f"--agents: {exc}") from None

    reference = args.reference
    if reference not in ("auto", "none") and reference not in labels:
        raise UsageError(f"--reference: {reference!r} is not among the agents {labels} (or auto / none)")
    try:
        backend, backend_warnings = backend_spec_from_args(args)
    except ExecutionUsageError as exc:
        raise UsageError(str(exc)) from None
    warnings += backend_warnings
    if args.report is not None:
        if args.report.is_dir():
            raise UsageError(f"--report: {args.report} is a folder; give a Markdown file name")
        check_writable_folder(args.report.parent, "--report", create=False)
    check_writable_folder(args.out, "--out", create=True)
    hindsight_cache = None
    if not (args.no_hindsight or args.no_hindsight_cache):
        hindsight_cache = (
            default_hindsight_cache(args.out) if args.hindsight_cache is None else args.hindsight_cache
        )
        if args.hindsight_cache is not None:
            if hindsight_cache.exists() and not hindsight_cache.is_dir():
                raise UsageError(f"--hindsight-cache: {hindsight_cache} is a file, not a folder")
            check_writable_folder(hindsight_cache, "--hindsight-cache", create=True)
    return Plan(
        agents=agents,
        scenarios=scenarios,
        seeds=seeds,
        horizon_s=args.horizon_s,
        tuned=not args.no_tuned,
        reference=reference,
        backend=backend,
        out=args.out,
        report=args.report,
        title=args.title,
        plots=not args.no_plots,
        command=recorded_command(argv),
        warnings=warnings,
        demo=args.demo,
        hindsight=not args.no_hindsight,
        hindsight_several=args.hindsight_several and not args.no_hindsight,
        hindsight_cache=hindsight_cache,
        target=target,
        min_requests=args.min_requests,
    )


def _scenario_error(spec: str, exc: ConfigError) -> str:
    """The ``--scenarios`` error for ``spec``: an unknown name's message names it already (with
    the names close to it); any other error (a field of the file, its trace) is prefixed by it."""
    if exc.field == "scenario":
        return f"--scenarios: {exc.message}"
    return f"--scenarios: {spec!r}: {exc}"


def recorded_command(argv: Sequence[str]) -> str:
    """The command a run records (``results.json``, ``report.md``): ``python evaluate.py`` and
    ``argv`` without the execution flags (``--backend``, ``--address``, ``--jobs``), which never
    change the results, as ``python -m apps.tune`` records its own."""
    kept = without_execution_flags(list(argv), build_parser())
    return "python evaluate.py" + (" " + shlex.join(kept) if kept else "")


def _check_seeds(
    scenarios: list[ScenarioEntry], seeds: list[int], min_requests: int, warnings: list[str]
) -> None:
    """Every scenario's seeds (``--min-requests`` extends a quiet one's) stay within
    :data:`MAX_SEEDS`; a warning in ``warnings`` names any that are also tuning seeds.

    :raises UsageError: naming ``--min-requests`` and the scenario that would need too many."""
    every_seed: set[int] = set()
    for scenario in scenarios:
        own = _scenario_seeds(scenario, seeds, min_requests)
        if len(own) > MAX_SEEDS:
            raise UsageError(
                f"--min-requests: scenario {scenario.name!r} would need {len(own):,} episodes "
                f"(at most {MAX_SEEDS:,}); lower it or use a longer --horizon-s"
            )
        every_seed.update(own)
    overlap = sorted(every_seed & set(TRAINING_SEEDS))
    if overlap:
        warnings.append(f"seeds {overlap} are also tuning seeds: tuned baselines are favoured on them")
