#!/usr/bin/env python
"""Formal verification of the batching system: Storm model checking, timed automata checked with
TChecker, and UPPAAL model generation.

    python verify.py                      # every check of the default scenario, in about a minute
    python verify.py --full               # the same checks at the large sizes (times: docs/formal.md)
    python verify.py --scenario high_load --tick-ms 1
    python verify.py --ta-only            # only the timed-automata stage (TChecker)
    python verify.py --robust             # also the robust scheduler under any switching (slower)
    python verify.py --uppaal             # also write the UPPAAL/TChecker models and run verifyta if present

What it checks (details and semantics: docs/formal.md):

(a) timeout safety over every scheduler of the MDP (Pmax of a request waiting beyond
    max_wait_ms while a worker is idle = 0), and that it fails without the shield;
(b) the optimal long-run cost Rmin[LRA] and its scheduler, against agents/optimal.py;
(c) per policy (baselines, the SMDP optimum, Storm's optimum, agents distilled to tables), as a
    DTMC: its raw table without the shield (P of a violation), then throughput, utilisation, mean
    queue, mean batch, latency (Little's law), cost, overflow probability; and the same policies in
    a tick simulator (must agree within 2%) and in the event-driven simulator;
(d) the proposed scheduler's own rows (timed waits, SLO guard) with its rate estimate as an
    adversary within a band of the true rate: Rmin/Rmax of cost and latency, Pmin/Pmax of overflow;
(e) the real agents (rate estimator, RL network) in the event-driven simulator against their
    tables and the model's figures;
(f) timed automata (formal/ta/), with TChecker when it is installed (bash .ci/install_tchecker.sh):
    timeout safety under any arrivals, exact queue bound and worst-case latency under a token
    bucket of burst b, deadlock freedom with finitely many arrivals, leads-to from waiting to
    served; for the tuned timeout, a Triton-like timeout and the SMDP optimum.
(g) with --robust: the robust scheduler as an adversarial switch among its experts (any expert at
    every decision, each table expert with any estimate within each band, any tilt, any backlog
    raise): Storm's Pmax of a violation and min/max of cost, latency, drops and overflow, beside
    the proposed scheduler's bands; in the timed automata its queue bound and worst-case latency.

Results: a terminal table, docs/results/verification.md, the Storm results as JSON in
docs/results/verification.json and docs/results/verification_ta.json (written atomically).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.scenarios import load_scenario
from execution.cli import ExecutionUsageError, add_execution_arguments, backend_spec_from_args
from formal.policies import TimeoutPolicy
from formal.prism import check_costs_modelled, mdp_program, write_program
from formal.ta.properties import TAChecks, TASettings, uppaal_models
from formal.ta.schedulers import from_timeout
from formal.ta.stage import SECTION_TITLE, default_schedulers, markdown_section, run_ta, to_json
from formal.ta.tchecker_format import to_tchecker
from formal.tchecker import TCheckerMissingError, find_tchecker
from formal.uppaal import lint, run_verifyta, write_models

# agents.registry (torch, SB3) and formal.verification/formal.report (stormpy) take over a second
# to import: they are imported in the functions that need them, so that --help and flag errors
# answer at once.

REPO = Path(__file__).resolve().parents[1]
_RESULTS = REPO / "docs" / "results"
DEFAULT_OUTS = {
    False: (_RESULTS / "verification_default.md", _RESULTS / "verification_default_ta.json"),
    True: (_RESULTS / "verification.md", _RESULTS / "verification_ta.json"),
}
"""``--out`` and ``--ta-out`` left unset: the committed results of ``python verify.py`` (False)
and of ``python verify.py --full`` (True), so that each command rewrites its own files."""
DEFAULT_MODELS = REPO / "formal" / "models"
DEFAULT_UPPAAL_POLICY = "B=8,T=10,models=0"
DEFAULT_TA_UNIT_MS = 1.0
"""Time unit of the timed automata (ms): every clock constant is an integer number of it."""
DEFAULT_AGENTS = "util_switch,proposed(rate_estimation=false)"
CHECKPOINTS = REPO / "checkpoints"

QUICK_SIZES: dict[str, object] = {
    "queue_cap": 32,
    "agents": DEFAULT_AGENTS,
    "agent_horizon_s": 100.0,
    "ticks": 200_000,
    "sim_horizon_s": 300.0,
}
"""Sizes of the default run: every kind of check (both MDPs, the baselines, the SMDP and Storm
optima, two distilled agents, the proposed scheduler's three bands, the real agents, both
simulators, every timed-automata property at bursts 1-3) within about 60 s of CPU time on 2 cores."""
FULL_SIZES: dict[str, object] = {
    "queue_cap": 64,
    "agents": "auto",
    "agent_horizon_s": 200.0,
    "ticks": 300_000,
    "sim_horizon_s": 600.0,
}
"""Sizes of ``--full``: a larger queue, every shipped checkpoint distilled and run as itself,
and longer simulations; the timed-automata stage is the same."""


def _size_help(dest: str, text: str) -> str:
    return f"{text} (default: {QUICK_SIZES[dest]}; with --full: {FULL_SIZES[dest]})"


def resolve_sizes(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every sizing flag left unset with its value in :data:`QUICK_SIZES`, or in
    :data:`FULL_SIZES` with ``--full`` (a flag given on the command line wins), and ``--out``,
    ``--ta-out`` with :data:`DEFAULT_OUTS`. Returns ``args``."""
    preset = FULL_SIZES if args.full else QUICK_SIZES
    for dest, value in preset.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    out, ta_out = DEFAULT_OUTS[bool(args.full)]
    args.out = out if args.out is None else args.out
    args.ta_out = ta_out if args.ta_out is None else args.ta_out
    return args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verify.py",
        description=__doc__.split("\n\n")[0],
        epilog="Example: python verify.py --scenario default --tick-ms 2 --queue-cap 64 --jobs 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    system = parser.add_argument_group("system")
    which = system.add_mutually_exclusive_group()
    which.add_argument("--scenario", default="default", help="packaged scenario name (default: default)")
    which.add_argument("--config", type=Path, help="a scenario YAML file instead of --scenario")
    system.add_argument(
        "--rate",
        type=float,
        default=None,
        help="Poisson arrival rate in requests/s (default: the scenario's mean rate)",
    )
    model = parser.add_argument_group("discrete-time model (Storm)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="the large sizes (queue cap 64, every shipped checkpoint, longer simulations): about "
        "twice the default run's time (docs/formal.md); any sizing flag given still wins",
    )
    model.add_argument("--tick-ms", type=float, default=2.0, help="tick length in ms, 1-5 (default: 2)")
    model.add_argument(
        "--queue-cap",
        type=int,
        default=None,
        help=_size_help("queue_cap", "queue capacity of the model in requests"),
    )
    model.add_argument(
        "--overflow-s",
        type=float,
        default=1.0,
        help="time bound in s of the overflow probability P(queue full within t) (default: 1)",
    )
    model.add_argument(
        "--agents",
        default=None,
        help="comma-separated agent specs (agents/registry.py: a baseline, 'proposed', a .zip "
        "checkpoint) to distil into tables over the model's states and check; '' for none; "
        f"'auto': {DEFAULT_AGENTS} and the shipped checkpoints of the scenario "
        "(<algo>_<scenario>.zip and <algo>_<scenario>_mixture.zip among those listed, with their hashes, "
        "in checkpoints/SHA256SUMS) "
        f"(default: {DEFAULT_AGENTS}; with --full: auto)",
    )
    model.add_argument(
        "--arrivals",
        choices=("auto", "poisson"),
        default="auto",
        help="auto (default): a scenario with Markov-modulated arrivals (bursty) is modelled phase by phase, "
        "any other as Poisson at its mean rate; poisson: Poisson at the mean rate always",
    )
    model.add_argument(
        "--cpu-budget-s",
        type=float,
        default=60.0,
        help="CPU seconds (not wall-clock: the same on a loaded machine) of Storm's sound value iteration "
        "for one MDP long-run average; beyond it a certified policy iteration answers (sound too; the solver "
        "is named per row) (default: 60)",
    )
    band = parser.add_argument_group("the proposed scheduler under estimation error (Storm)")
    band.add_argument(
        "--band-scheduler",
        default="proposed",
        help="agent spec whose own decision rows are checked with its rate estimate as an adversary (it must "
        "have decision_rows, batchenv/decision_rows.py); '' to skip (default: proposed)",
    )
    band.add_argument(
        "--bands",
        default="1,1.25,2",
        help="band factors f: the estimate may be any rate in [r / f, r x f]; 1 is the exact estimate "
        "(default: 1,1.25,2)",
    )
    band.add_argument(
        "--robust",
        action="store_true",
        help="also check the robust scheduler (agents/robust) as an adversarial switch among its experts, "
        "each within every band of --bands: Storm's bounds (f) and, in the timed automata, its queue bound "
        "and worst-case latency (docs/formal.md; results: docs/results/verification_robust.md)",
    )
    band.add_argument(
        "--agent-seeds",
        type=int,
        default=3,
        help="seeds of each real agent's event simulation against its table; 0 to skip (default: 3)",
    )
    band.add_argument(
        "--agent-horizon-s",
        type=float,
        default=None,
        help=_size_help("agent_horizon_s", "simulated seconds per seed of each real agent and its table"),
    )
    ta = parser.add_argument_group("timed automata (TChecker)")
    ta.add_argument(
        "--no-ta",
        action="store_true",
        help="skip the timed-automata stage (it runs by default when TChecker is installed)",
    )
    ta.add_argument(
        "--ta-only",
        action="store_true",
        help="only the timed-automata stage (no Storm run); replaces the timed-automata section of --out",
    )
    ta.add_argument(
        "--ta-bursts",
        default="1,2,3",
        help="burst sizes b of the token-bucket arrival curve for the queue bound and worst-case latency "
        "(default: 1,2,3; each b costs about 2.5 times the one before)",
    )
    ta.add_argument(
        "--ta-unit-ms",
        type=float,
        default=DEFAULT_TA_UNIT_MS,
        help=f"time unit of the timed automata in ms (default: {DEFAULT_TA_UNIT_MS:g})",
    )
    ta.add_argument(
        "--ta-queue-cap", type=int, default=32, help="queue capacity of the timed automata (default: 32)"
    )
    ta.add_argument(
        "--ta-out",
        type=Path,
        default=None,
        help="JSON results of the stage (default: docs/results/verification_default_ta.json, with "
        "--full docs/results/verification_ta.json)",
    )
    cross = parser.add_argument_group("cross-checks")
    cross.add_argument(
        "--ticks", type=int, default=None, help=_size_help("ticks", "ticks per policy in the tick simulator")
    )
    cross.add_argument(
        "--sim-horizon-s",
        type=float,
        default=None,
        help=_size_help("sim_horizon_s", "simulated seconds per policy in the event-driven simulator"),
    )
    cross.add_argument("--seed", type=int, default=0, help="seed of both simulations (default: 0)")
    out = parser.add_argument_group("outputs")
    out.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown report, with its JSON next to it (<stem>.json) (default: "
        "docs/results/verification_default.md, with --full docs/results/verification.md)",
    )
    out.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS,
        help=f"where --uppaal and --prism write models (default: {DEFAULT_MODELS.relative_to(REPO)})",
    )
    out.add_argument(
        "--uppaal",
        action="store_true",
        help="write the timed-automata models (batching.xml/.q with every observer and batching.tck, the "
        "same network for TChecker; batching_finite.xml/.q with finitely many arrivals) and run UPPAAL's "
        "verifyta on them if it is on PATH (UPPAAL is not pip-installable; without it the files are only "
        "written)",
    )
    out.add_argument("--uppaal-only", action="store_true", help="only the UPPAAL part (no Storm run)")
    out.add_argument(
        "--uppaal-policy",
        default=DEFAULT_UPPAAL_POLICY,
        help="scheduler of the UPPAAL model: 'smdp' (the SMDP optimum's table) or timeout(B, T ms) that uses "
        f"models[i] once the queue reaches thresholds[i-1] (default: {DEFAULT_UPPAAL_POLICY})",
    )
    out.add_argument("--prism", action="store_true", help="write the PRISM MDP and its properties file")
    add_execution_arguments(parser, default_jobs=2)
    return parser


