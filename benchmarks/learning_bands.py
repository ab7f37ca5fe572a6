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

A second table asks how well a release by the training evaluation does: a run keeps the model
with the lowest mean gap to the reference over its training-side evaluation targets
(``kept_gap`` of the results file, never a test half), and a release is the kept model of the
seed with the lowest such gap. :func:`pick_clean_chance` gives the chance that this pick among
k seeds drawn at random from the experiment's is clean, exactly over every k-subset, with a
percentile bootstrap interval over the seeds (:data:`BOOTSTRAP_RESAMPLES`, a fixed generator
seed: the same files give the same page); and Spearman's rank correlation between the training
evaluation and the seed's worst gap on the assessment.

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
import math
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy.stats import fisher_exact, spearmanr  # noqa: E402

from batchenv.config import ConfigError, SystemConfig  # noqa: E402
from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from batchenv.scenarios import load_scenario  # noqa: E402
from batchenv.timing import model_capacity_per_s  # noqa: E402

__all__ = ["BANDS", "ExperimentSeeds", "band", "collect", "main", "pick_clean_chance", "render", "summarise"]

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
PICK_SIZES = (1, 3, 5)
"""Numbers of seeds the release picks from, in the second table (besides all of them)."""
BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the seeds behind each interval of the second table."""
BOOTSTRAP_SEED = 0
"""Seed of the bootstrap's generator (fixed: the page is a function of the files)."""
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
    worst: dict[str, float] = field(default_factory=dict)
    """model path -> its largest gap to the baselines over the assessed scenarios (a fraction)."""
    selection: dict[str, float] = field(default_factory=dict)
    """model path -> its run's training evaluation at the kept step (mean gap to the reference
    over the training-side targets, a fraction); absent when the results file does not say."""
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


@dataclass
class _Assessed:
    """One model's assessment in one results file."""

    scenarios: set[str] = field(default_factory=set)
    over: set[str] = field(default_factory=set)
    worst: float = -math.inf


def _file_selection(path: Path, data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per experiment of one file, each model's training evaluation at its kept step (models whose
    file gives none are left out)."""
    out: dict[str, dict[str, float]] = {}
    experiments = data.get("experiments", {})
    for name, entry in experiments.items() if isinstance(experiments, dict) else ():
        models, gaps = (
            (entry.get("models"), entry.get("kept_gap")) if isinstance(entry, dict) else (None, None)
        )
        if not isinstance(models, list) or not isinstance(gaps, list) or len(models) != len(gaps):
            raise SystemExit(
                f"results file {path}: experiment {name!r}: 'models' and 'kept_gap' must be lists of "
                "the same length"
            )
        for model, gap in zip(models, gaps, strict=True):
            if gap is None:
                continue
            if isinstance(gap, bool) or not isinstance(gap, int | float) or not math.isfinite(gap):
                raise SystemExit(
                    f"results file {path}: experiment {name!r}: kept_gap {gap!r} is not a finite number"
                )
            out.setdefault(name, {})[str(model)] = float(gap)
    return out


def _file_failures(path: Path, data: dict[str, Any]) -> dict[str, dict[str, _Assessed]]:
    """Per experiment and model of one file: the scenarios assessed, those over the goal and
    the largest gap."""
    out: dict[str, dict[str, _Assessed]] = {}
    for scenario, entry in data["assessment"].items():
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
                assessed = out.setdefault(name, {}).setdefault(model, _Assessed())
                assessed.scenarios.add(scenario)
                assessed.worst = max(assessed.worst, gap)
                if gap > TOLERANCE:
                    assessed.over.add(scenario)
    return out


def collect(paths: Sequence[Path]) -> dict[str, ExperimentSeeds]:
    """Every experiment's models and failures over the assessment of the files ``paths``; a
    model in several files is taken from the first."""
    experiments: dict[str, ExperimentSeeds] = {}
    for path in paths:
        data = _read(path)
        selection = _file_selection(path, data)
        for name, models in _file_failures(path, data).items():
            exp = experiments.setdefault(name, ExperimentSeeds(name))
            for model, assessed in models.items():
                if model not in exp.failures:
                    exp.models.append(model)
                    exp.failures[model] = assessed.over
                    exp.worst[model] = assessed.worst
                    exp.scenarios |= assessed.scenarios
                    if model in selection.get(name, {}):
                        exp.selection[model] = selection[name][model]
    return experiments


def _seed_of(model: str) -> str:
    """The training seed in a run's model path (``..._seed7/best_model.zip`` -> ``7``)."""
    stem = Path(model).parent.name
    return stem.rsplit("_seed", 1)[1] if "_seed" in stem else stem


