"""The learning benchmark's training runs: the sweeps that train an experiment's seeds
(``train.py --seeds``), and what their run folders hold (the finished models, the steps, the
training evaluations and their curves across seeds)."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from batchenv.seeds import parse_seeds
from benchmarks.learning_parts import REPO
from benchmarks.learning_parts.experiments import Experiment
from evaluation.stats import mean_ci95

# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train_experiment(experiment: Experiment, args: argparse.Namespace) -> None:
    """Train every seed of ``experiment`` that has not finished (train.py --seeds; Ray Tune): all
    of them into ``<runs-dir>/<name>/``, or, when that sweep exists, the missing ones into a
    continuation sweep ``<runs-dir>/<name>+seeds<list>/``."""
    seeds = parse_seeds(args.seeds)
    finished = {_seed_of(p.parent) for p in _seed_runs(experiment, args.runs_dir, "final_model.zip")}
    missing = [seed for seed in seeds if seed not in finished]
    if not missing:
        print(f"{experiment.name}: every seed has finished", flush=True)
        return
    command = experiment.command(args.seeds, args.runs_dir, args.jobs)
    if (REPO / args.runs_dir / experiment.name).exists():
        text = ",".join(map(str, missing))
        name = f"{experiment.name}+seeds{text.replace(',', '_')}"
        if (REPO / args.runs_dir / name).exists():
            raise SystemExit(
                f"learning.py: {args.runs_dir}/{name} exists but seeds {text} have not finished there "
                "(an interrupted sweep): move it away to train them again"
            )
        command[command.index("--seeds") + 1] = text
        command[command.index("--run-name") + 1] = name
    print(f"{experiment.name}: {shlex.join(command)}", flush=True)
    subprocess.run([sys.executable, *command[1:]], cwd=REPO, check=True)


def sweep_folders(experiment: Experiment, runs_dir: str) -> list[Path]:
    """The sweep folders of ``experiment``: ``<runs-dir>/<name>/`` and any continuation
    ``<runs-dir>/<name>+<suffix>/`` (a sweep that trains the seeds an interrupted one did not
    finish, with the command in its ``command.txt``)."""
    folder = REPO / runs_dir / experiment.name
    return [f for f in (folder, *sorted(folder.parent.glob(f"{experiment.name}+*"))) if f.is_dir()]


def _seed_runs(
    experiment: Experiment, runs_dir: str, name: str, seeds: Collection[int] | None = None
) -> list[Path]:
    """The file ``name`` of every finished seed's run folder (one with ``final_model.zip``: an
    interrupted or running seed is left out), in seed order; only the ``seeds`` given, if any (the
    folders may hold more seeds than a command asks for, trained by another command)."""
    found = [
        run / name
        for folder in sweep_folders(experiment, runs_dir)
        for run in folder.glob(f"{experiment.algo}_*_seed*")
        if (run / "final_model.zip").is_file()
        and (run / name).is_file()
        and (seeds is None or _seed_of(run) in seeds)
    ]
    return sorted(found, key=lambda p: _seed_of(p.parent))


def trained_models(
    experiment: Experiment, runs_dir: str, which: str, seeds: Collection[int] | None = None
) -> list[str]:
    """Every finished seed's ``best_model.zip`` (lowest mean gap of the training evaluation, on
    the training-side scenarios) or ``final_model.zip`` (relative paths), in seed order; only the
    ``seeds`` given, if any."""
    runs = [p.parent for p in _seed_runs(experiment, runs_dir, "final_model.zip", seeds)]
    return [str((run / f"{which}_model.zip").relative_to(REPO)) for run in runs]


def sweep_commands(experiment: Experiment, runs_dir: str, models: Sequence[str] | None = None) -> list[str]:
    """The commands that trained the experiment's sweep folders (their ``command.txt``); with
    ``models`` (relative paths), only those of the folders that hold one of them."""
    used = None if models is None else {(REPO / m).parent.parent for m in models}
    return [
        (f / "command.txt").read_text().strip()
        for f in sweep_folders(experiment, runs_dir)
        if (f / "command.txt").is_file() and (used is None or f in used)
    ]


def trained_steps(model: str) -> int:
    """Environment steps of the run that holds ``model`` (its last training evaluation)."""
    history = json.loads((REPO / model).parent.joinpath("evaluations.json").read_text())
    return int(history[-1]["timesteps"]) if history else 0


def kept_evaluation(model: str) -> dict[str, Any]:
    """The training evaluation ``model`` was saved at: for ``best_model.zip`` the one it was kept
    at (the first with the lowest mean gap, as the run keeps it), else the last one (the end of
    the run); ``{}`` without evaluations."""
    history = json.loads((REPO / model).parent.joinpath("evaluations.json").read_text())
    if not history:
        return {}
    if Path(model).name != "best_model.zip":
        return history[-1]
    return min(history, key=lambda h: h["gap_to_reference"])


def kept_at_step(model: str) -> int:
    """Environment steps at which ``model`` was saved (:func:`kept_evaluation`)."""
    return int(kept_evaluation(model).get("timesteps", 0))


def _seed_of(run: Path) -> int:
    return int(run.name.rsplit("seed", 1)[1])


def training_evaluation_at(
    experiment: Experiment, runs_dir: str, step: int, seeds: Collection[int] | None = None
) -> dict[str, Any] | None:
    """Every target's gap to the reference in the training evaluation at ``step`` (mean and 95%
    CI across seeds; only the ``seeds`` given, if any), or None when not every seed has an
    evaluation there."""
    records = []
    for path in _seed_runs(experiment, runs_dir, "evaluations.json", seeds):
        record = next((h for h in json.loads(path.read_text()) if h["timesteps"] == step), None)
        if record is None:
            return None
        records.append(record)
    if not records:
        return None
    out: dict[str, Any] = {}
    for label in records[0]["per_rate"]:
        mean, half = mean_ci95([r["per_rate"][label]["gap_to_reference"] for r in records])
        out[label] = {"mean": mean, "ci95": half, "n": len(records)}
    mean, half = mean_ci95([r["gap_to_reference"] for r in records])
    out["mean over targets"] = {"mean": mean, "ci95": half, "n": len(records)}
    return out


def training_curves(
    experiment: Experiment, runs_dir: str, seeds: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """Per evaluation step: the mean gap to the reference over the training evaluations of every
    seed (only the ``seeds`` given, if any; mean and 95% CI across seeds)."""
    runs = _seed_runs(experiment, runs_dir, "evaluations.json", seeds)
    histories = [json.loads(p.read_text()) for p in runs]
    steps = sorted({h["timesteps"] for history in histories for h in history})
    curve = []
    for step in steps:
        values = [h["gap_to_reference"] for history in histories for h in history if h["timesteps"] == step]
        if len(values) == len(histories):
            mean, half = mean_ci95(values)
            curve.append({"timesteps": step, "mean": mean, "ci95": half, "n": len(values)})
    return curve


def target_curves(
    experiment: Experiment, runs_dir: str, target: str, seeds: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """Per evaluation step, one target of the training evaluation across seeds (only the ``seeds``
    given, if any): its gap to the reference (mean and 95% CI) and the mean share of requests
    each model served (``model_mix/<name>`` of the evaluation). Steps that not every seed reached
    are left out; empty when the target is not evaluated."""
    runs = _seed_runs(experiment, runs_dir, "evaluations.json", seeds)
    histories = [json.loads(p.read_text()) for p in runs]
    steps = sorted({h["timesteps"] for history in histories for h in history})
    curve = []
    for step in steps:
        cells = [
            h["per_rate"][target]
            for history in histories
            for h in history
            if h["timesteps"] == step and target in h["per_rate"]
        ]
        if not cells or len(cells) != len(histories):
            continue
        mean, half = mean_ci95([c["gap_to_reference"] for c in cells])
        mix = sorted(k for k in cells[0] if k.startswith("model_mix/"))
        shares = {k.removeprefix("model_mix/"): float(np.mean([c[k] for c in cells])) for k in mix}
        curve.append({"timesteps": step, "mean": mean, "ci95": half, "n": len(cells), "model_mix": shares})
    return curve


def target_seeds(
    experiment: Experiment, runs_dir: str, target: str, seeds: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """Per seed, one target of the training evaluation: its gap to the reference at the step the
    run kept (the first step with the lowest mean gap over the targets, as the run's callback keeps
    ``best_model.zip``), at the step where the target itself was lowest, and at the last step.
    Would a model kept on this target alone have been better? Empty when it is not evaluated."""
    rows = []
    for path in _seed_runs(experiment, runs_dir, "evaluations.json", seeds):
        history = [h for h in json.loads(path.read_text()) if target in h["per_rate"]]
        if not history:
            continue
        points = {
            "kept": min(history, key=lambda h: h["gap_to_reference"]),
            "best": min(history, key=lambda h: h["per_rate"][target]["gap_to_reference"]),
            "last": history[-1],
        }
        row: dict[str, Any] = {"seed": _seed_of(path.parent)}
        for which, h in points.items():
            row[f"{which}_step"] = int(h["timesteps"])
            row[f"{which}_gap"] = float(h["per_rate"][target]["gap_to_reference"])
        rows.append(row)
    return rows