NUMERIC_FLAGS: tuple[tuple[str, float, float, bool], ...] = (
    # flag, lowest, highest, lowest allowed (False: must be above it)
    ("--rate", 0.0, 100_000.0, False),
    ("--tick-ms", 1.0, 5.0, True),
    ("--queue-cap", 1, 1024, True),
    ("--overflow-s", 0.0, 3600.0, False),
    ("--cpu-budget-s", 0.0, 86_400.0, True),
    ("--agent-seeds", 0, 100, True),
    ("--agent-horizon-s", 0.0, 100_000.0, False),
    ("--ta-unit-ms", 0.1, 5.0, True),
    ("--ta-queue-cap", 2, 64, True),
    ("--ticks", 1, 1_000_000_000, True),
    ("--sim-horizon-s", 0.0, 1_000_000.0, False),
    ("--seed", 0, 2**32 - 1, True),
)
"""Every numeric flag with its allowed range, checked before anything runs or is written."""


def check_numeric_flags(args: argparse.Namespace) -> None:
    """ConfigError naming the first numeric flag outside its range (:data:`NUMERIC_FLAGS`)."""

    for flag, low, high, closed in NUMERIC_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        above = value >= low if closed else value > low
        if not (math.isfinite(value) and above and value <= high):
            bracket = "[" if closed else "("
            raise ConfigError(flag, f"must be in {bracket}{low:g}, {high:g}], got {value!r}")


