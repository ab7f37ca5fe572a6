"""Where the training seeds of an experiment fail: per load band, how many seeds are over the 2%
goal, read from the JSON files that ``benchmarks/learning.py`` writes (no training, no simulation).

A seed *fails* on a scenario when its model's mean cost per request is more than
:data:`TOLERANCE` above the better of greedy and the tuned timeout there (``gap_to_baselines``
of the assessment, ``benchmarks/learning.py``). The assessment scenarios fall into bands by
their arrivals (:func:`band`):

- ``busy``: stationary arrivals (Poisson or a trace) at :data:`BUSY_LOAD` of LLM-3's capacity or
  more (the suite's 50-95% loads and the test halves at 60%);
- ``moderate``: stationary arrivals from :data:`MODERATE_RATE_PER_S` requests/s up to the busy
  band (the 25-30% loads, ``default``, ``azure_trace``);
- ``slo``: a scenario that charges an SLO penalty (``reward.w_slo`` > 0);
- the rest (quiet servers, MMPP bursts, diurnal and randomised rates) belong to no band, but a
  seed over the goal there is not *clean*: a clean seed is within the goal on every scenario.

For each experiment the table counts the failing seeds per band and, against a reference
experiment (``--reference``), gives Fisher's exact test (two-sided) of each count: the chance
of a difference at least as large if both experiments failed equally often.

Usage::

    python benchmarks/learning_bands.py benchmarks/results/learning_blank_seeds.json \\
        benchmarks/results/learning_short.json --reference ppo_mixture_high_slo_eval \\
        --markdown docs/results/learning_bands.md

An experiment that appears in several files is merged by model path (the same run assessed
twice is counted once, from the first file that holds it).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scipy.stats import fisher_exact  # noqa: E402

from batchenv.config import ConfigError, SystemConfig  # noqa: E402
from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from batchenv.scenarios import load_scenario  # noqa: E402
from batchenv.timing import model_capacity_per_s  # noqa: E402

__all__ = ["BANDS", "ExperimentSeeds", "band", "collect", "main", "render", "summarise"]

TOLERANCE = 0.02
"""The goal of issue-level claims in docs/rl.md: at most 2% above the baselines."""
BUSY_LOAD = 0.45
"""Lowest share of LLM-3's capacity (one worker, default system) of the busy band. The suite has
no stationary scenario between 30% and 50%, so any value in between gives the same bands."""
MODERATE_RATE_PER_S = 100.0
"""Lowest mean arrival rate (requests/s) of the moderate band."""
BANDS = ("busy", "moderate", "slo")
SCENARIO_NAME = re.compile(r"[A-Za-z0-9_]+")
"""What a scenario name of a results file may hold: a name of the suite, never a path."""
MAX_FILE_BYTES = 64 * 2**20
"""Largest results file read (a learning JSON of 34 scenarios and 20 seeds is about 1 MB)."""


def band(scenario: str, capacity_per_s: float) -> str | None:
    """The band of an assessment scenario (``busy``, ``moderate``, ``slo``), or None.

    :param capacity_per_s: LLM-3's largest throughput on one worker (requests/s).
    """
    if not SCENARIO_NAME.fullmatch(scenario):
        raise SystemExit(f"scenario {scenario!r}: not a scenario name (letters, digits and '_')")
    try:
        config = load_scenario(scenario)
    except ConfigError as exc:
        raise SystemExit(f"scenario {scenario!r} of the results: {exc}") from None
    if config.reward.w_slo > 0:
        return "slo"
    arrivals = config.arrivals
    if arrivals.process not in ("poisson", "trace") or arrivals.rate_range_per_s is not None:
        return None
    rate = arrivals.mean_rate_per_s
    if rate >= BUSY_LOAD * capacity_per_s:
        return "busy"
    if rate >= MODERATE_RATE_PER_S:
        return "moderate"
    return None


def default_capacity_per_s() -> float:
    """LLM-3's largest throughput on the default system (requests/s)."""
    return model_capacity_per_s(SystemConfig(), "LLM-3")


