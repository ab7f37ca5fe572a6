"""What ``verify.py`` writes: its results files renamed into place together
(:func:`write_together`), the JSON text, the PRISM files of ``--prism``, the report's last line
(the whole run's time), and paths as it prints them (relative to the repository)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from apps.verify_cli import REPO
from formal.prism import mdp_program, write_program


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def json_text(data: object) -> str:

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


def write_prism(args: argparse.Namespace, tm, console) -> None:

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
    console.print("PRISM model written: " + ", ".join(display(p) for p in paths), markup=False)


def whole_run_line(wall_s: float, cpu_s: float, load_before: float, load_after: float) -> str:
    """The report's last line: the whole run's time (Storm, the simulations and the timed
    automata), with the 1-minute load average before and after (a loaded machine stretches the
    wall time, not the CPU time)."""
    return (
        f"Whole run (every stage): {wall_s:.1f} s wall time, {cpu_s:.1f} s CPU time in all its processes; "
        f"load average {load_before:.1f} before, {load_after:.1f} after."
    )