def check_agent_specs(specs: tuple[str, ...]) -> None:
    """AgentSpecError for an unknown agent name or a checkpoint path that is not a file (no agent
    is built here)."""
    from agents.registry import AgentSpecError, parse_agent_spec

    for text in specs:
        spec = parse_agent_spec(text)
        if spec.path is not None and not spec.path.is_file():
            raise AgentSpecError(f"checkpoint {text!r} is not a file")


def shipped_checkpoints(scenario: str) -> list[Path]:
    """The shipped checkpoints trained for ``scenario``'s system: the ``<algo>_<scenario>.zip``
    and ``<algo>_<scenario>_mixture.zip`` (trained on the workload mixture of the same system)
    files listed in ``checkpoints/SHA256SUMS`` (never a glob: an unlisted file is not loaded)."""
    manifest = CHECKPOINTS / "SHA256SUMS"
    names = [line.split("  ", 1)[1] for line in manifest.read_text().splitlines() if "  " in line]
    wanted = {f"{scenario}.zip", f"{scenario}_mixture.zip"}
    return [CHECKPOINTS / name for name in sorted(names) if name.split("_", 1)[-1] in wanted]


def _load_config(args: argparse.Namespace):

    if args.config is not None:
        return SystemConfig.from_yaml(args.config)
    return load_scenario(args.scenario)


