"""A Graphviz picture of a timed-automata network, drawn from the IR.

    python -m formal.ta.figure                 # docs/figures/ta_model.svg (needs Graphviz's dot)
    python -m formal.ta.figure --dot out.dot   # only the Graphviz text

One box per process; locations as nodes (committed ones dashed, invariants and labels under the
name); the edges between two locations on one event are drawn once, with the guard and updates
when there is a single one, else with their number (the scheduler's decision table is one edge
per queue length and age piece).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from batchenv.fileio import write_atomic
from formal.ta.ir import TAU, Edge, Network

__all__ = ["to_dot"]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "docs" / "figures" / "ta_model.svg"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _edge_label(event: str, edges: list[Edge], limit: int) -> str:
    head = "" if event == TAU else event
    if len(edges) > 1:
        return f"{head} ({len(edges)} edges)".strip()
    edge = edges[0]
    parts = [head] if head else []
    if edge.guard:
        parts.append(" && ".join(edge.guard))
    if edge.updates:
        parts.append("; ".join(edge.updates))
    text = "\\n".join(_escape(p if len(p) <= limit else p[: limit - 3] + "...") for p in parts)
    return text


def to_dot(network: Network, limit: int = 40) -> str:
    """The Graphviz text of ``network``."""
    lines = [
        f'digraph "{network.name}" {{',
        "  rankdir=LR; compound=true; fontname=Helvetica;",
        "  node [shape=ellipse, fontname=Helvetica, fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=8];",
    ]
    for proc in network.processes:
        lines.append(f'  subgraph "cluster_{proc.name}" {{')
        lines.append(f'    label="{proc.name}"; style=rounded;')
        for loc in proc.locations:
            text = [loc.name, *loc.invariant, *(f"[{label}]" for label in loc.labels)]
            style = ["dashed"] if loc.committed else []
            if loc.initial:
                style.append("bold")
            attrs = f'label="{_escape(chr(10).join(text))}"'.replace("\n", "\\n")
            if style:
                attrs += f', style="{",".join(style)}"'
            lines.append(f'    "{proc.name}.{loc.name}" [{attrs}];')
        groups: dict[tuple[str, str, str], list[Edge]] = defaultdict(list)
        for edge in proc.edges:
            groups[(edge.source, edge.target, edge.event)].append(edge)
        for (source, target, event), edges in groups.items():
            label = _edge_label(event, edges, limit)
            lines.append(f'    "{proc.name}.{source}" -> "{proc.name}.{target}" [label="{label}"];')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _default_network() -> Network:
    """The default scenario's network with timeout(B=8, T=10 ms), a token bucket of burst 2 and
    the tag observer (as checked by verify.py)."""
    from batchenv.scenarios import load_scenario
    from formal.policies import TimeoutPolicy
    from formal.ta.model import Observers, build_network
    from formal.ta.properties import TAChecks, TASettings
    from formal.ta.schedulers import from_timeout

    config = load_scenario("default")
    settings = TASettings(config)
    checks = TAChecks(None, settings)
    table = from_timeout(
        TimeoutPolicy(8, 10.0, (0,)), config, queue_cap=settings.queue_cap, unit_ms=settings.unit_ms
    )
    model = checks.model(table.shielded(checks.max_wait), settings.curve(2))
    return build_network(model, Observers(tag=True, wait_bound=checks.max_wait))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m formal.ta.figure", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="SVG file (default: docs/figures/ta_model.svg)"
    )
    parser.add_argument("--dot", type=Path, default=None, help="write the Graphviz text here instead")
    args = parser.parse_args(argv)
    text = to_dot(_default_network())
    if args.dot is not None:
        write_atomic(args.dot, text)
        print(f"wrote {args.dot}")
        return 0
    dot = shutil.which("dot")
    if dot is None:
        print(
            "error: Graphviz's dot is not on PATH (Debian: apt-get install graphviz); use --dot",
            file=sys.stderr,
        )
        return 2
    svg = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True, check=True).stdout
    write_atomic(args.out, svg)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
