"""Learning quality: how close PPO and DQN get to the exact optimum, and how fast.

For each algorithm and Poisson arrival rate, ``train.py`` trains on the default system at that rate
(``--env default --rate R``) and evaluates every ``--eval-freq`` steps on fixed seeds. This script
collects those evaluations and adds two references measured on the same seeds and horizon
(common random numbers): the exact optimum (``agents/optimal``) and the timeout baseline tuned for
that rate (:mod:`evaluation.tuning`, on its training seeds). It writes ``benchmarks/results/learning.json``
and a plot of cost per request against timesteps.

Gaps are relative costs, (cost - optimal cost) / optimal cost (docs/design.md, "Metrics").

Usage::

    python benchmarks/learning.py                          # 2 algos x 3 rates x 1M steps (hours on 2 cores)
    python benchmarks/learning.py --jobs 2 --n-timesteps 300000
    python benchmarks/learning.py --collect-only           # rebuild JSON and plot from finished runs
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agents.baselines import BASELINES  # noqa: E402
from agents.checkpoint import RLScheduler, load_checkpoint  # noqa: E402
from agents.optimal import OptimalScheduler  # noqa: E402
from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from batchenv.metrics import compute_metrics  # noqa: E402
from batchenv.scenarios import load_scenario  # noqa: E402
from batchenv.sim import simulate  # noqa: E402
from evaluation.stats import relative_gap  # noqa: E402
from evaluation.tuning import tune_scenario  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def run_name(algo: str, rate: float) -> str:
    return f"{algo}_default_rate{rate:g}_1"


def train_command(args: argparse.Namespace, algo: str, rate: float) -> list[str]:
    hyperparams = list(args.hyperparams)
    if args.discount_horizon_s:  # each step discounted by its simulated duration (agents/semi_markov)
        hyperparams.append(f"discount_horizon_s={args.discount_horizon_s:g}")
    if hyperparams:
        hyperparams = ["--hyperparams", *hyperparams]
    return [
        sys.executable,
        str(REPO / "train.py"),
        "--algo",
        algo,
        "--env",
        "default",
        "--rate",
        f"{rate:g}",
        "-n",
        str(args.n_timesteps),
        "--seed",
        str(args.seed),
        "--eval-freq",
        str(args.eval_freq),
        "--eval-seeds",
        ",".join(map(str, args.eval_seeds)),
        "--eval-horizon-s",
        f"{args.eval_horizon_s:g}",
        "--save-freq",
        "0",
        "--runs-dir",
        str(args.runs_dir),
        "--no-progress",
        *hyperparams,
    ]


def train_one(args: argparse.Namespace, algo: str, rate: float) -> float:
    """Train one (algo, rate) unless its run folder already has a final model; wall time (s)."""
    run = args.runs_dir / run_name(algo, rate)
    if (run / "final_model.zip").exists():
        return float("nan")
    if run.exists():
        raise SystemExit(f"{run} exists but is unfinished: remove it or use --collect-only")
    start = time.perf_counter()
    log = args.runs_dir / f"{algo}_rate{rate:g}.log"
    with open(log, "w") as handle:
        subprocess.run(train_command(args, algo, rate), check=True, stdout=handle, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def reference_costs(args: argparse.Namespace, rate: float) -> dict[str, object]:
    """Optimum and tuned timeout at ``rate``, on the evaluation seeds and horizon."""
    config = load_scenario("default").at_rate(rate)
    tuned = tune_scenario(config, agents=["timeout"])["timeout"]["params"]
    out: dict[str, object] = {"timeout_params": tuned}
    for key, scheduler in (
        ("optimal", OptimalScheduler(config, rate)),
        ("optimal_env_actions", OptimalScheduler(config, rate, action_set="whole")),
        ("timeout", BASELINES["timeout"](config, **tuned)),
    ):
        costs = [
            compute_metrics(simulate(config, scheduler, seed, horizon_s=args.eval_horizon_s)).cost_per_request
            for seed in args.eval_seeds
        ]
        out[f"{key}_cost_per_request"] = float(np.mean(costs))
    return out


def assess(args: argparse.Namespace, rate: float, run: Path) -> dict[str, object]:
    """The run's best and final models on fresh seeds (``--assess-seeds``, never used during
    training or model selection), paired with the optimum and the tuned timeout on the same
    arrivals: gap of the mean cost with the 95% CI of the seed-paired differences."""
    config = load_scenario("default").at_rate(rate)
    tuned = tune_scenario(config, agents=["timeout"])["timeout"]["params"]
    seeds = list(range(args.assess_seeds[0], args.assess_seeds[1]))

    def costs(scheduler) -> dict[int, float]:
        return {
            seed: compute_metrics(
                simulate(config, scheduler, seed, horizon_s=args.assess_horizon_s)
            ).cost_per_request
            for seed in seeds
        }

    optimum = costs(OptimalScheduler(config, rate))
    timeout = costs(BASELINES["timeout"](config, **tuned))
    out: dict[str, object] = {"seeds": [seeds[0], seeds[-1]], "horizon_s": args.assess_horizon_s}
    out["optimal_cost_per_request"] = float(np.mean(list(optimum.values())))
    out["timeout_gap"] = relative_gap(
        [{"seed": k, "cost_per_request": v} for k, v in timeout.items()], optimum
    )
    for model in ("best_model", "final_model"):
        learned = costs(RLScheduler(load_checkpoint(run / f"{model}.zip"), config))
        rows = [{"seed": k, "cost_per_request": v} for k, v in learned.items()]
        out[f"{model}_cost_per_request"] = float(np.mean(list(learned.values())))
        out[f"{model}_gap"] = relative_gap(rows, optimum)
    return out


def _policy_summary(metrics: dict[str, float]) -> str:
    """``'batch 44.2, L1 0% L2 43% L3 57%'``: mean batch size and model mix of an evaluation."""
    mix = " ".join(
        f"L{k.rsplit('-', 1)[1]} {v:.0%}" for k, v in sorted(metrics.items()) if k.startswith("model_mix/")
    )
    return f"batch {metrics.get('mean_batch_size', float('nan')):.1f}, {mix}"


def attempts(directory: Path) -> list[dict[str, object]]:
    """Summaries of earlier runs kept in ``directory`` (other hyperparameters or observations):
    what was tried, with its command, discounting, centring and evaluation gaps."""
    out = []
    for run in sorted(p for p in directory.iterdir() if (p / "evaluations.json").exists()):
        history = json.loads((run / "evaluations.json").read_text())
        hyperparams = yaml.safe_load((run / "hyperparams.yml").read_text())
        gaps = [h.get("gap_to_optimal", float("nan")) for h in history]
        out.append(
            {
                "run": run.name,
                "command": (run / "command.txt").read_text().strip(),
                "gamma": hyperparams.get("gamma"),
                "reward_center": hyperparams.get("reward_center", False),
                "discount_horizon_s": hyperparams.get("discount_horizon_s"),
                "timesteps": history[-1]["timesteps"],
                "best_gap": min(gaps),
                "final_gap": gaps[-1],
                "final_gap_per_rate": {
                    k: v.get("gap_to_optimal") for k, v in history[-1]["per_rate"].items()
                },
                "final_policy_per_rate": {k: _policy_summary(v) for k, v in history[-1]["per_rate"].items()},
            }
        )
    return out


def collect(args: argparse.Namespace, wall: dict[tuple[str, float], float]) -> dict:
    runs, references = [], {}
    for rate in args.rates:
        references[f"{rate:g}"] = reference_costs(args, rate)
        for algo in args.algos:
            path = args.runs_dir / run_name(algo, rate) / "evaluations.json"
            if not path.exists():
                continue
            history = json.loads(path.read_text())
            curve = [
                {
                    "timesteps": h["timesteps"],
                    "cost_per_request": h["per_rate"]["scenario"]["cost_per_request"],
                    "gap_to_optimal": h["per_rate"]["scenario"]["gap_to_optimal"],
                    "gap_to_optimal_env_actions": h["per_rate"]["scenario"]["gap_to_optimal_env_actions"],
                }
                for h in history
            ]
            gaps = [c["gap_to_optimal"] for c in curve]
            first_within = {
                f"{p:g}%": next((c["timesteps"] for c in curve if c["gap_to_optimal"] <= p / 100), None)
                for p in (1, 2, 5)
            }
            run_dir = args.runs_dir / run_name(algo, rate)
            hyperparams = yaml.safe_load((run_dir / "hyperparams.yml").read_text())
            runs.append(
                {
                    "algo": algo,
                    "rate_per_s": rate,
                    "gamma": hyperparams.get("gamma"),
                    "discount_horizon_s": hyperparams.get("discount_horizon_s"),
                    "reward_center": bool(hyperparams.get("reward_center", False)),
                    "command": (run_dir / "command.txt").read_text().strip(),
                    "assessment": assess(args, rate, run_dir),
                    "curve": curve,
                    "best_gap": min(gaps),
                    "final_gap": gaps[-1],
                    "first_timesteps_within": first_within,
                    "train_wall_s": wall.get((algo, rate)),
                }
            )
    return {"runs": runs, "references": references}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def markdown(result: dict) -> str:
    """The results as Markdown: the runs, their assessment on fresh seeds, and what was tried."""
    meta = result["meta"]
    lines = [
        "# Learning quality: PPO and DQN against the exact optimum",
        "",
        f"Produced by `{meta['command']}` on {meta['date']} (`benchmarks/results/learning.json`,",
        "plot `benchmarks/results/learning.png`). Gaps are relative costs per request,",
        "(cost - optimal cost) / optimal cost, measured on the same arrivals as the optimum.",
        "",
        "| algo | rate (1/s) | discount | centring | curve: best gap | curve: final gap "
        "| first within 2% (steps) | best model, fresh seeds | final model, fresh seeds "
        "| tuned timeout, fresh seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        a = run["assessment"]
        discount = (
            f"exp(-dt / {run['discount_horizon_s']:g} s)"
            if run.get("discount_horizon_s")
            else f"gamma {run['gamma']}"
        )
        lines.append(
            f"| {run['algo']} | {run['rate_per_s']:g} | {discount} | "
            f"{'yes' if run.get('reward_center') else 'no'} | {_pct(run['best_gap'])} | "
            f"{_pct(run['final_gap'])} | {run['first_timesteps_within']['2%']} | "
            f"{_pct(a['best_model_gap'][0])} ± {a['best_model_gap'][1]:.2%} | "
            f"{_pct(a['final_model_gap'][0])} ± {a['final_model_gap'][1]:.2%} | "
            f"{_pct(a['timeout_gap'][0])} ± {a['timeout_gap'][1]:.2%} |"
        )
    seeds = result["runs"][0]["assessment"]["seeds"] if result["runs"] else "n/a"
    lines += [
        "",
        f"Fresh seeds: {seeds} (first, last), {meta.get('assess_horizon_s', 'n/a')} s each; "
        "± is the 95% CI of the seed-paired differences.",
        "",
        "Training commands (each run's `command.txt`):",
        "",
        *(
            f"- {run['algo']} at {run['rate_per_s']:g}/s: `{run.get('command', 'n/a')}`"
            for run in result["runs"]
        ),
    ]
    if result.get("attempts"):
        lines += [
            "",
            "## What was tried before (runs/learning_attempts)",
            "",
            "| run | gamma | reward centring | time discount (s) | steps | best gap | final gap "
            "| final policy (per evaluation rate) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in result["attempts"]:
            lines.append(
                f"| {t['run']} | {t['gamma']} | {t['reward_center']} | {t['discount_horizon_s']} | "
                f"{t['timesteps']} | {_pct(t['best_gap'])} | {_pct(t['final_gap'])} | "
                + "; ".join(f"{k}: {v}" for k, v in t["final_policy_per_rate"].items())
                + " |"
            )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r["rate_per_s"] for r in result["runs"]})
    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 3.8), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        ref = result["references"][f"{rate:g}"]
        for run in (r for r in result["runs"] if r["rate_per_s"] == rate):
            steps = [c["timesteps"] for c in run["curve"]]
            ax.plot(
                steps,
                [c["cost_per_request"] for c in run["curve"]],
                marker="o",
                ms=3,
                label=run["algo"].upper(),
            )
        ax.axhline(ref["optimal_cost_per_request"], color="k", ls="--", label="optimum")
        ax.axhline(ref["timeout_cost_per_request"], color="tab:red", ls=":", label="tuned timeout")
        ax.set_title(f"Poisson, {rate:g} requests/s")
        ax.set_xlabel("timesteps")
        ax.set_ylabel("cost per request")
        optimum = ref["optimal_cost_per_request"]
        ax.set_ylim(optimum * 0.97, optimum * 1.3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    write_atomic(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algos", default="ppo,dqn", help="comma-separated algorithms (default ppo,dqn)")
    parser.add_argument("--rates", default="50,200,400", help="comma-separated Poisson rates, requests/s")
    parser.add_argument("--n-timesteps", type=int, default=1_000_000, help="steps per run (default 1M)")
    parser.add_argument("--eval-freq", type=int, default=50_000, help="steps between evaluations")
    parser.add_argument("--eval-seeds", default="20000,20001,20002", help="evaluation seeds")
    parser.add_argument("--eval-horizon-s", type=float, default=30.0, help="seconds per evaluation episode")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument(
        "--assess-seeds", default="30000-30010", help="fresh seeds [first-last) for the final assessment"
    )
    parser.add_argument("--assess-horizon-s", type=float, default=60.0, help="seconds per assessment episode")
    parser.add_argument(
        "--discount-horizon-s",
        type=float,
        default=None,
        help="discount each step by exp(-dt / horizon), dt its simulated duration (s) "
        "(hyperparameter discount_horizon_s; default: the hyperparameter file's per-step gamma)",
    )
    parser.add_argument(
        "--hyperparams",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameter overrides passed to every train.py run (e.g. reward_center=false)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="training runs at once (default 2)")
    parser.add_argument(
        "--attempts-dir",
        type=Path,
        default=REPO / "runs" / "learning_attempts",
        help="earlier runs to summarise under 'attempts' (what was tried)",
    )
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "learning", help="run folders")
    parser.add_argument("--out", type=Path, default=RESULTS / "learning.json", help="JSON output")
    parser.add_argument("--plot", type=Path, default=RESULTS / "learning.png", help="plot output")
    parser.add_argument(
        "--markdown", type=Path, default=REPO / "docs" / "results" / "learning.md", help="Markdown summary"
    )
    parser.add_argument("--collect-only", action="store_true", help="do not train; collect finished runs")
    args = parser.parse_args(argv)
    args.algos = [a for a in args.algos.split(",") if a]
    args.rates = [float(r) for r in args.rates.split(",") if r]
    args.eval_seeds = [int(s) for s in args.eval_seeds.split(",") if s]
    first, _, last = args.assess_seeds.partition("-")
    args.assess_seeds = (int(first), int(last))
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    wall: dict[tuple[str, float], float] = {}
    if not args.collect_only:
        jobs = [(algo, rate) for rate in args.rates for algo in args.algos]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for job, seconds in zip(jobs, pool.map(lambda j: train_one(args, *j), jobs), strict=True):
                wall[job] = seconds
                print(f"trained {job[0]} at {job[1]:g}/s in {seconds:.0f} s", flush=True)
    result = collect(args, wall)
    if args.attempts_dir.is_dir():
        result["attempts"] = attempts(args.attempts_dir)
    result["meta"] = {
        "command": "python benchmarks/learning.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "n_timesteps": args.n_timesteps,
        "eval_seeds": args.eval_seeds,
        "eval_horizon_s": args.eval_horizon_s,
        "assess_horizon_s": args.assess_horizon_s,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    write_json_atomic(args.out, result)
    if args.markdown:
        write_atomic(args.markdown, markdown(result))
    plot(result, args.plot)
    for run in result["runs"]:
        within = run["first_timesteps_within"]
        best = run["assessment"]["best_model_gap"]
        print(
            f"{run['algo']:>4} @ {run['rate_per_s']:>4g}/s: curve best {run['best_gap']:+.2%}, final "
            f"{run['final_gap']:+.2%}, first within 2%: {within['2%']}; best model on fresh seeds "
            f"{best[0]:+.2%} +- {best[1]:.2%}"
        )
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