def uppaal_policy(config, text: str):
    """The UPPAAL model's policy from ``B=..,T=..,models=a/b,thresholds=x/y``: timeout(B, T ms)
    on model ``models[i]`` once the queue reaches ``thresholds[i-1]``."""

    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("B", "T", "models", "thresholds"):
            raise ConfigError(
                "--uppaal-policy", f"expected B=..,T=..,models=a/b,thresholds=x/y, got {item!r}"
            )
        fields[key.strip()] = value.strip()
    try:
        models = tuple(int(m) for m in fields.get("models", "0").split("/") if m)
        thresholds = tuple(int(t) for t in fields.get("thresholds", "").split("/") if t)
        policy = TimeoutPolicy(int(fields.get("B", "8")), float(fields.get("T", "10")), models, thresholds)
    except ValueError as exc:
        raise ConfigError("--uppaal-policy", f"numbers expected: {exc}") from None
    return policy.validate(config)


def ta_unsupported_reason(config: SystemConfig) -> str | None:
    """Why the timed-automata stage cannot check ``config``, or None if it can: it checks the
    SMDP optimum of the scenario as it is (one worker, Poisson arrivals, no SLO penalty;
    :func:`agents.smdp.check_supported`)."""
    from agents.smdp import check_supported

    try:
        check_supported(config)
    except ConfigError as exc:
        return (
            f"{exc} (the timed-automata stage checks the SMDP optimum of the scenario as it is: "
            "one worker, Poisson arrivals, no SLO penalty)"
        )
    return None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _bands(args: argparse.Namespace) -> tuple[float, ...]:
    """``--bands`` as numbers in [1, 100] (ConfigError naming the flag otherwise)."""

    try:
        bands = tuple(float(b) for b in args.bands.split(",") if b.strip())
    except ValueError:
        bands = ()
    if not bands or any(not 1.0 <= b <= 100.0 for b in bands):
        raise ConfigError("--bands", f"comma-separated numbers in [1, 100] expected, got {args.bands!r}")
    return bands