@dataclass
class ExperimentSeeds:
    """Per model (training seed) of one experiment, the scenarios where it is over the goal."""

    name: str
    models: list[str] = field(default_factory=list)
    failures: dict[str, set[str]] = field(default_factory=dict)
    """model path -> the scenarios where its gap to the baselines is over :data:`TOLERANCE`."""
    scenarios: set[str] = field(default_factory=set)

    def failing(self, band_of: dict[str, str | None], which: str) -> list[str]:
        """The models over the goal on at least one scenario of band ``which``."""
        return [m for m in self.models if any(band_of.get(s) == which for s in self.failures[m])]

    def clean(self) -> list[str]:
        """The models within the goal on every assessed scenario."""
        return [m for m in self.models if not self.failures[m]]


def _read(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SystemExit(f"results file {path}: cannot read it ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise SystemExit(f"results file {path}: {size} bytes, more than the {MAX_FILE_BYTES} allowed")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SystemExit(f"results file {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("assessment"), dict):
        raise SystemExit(f"results file {path}: no 'assessment' object (written by benchmarks/learning.py?)")
    return data


def _file_failures(path: Path) -> dict[str, dict[str, tuple[set[str], set[str]]]]:
    """Per experiment and model of one file: the scenarios assessed and those over the goal."""
    out: dict[str, dict[str, tuple[set[str], set[str]]]] = {}
    for scenario, entry in _read(path)["assessment"].items():
        agents = entry.get("agents", {}) if isinstance(entry, dict) else {}
        for name, agent in agents.items():
            for row in agent.get("models", []) if isinstance(agent, dict) else []:
                try:
                    model, gap = str(row["model"]), float(row["gap_to_baselines"])
                except (KeyError, TypeError, ValueError):
                    raise SystemExit(
                        f"results file {path}: scenario {scenario!r}, agent {name!r}: a model row "
                        "without 'model' and a numeric 'gap_to_baselines'"
                    ) from None
                assessed, over = out.setdefault(name, {}).setdefault(model, (set(), set()))
                assessed.add(scenario)
                if gap > TOLERANCE:
                    over.add(scenario)
    return out


def collect(paths: Sequence[Path]) -> dict[str, ExperimentSeeds]:
    """Every experiment's models and failures over the assessment of the files ``paths``; a
    model in several files is taken from the first."""
    experiments: dict[str, ExperimentSeeds] = {}
    for path in paths:
        for name, models in _file_failures(path).items():
            exp = experiments.setdefault(name, ExperimentSeeds(name))
            for model, (assessed, over) in models.items():
                if model not in exp.failures:
                    exp.models.append(model)
                    exp.failures[model] = over
                    exp.scenarios |= assessed
    return experiments


def _seed_of(model: str) -> str:
    """The training seed in a run's model path (``..._seed7/best_model.zip`` -> ``7``)."""
    stem = Path(model).parent.name
    return stem.rsplit("_seed", 1)[1] if "_seed" in stem else stem


def _fisher(a: int, n_a: int, b: int, n_b: int) -> float:
    return float(fisher_exact([[a, n_a - a], [b, n_b - b]])[1])


def _counts(row: dict[str, Any]) -> dict[str, int]:
    """Seeds failing per band and clean seeds of one experiment's row of :func:`summarise`."""
    return {which: len(row["failing"][which]) for which in BANDS} | {"clean": len(row["clean"])}


def _p_text(p: float) -> str:
    """``p = 0.049``, or ``p < 0.001`` below what three decimals show."""
    return "p < 0.001" if p < 0.0005 else f"p = {p:.3f}"


def summarise(
    experiments: dict[str, ExperimentSeeds], reference: str | None, command: str, capacity_per_s: float
) -> dict[str, Any]:
    """The results (JSON-ready): the bands' scenarios and, per experiment, its seeds, the seeds
    failing in each band, the clean seeds and, against ``reference``, Fisher's p of each count."""
    if reference is not None and reference not in experiments:
        read = ", ".join(experiments)
        raise SystemExit(f"--reference {reference!r}: not among the experiments read ({read})")
    scenarios = sorted(set().union(*(e.scenarios for e in experiments.values())))
    band_of = {s: band(s, capacity_per_s) for s in scenarios}
    rows: dict[str, Any] = {}
    for exp in experiments.values():
        rows[exp.name] = {
            "seeds": len(exp.models),
            "failing": {which: [_seed_of(m) for m in exp.failing(band_of, which)] for which in BANDS},
            "clean": [_seed_of(m) for m in exp.clean()],
        }
    if reference is not None:
        ref = rows[reference]
        ref_counts = _counts(ref)
        for name, row in rows.items():
            if name != reference:
                counts = _counts(row)
                row["p_vs_reference"] = {
                    k: _fisher(counts[k], row["seeds"], ref_counts[k], ref["seeds"]) for k in counts
                }
    return {
        "meta": {
            "command": command,
            "tolerance": TOLERANCE,
            "busy_load": BUSY_LOAD,
            "moderate_rate_per_s": MODERATE_RATE_PER_S,
            "capacity_per_s": capacity_per_s,
            "reference": reference,
        },
        "bands": {which: [s for s in scenarios if band_of[s] == which] for which in BANDS},
        "experiments": rows,
    }


def render(summary: dict[str, Any]) -> str:
    """The markdown page of :func:`summarise`'s results."""
    meta, reference = summary["meta"], summary["meta"]["reference"]
    lines = [
        "# Learning: failing training seeds per load band",
        "",
        f"Produced by `{meta['command']}` (reads the results files only). A seed fails on a scenario "
        f"when its model is more than {meta['tolerance']:.0%} above the better of greedy and the tuned "
        f"timeout there. Bands: **busy** = stationary arrivals at {meta['busy_load']:.0%} or more of "
        f"LLM-3's capacity ({meta['capacity_per_s']:.2f} requests/s); **moderate** = stationary "
        f"arrivals from {meta['moderate_rate_per_s']:g} requests/s up to the busy band; **slo** = an "
        "SLO penalty; **clean** = within the goal on every assessed scenario. Cells: failing seeds / "
        "seeds (the seeds)"
        + (f"; p = Fisher's exact test (two-sided) against `{reference}`." if reference else "."),
        "",
    ]
    for which, members in summary["bands"].items():
        lines.append(f"- {which}: {', '.join(f'`{s}`' for s in members) or 'none'}")
    lines += ["", "| experiment | seeds | busy | moderate | slo | clean |", "|---|---:|---|---|---|---|"]
    for name, row in summary["experiments"].items():
        n, p = row["seeds"], row.get("p_vs_reference")
        cells = []
        for which in BANDS:
            failing = row["failing"][which]
            cell = f"{len(failing)}/{n} ({', '.join(failing) or '-'})"
            cells.append(cell + (f", {_p_text(p[which])}" if p else ""))
        clean = f"{len(row['clean'])}/{n}" + (f", {_p_text(p['clean'])}" if p else "")
        lines.append(f"| `{name}` | {n} | {' | '.join(cells)} | {clean} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSON files written by benchmarks/learning.py")
    parser.add_argument("--reference", default=None, help="experiment the others are tested against")
    parser.add_argument(
        "--experiments",
        default=None,
        help="comma-separated experiments to count, in this order (default: every one read, in file order)",
    )
    parser.add_argument("--markdown", type=Path, default=None, help="write the page here (default: print it)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    command = "python benchmarks/learning_bands.py " + shlex.join(
        [str(a) for a in (argv if argv is not None else sys.argv[1:])]
    )
    experiments = collect(args.results)
    if not experiments:
        raise SystemExit("no experiment assessed in " + ", ".join(map(str, args.results)))
    if args.experiments is not None:
        wanted = [name for name in args.experiments.split(",") if name]
        unknown = [name for name in wanted if name not in experiments]
        if unknown or not wanted:
            missing, read = ", ".join(unknown) or "none", ", ".join(experiments)
            raise SystemExit(f"--experiments {args.experiments!r}: {missing} not read ({read})")
        experiments = {name: experiments[name] for name in wanted}
    summary = summarise(experiments, args.reference, command, default_capacity_per_s())
    if args.out is not None:
        write_json_atomic(args.out, summary)
        print(f"wrote {args.out}")
    page = render(summary)
    if args.markdown is None:
        print(page, end="")
    else:
        write_atomic(args.markdown, page)
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