def pick_clean_chance(scores: Sequence[float], clean: Sequence[bool], k: int) -> float:
    """The chance that, of ``k`` seeds drawn at random without replacement from these, the one
    with the lowest score is clean: exact, over every k-subset. A seed ranked r-th (0-based, by
    score; ties in listing order) is the pick of C(n - 1 - r, k - 1) of the C(n, k) subsets.
    Shapes (n,); ``1 <= k <= n``."""
    n = len(scores)
    if len(clean) != n or not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] with one clean flag per score, got k = {k}")
    order = sorted(range(n), key=lambda i: scores[i])
    picked = sum(math.comb(n - 1 - rank, k - 1) for rank, i in enumerate(order) if clean[i])
    return picked / math.comb(n, k)


def _bootstrap_interval(
    scores: np.ndarray, clean: np.ndarray, k: int, rng: np.random.Generator
) -> list[float]:
    """95% percentile interval of :func:`pick_clean_chance` over resamples of the seeds."""
    n = len(scores)
    draws = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    chances = [pick_clean_chance(scores[row].tolist(), clean[row].tolist(), k) for row in draws]
    return [float(q) for q in np.percentile(chances, [2.5, 97.5])]


def _pick(exp: ExperimentSeeds) -> dict[str, Any] | None:
    """The second table's row of one experiment, or None when a model has no training evaluation."""
    if any(m not in exp.selection for m in exp.models):
        return None
    scores = np.array([exp.selection[m] for m in exp.models])
    clean = np.array([not exp.failures[m] for m in exp.models])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n = len(exp.models)
    chance = {
        str(k): {
            "chance": pick_clean_chance(scores.tolist(), clean.tolist(), k),
            "ci95": _bootstrap_interval(scores, clean, k, rng),
        }
        for k in PICK_SIZES
        if k <= n
    }
    best = exp.models[int(np.argmin(scores))]
    return {
        "chance_clean": chance,
        "pick_of_all": {
            "seed": _seed_of(best),
            "clean": not exp.failures[best],
            "worst_gap": exp.worst[best],
        },
        "spearman_worst_gap": _rank_correlation(scores, [exp.worst[m] for m in exp.models]),
    }


def _rank_correlation(scores: np.ndarray, worst: list[float]) -> dict[str, float] | None:
    """Spearman's rho and its two-sided p between the training evaluation and the worst gaps;
    None with fewer than 3 seeds or when either side is constant (no ranking to compare)."""
    if len(scores) < 3 or np.ptp(scores) == 0 or max(worst) == min(worst):
        return None
    rho, p = spearmanr(scores, worst)
    return {"rho": float(rho), "p": float(p)}


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
            "pick": _pick(exp),
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
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            "bootstrap_seed": BOOTSTRAP_SEED,
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
    return "\n".join(lines + _render_picks(summary)) + "\n"


def _render_picks(summary: dict[str, Any]) -> list[str]:
    """The second table: how often the training evaluation's pick is clean."""
    sizes = " | ".join(f"pick of {k}" for k in PICK_SIZES)
    lines = [
        "",
        "## The training evaluation's pick",
        "",
        "A run keeps the model with the lowest mean gap to the reference over its training-side "
        "evaluation targets (no test half); a release is the kept model of the seed whose gap is "
        "lowest. *Pick of k*: the chance that the pick among k seeds drawn at random from the "
        "experiment's is clean, exact over every k-subset (k = 1: the share of clean seeds), with "
        f"a 95% percentile bootstrap interval over the seeds ({summary['meta']['bootstrap_resamples']:,} "
        "resamples). *Pick of all*: the seed picked among all and its worst gap on the assessment. "
        "*rho*: Spearman's rank correlation between the training evaluation and the worst gap on "
        "the assessment over the seeds (two-sided p).",
        "",
        f"| experiment | seeds | {sizes} | pick of all | rho (p) |",
        "|---|---:|" + "---|" * (len(PICK_SIZES) + 2),
    ]
    for name, row in summary["experiments"].items():
        pick = row.get("pick")
        if pick is None:
            lines.append(f"| `{name}` | {row['seeds']} | " + "n/a | " * (len(PICK_SIZES) + 2))
            continue
        cells = []
        for k in PICK_SIZES:
            cell = pick["chance_clean"].get(str(k))
            cells.append(
                "-"
                if cell is None
                else f"{cell['chance']:.2f} [{cell['ci95'][0]:.2f}, {cell['ci95'][1]:.2f}]"
            )
        best, rank = pick["pick_of_all"], pick["spearman_worst_gap"]
        verdict = "clean" if best["clean"] else "not clean"
        cells.append(f"seed {best['seed']}: {verdict} (worst {best['worst_gap']:+.2%})")
        cells.append("-" if rank is None else f"{rank['rho']:+.2f} ({_p_text(rank['p'])})")
        lines.append(f"| `{name}` | {row['seeds']} | {' | '.join(cells)} |")
    return lines


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