def _ta_settings(args: argparse.Namespace, config, rate: float):

    try:
        bursts = tuple(int(b) for b in args.ta_bursts.split(",") if b.strip())
    except ValueError:
        raise ConfigError(
            "--ta-bursts", f"comma-separated integers expected, got {args.ta_bursts!r}"
        ) from None
    jobs = backend_spec_from_args(args)[0].jobs or 2  # --jobs, or its default (2 for a cluster left unsized)
    return TASettings(config, rate, args.ta_unit_ms, args.ta_queue_cap, bursts, jobs=jobs)


def _uppaal_table(args: argparse.Namespace, config, settings):

    if args.uppaal_policy.strip() == "smdp":
        schedulers = default_schedulers(settings, band_scheduler=None).schedulers
        return next((name, t) for name, t in schedulers if name.startswith("SMDP"))
    policy = uppaal_policy(config, args.uppaal_policy)
    return policy.name, from_timeout(policy, config, queue_cap=settings.queue_cap, unit_ms=settings.unit_ms)


def _run_uppaal(args: argparse.Namespace, config, settings, console) -> None:

    name, table = _uppaal_table(args, config, settings)
    checks = TAChecks(None, settings)
    models, networks = uppaal_models(checks, name, table, max(settings.bursts))
    for model in models:
        problems = lint(model.xml)
        if problems:
            raise RuntimeError(f"{model.name}: generated UPPAAL model fails its name check: {problems}")
    paths = write_models(models, args.models_dir)
    paths.append(write_atomic(args.models_dir / "batching.tck", to_tchecker(networks[0])))
    console.print(f"timed-automata models ({name}) written: " + ", ".join(_display(p) for p in paths))
    for model in models:
        xml, queries = args.models_dir / f"{model.name}.xml", args.models_dir / f"{model.name}.q"
        result = run_verifyta(xml, queries)
        if result is None:
            console.print(
                "[yellow]verifyta is not on PATH: UPPAAL is not installed here (it is not "
                "pip-installable), so the UPPAAL queries were not run.[/yellow] Run them with "
                f"`verifyta {_display(xml)} {_display(queries)}` or open the model in the UPPAAL GUI; "
                "the same properties are checked with TChecker by the timed-automata stage."
            )
            break
        code, output = result
        console.print(f"verifyta {_display(xml)} exited with {code}:\n{output}")


def _before_ta_section(text: str) -> str:
    """The Markdown before the timed-automata section of ``text`` (all of it when there is none),
    without trailing newlines; empty when the section is the file's first line."""

    return ("\n" + text).split(f"\n{SECTION_TITLE}\n", 1)[0].strip("\n")


def _replace_ta_section(args: argparse.Namespace, report, command: str, console) -> None:
    """Write the stage's JSON (``--ta-out``) and put its section at the end of the Markdown report
    ``--out`` in place of the one there (the Storm part, from its own command, stays as it is)."""

    path = args.out
    text = path.read_text() if path.is_file() else ""
    head = _before_ta_section(text)
    write_together(
        {
            path: (head + "\n\n" if head else "") + markdown_section(report, command),
            args.ta_out: _json_text(to_json(report, command)),
        }
    )
    console.print(f"wrote {_display(args.ta_out)} and the timed-automata section of {_display(path)}")


def _run_ta(args: argparse.Namespace, settings, console, command: str):
    """The timed-automata stage; None (with a message) when TChecker is not installed."""

    try:
        tck = find_tchecker()
    except TCheckerMissingError as exc:
        console.print(f"[yellow]timed-automata stage skipped: {exc}[/yellow]")
        return None
    stage = default_schedulers(
        settings,
        band_scheduler=args.band_scheduler or None,
        bands=_bands(args),
        portfolio_scheduler=ROBUST if args.robust else None,
    )
    report = run_ta(
        settings,
        tck,
        stage.schedulers,
        progress=lambda msg: console.print(f"  {msg}", style="dim"),
        skip=stage.skip,
    )
    report.notes += stage.notes
    for r in report.results:
        style = "" if r.holds else "bold red"
        value = "-" if r.value is None else f"{r.value:g} {r.unit}"
        arrivals = r.arrivals.replace("token bucket ", "").replace(", 1 per ", "/")
        verdict = "holds" if r.holds else ("FAILS" if r.decided else "NO VERDICT")
        console.print(
            f"  {r.scheduler[:30]:30s} {r.prop:18s} {arrivals[:22]:22s} "
            f"{verdict} {value:>12s} {r.seconds:5.1f} s",
            style=style,
            soft_wrap=True,
        )
    console.print(f"timed automata: {report.seconds:.1f} s")
    return report


