"""The command line of ``verify.py`` (:mod:`apps.verify`): its parser, with the sizes of the
default run and of ``--full`` and the default output paths, and the checks of the flags' values,
which run before anything runs or is written."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from batchenv.config import ConfigError, SystemConfig
from batchenv.scenarios import load_scenario
from execution.cli import add_execution_arguments
from formal.policies import TimeoutPolicy

# agents.registry (torch, SB3) takes over a second to import: it is imported in the function
# that needs it (check_agent_specs), so that --help and flag errors answer at once.


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


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """verify.py's parser; ``description`` heads its ``--help`` (:func:`apps.verify.main` passes
    the first paragraph of its module's docstring)."""
    parser = argparse.ArgumentParser(
        prog="verify.py",
        description=description,
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
        help="(g) also check the robust scheduler (agents/robust) as an adversarial switch among its "
        "experts, each within every band of --bands: Storm's bounds and, in the timed automata, its queue "
        "bound and worst-case latency (docs/formal.md; results: docs/results/verification_robust.md)",
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
        help="write the timed-automata models (batching.xml/.q under the token bucket with every observer; "
        "batching_any.xml/.q under arrivals at any time, for timeout safety; batching_finite.xml/.q with "
        "finitely many arrivals, for the deadlock query; each network also as .tck for TChecker) and run "
        "UPPAAL's verifyta on them if it is on PATH (UPPAAL is not pip-installable; without it the files "
        "are only written)",
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


def load_config(args: argparse.Namespace):

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


def parse_bands(args: argparse.Namespace) -> tuple[float, ...]:
    """``--bands`` as numbers in [1, 100] (ConfigError naming the flag otherwise)."""

    try:
        bands = tuple(float(b) for b in args.bands.split(",") if b.strip())
    except ValueError:
        bands = ()
    if not bands or any(not 1.0 <= b <= 100.0 for b in bands):
        raise ConfigError("--bands", f"comma-separated numbers in [1, 100] expected, got {args.bands!r}")
    return bands


def reduced_settings_note(args: argparse.Namespace) -> str:
    """A line for the report when a sizing flag differs from the preset's value (the default
    sizes, or those of ``--full``; "" when none does)."""
    args = resolve_sizes(args)
    preset = resolve_sizes(build_parser().parse_args(["--full"] if args.full else []))
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