def _write_prism(args: argparse.Namespace, tm, console) -> None:

    props = "\n".join(
        [
            "// Properties of batching_mdp.prism (see docs/formal.md). Run with",
            "//   storm --prism batching_mdp.prism --prop batching.props",
            "//   prism batching_mdp.prism batching.props",
            "// (a) timeout safety over every scheduler: expected 0",
            'Pmax=? [ F "violation" ]',
            "// (b) optimal long-run cost per tick (divide by the mean arrivals per tick for per request)",
            'R{"cost"}min=? [ LRA ]',
            "// worst-case probability that the queue fills up within one second",
            f'Pmax=? [ F<={max(1, round(1.0 / tm.tick_s))} "full" ]',
            "",
        ]
    )
    paths = [
        write_program(mdp_program(tm), args.models_dir / "batching_mdp.prism"),
        write_program(props, args.models_dir / "batching.props"),
    ]
    console.print("PRISM model written: " + ", ".join(_display(p) for p in paths))


def _process_tree_cpu_s() -> float:
    """CPU time (s) of this process and of every child process it has waited for (the worker
    processes, Storm's solver children, TChecker)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def whole_run_line(wall_s: float, cpu_s: float, load_before: float, load_after: float) -> str:
    """The report's last line: the whole run's time (Storm, the simulations and the timed
    automata), with the 1-minute load average before and after (a loaded machine stretches the
    wall time, not the CPU time)."""
    return (
        f"Whole run (every stage): {wall_s:.1f} s wall time, {cpu_s:.1f} s CPU time in all its processes; "
        f"load average {load_before:.1f} before, {load_after:.1f} after."
    )


def main(argv: list[str] | None = None) -> int:
    run_start, cpu_start, load_before = time.perf_counter(), _process_tree_cpu_s(), os.getloadavg()[0]
    args = resolve_sizes(_parser().parse_args(argv))

    console = Console()
    command = "python verify.py" + (
        "" if not argv and len(sys.argv) <= 1 else " " + shlex.join(argv or sys.argv[1:])
    )
    from agents.registry import AgentSpecError, split_specs

    try:
        check_numeric_flags(args)
        config = _load_config(args)
        from formal.verification import Settings, run_verification

        agents = tuple(split_specs(args.agents))
        if agents == ("auto",):
            shipped = shipped_checkpoints(config.name)
            agents = (*split_specs(DEFAULT_AGENTS), *(_display(p) for p in shipped))
        check_agent_specs(agents)
        if args.band_scheduler:
            check_agent_specs((args.band_scheduler,))
        execution, warnings = backend_spec_from_args(args)
        for warning in warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        bands = _bands(args)
        settings = Settings(
            config=config,
            rate_per_s=args.rate,
            tick_ms=args.tick_ms,
            queue_cap=args.queue_cap,
            overflow_s=args.overflow_s,
            agents=agents,
            crosscheck_ticks=args.ticks,
            sim_horizon_s=args.sim_horizon_s,
            jobs=execution.jobs or 2,
            seed=args.seed,
            backend=execution.name,
            address=execution.address,
            arrivals=args.arrivals,
            band_scheduler=args.band_scheduler or None,
            bands=bands,
            cpu_budget_s=args.cpu_budget_s,
            agent_seeds=args.agent_seeds,
            agent_horizon_s=args.agent_horizon_s,
            portfolio_scheduler=ROBUST if args.robust else None,
        )
        tm = settings.tick_model()
        ta_settings = _ta_settings(args, config, tm.rate_per_s)
        if args.uppaal or args.uppaal_only:
            _run_uppaal(args, config, ta_settings, console)
        if args.prism:
            _write_prism(args, tm, console)
        if args.uppaal_only:
            return 0
        ta_unsupported = None if args.no_ta else ta_unsupported_reason(config)
        if args.ta_only:
            try:
                find_tchecker()
            except TCheckerMissingError as exc:
                console.print(f"[red]error:[/red] --ta-only: {exc}")
                return 2
            if ta_unsupported is not None:
                console.print(f"[red]error:[/red] --ta-only: {ta_unsupported}", soft_wrap=True)
                return 2
            ta_report = _run_ta(args, ta_settings, console, command)
            if ta_report is not None:
                _replace_ta_section(args, ta_report, command, console)
            return 0 if ta_report is not None and ta_report.ok else 1
        check_costs_modelled(tm)
    except (ConfigError, AgentSpecError, ExecutionUsageError) as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return 2
    from formal.report import markdown, report_data, rich_tables

    if ta_unsupported is not None:
        console.print(f"[yellow]timed-automata stage skipped: {ta_unsupported}[/yellow]", soft_wrap=True)
    console.print(f"Storm: {tm.describe()}")
    start = time.perf_counter()
    report = run_verification(settings, progress=lambda msg: console.print(f"  {msg}", style="dim"))
    for table in rich_tables(report):
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    run_ta = not args.no_ta and ta_unsupported is None
    ta_report = _run_ta(args, ta_settings, console, command) if run_ta else None

    if report.safety is None and not any(r.figures is not None for r in report.rows):
        console.print(
            f"[red]error:[/red] no check produced a result (see the notes above); {_display(args.out)} "
            "and its JSON are left as they were"
        )
        return 1
    text = markdown(report, command, reduced_settings_note(args))
    if ta_report is not None:
        text = text.rstrip("\n") + "\n\n" + markdown_section(ta_report, command)
    run = {
        "wall_s": time.perf_counter() - run_start,
        "cpu_s": _process_tree_cpu_s() - cpu_start,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    text = text.rstrip("\n") + "\n\n" + whole_run_line(*run.values()) + "\n"
    outputs: dict[Path, str] = {
        args.out: text,
        args.out.with_suffix(".json"): _json_text({**report_data(report, command), "whole_run": run}),
    }
    if ta_report is not None:
        outputs[args.ta_out] = _json_text(to_json(ta_report, command))
    write_together(outputs)
    console.print(
        "wrote " + ", ".join(_display(p) for p in outputs) + f" ({time.perf_counter() - start:.1f} s)"
    )
    ok = (
        report.safety is not None
        and report.safety.holds
        and all(r.figures is not None for r in report.rows)
        and all(b.figures is not None for b in report.bands + report.portfolio + report.portfolio_experts)
    )
    return 0 if ok and (ta_report is None or ta_report.ok) else 1


ROBUST = "robust"
"""Agent spec of the portfolio scheduler ``--robust`` checks."""

SIZE_FLAGS = (
    "--agents",
    "--tick-ms",
    "--queue-cap",
    "--cpu-budget-s",
    "--bands",
    "--agent-seeds",
    "--agent-horizon-s",
    "--ta-bursts",
    "--ta-queue-cap",
    "--ticks",
    "--sim-horizon-s",
)
"""Flags that size the run: a report made with other values than the defaults says so."""


def reduced_settings_note(args: argparse.Namespace) -> str:
    """A line for the report when a sizing flag differs from the preset's value (the default
    sizes, or those of ``--full``; "" when none does)."""
    args = resolve_sizes(args)
    preset = resolve_sizes(_parser().parse_args(["--full"] if args.full else []))
    changed = [
        f"{flag} {getattr(args, flag[2:].replace('-', '_'))}"
        for flag in SIZE_FLAGS
        if getattr(args, flag[2:].replace("-", "_")) != getattr(preset, flag[2:].replace("-", "_"))
    ]
    if not changed:
        return ""
    run = "python verify.py --full" if args.full else "python verify.py"
    return (
        f"**Settings other than those of `{run}`** ({', '.join(changed)}): docs/formal.md gives the "
        "sizes and times of `python verify.py` and `python verify.py --full`."
    )


def _json_text(data: object) -> str:

    return json.dumps(data, indent=2) + "\n"


def write_together(outputs: dict[Path, str]) -> None:
    """Write every file of ``outputs`` to a temporary name next to it, then rename them all: an
    error or an interruption before the renames leaves every earlier file as it was."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in outputs.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            staged.append((tmp, path))
            tmp.write_text(text)
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
