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

(a) timeout safety: Pmax of a request waiting beyond max_wait_ms while a worker is idle, over
    every scheduler of the shielded MDP, is 0 by construction (the shield allows no wait at the
    limit): a sanity check of the encoding, with the unshielded MDP (Pmax = 1) beside it. The
    substantive safety checks are each policy's raw table without the shield (c), the band and
    portfolio models' raw choices (d, g) and the timed automata with their mutants (f);
(b) the optimal long-run cost Rmin[LRA] and its scheduler, against agents/optimal.py;
(c) per policy (baselines, the SMDP optimum, Storm's optimum, agents distilled to tables), as a
    DTMC: its raw table without the shield (P of a violation), then throughput, utilisation, mean
    queue, mean batch, latency (Little's law), cost, overflow probability; and the same policies in
    a tick simulator (must agree within 2%) and in the event-driven simulator;
(d) the proposed scheduler's own rows (timed waits, SLO guard) with its rate estimate as an
    adversary within a band of the true rate: Rmin/Rmax of cost and latency, Pmin/Pmax of overflow
    (at the default 100/s no row of the x2 band waits and the SLO guard is off, w_slo = 0: there
    it checks the table lookup under rate error; the timed waits at 300/s; scenarios with
    w_slo > 0 are refused, so the guard itself is not verified);
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

import os
import resource
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from apps.verify_cli import (
    DEFAULT_AGENTS,
    DEFAULT_TA_UNIT_MS,
    DEFAULT_UPPAAL_POLICY,
    ROBUST,
    build_parser,
    check_agent_specs,
    check_numeric_flags,
    load_config,
    parse_bands,
    reduced_settings_note,
    resolve_sizes,
    shipped_checkpoints,
    uppaal_policy,
)
from apps.verify_outputs import display, json_text, whole_run_line, write_prism, write_together
from apps.verify_ta import build_ta_settings, run_ta_only, run_ta_stage, run_uppaal, ta_unsupported_reason
from batchenv.config import ConfigError
from execution.cli import ExecutionUsageError, backend_spec_from_args
from formal.prism import check_costs_modelled
from formal.ta.stage import markdown_section, to_json

# main, and the names apps/report/build.py reads from here; the rest of the command line is in
# apps/verify_cli.py (the flags), apps/verify_ta.py (the timed-automata stage) and
# apps/verify_outputs.py (the files written).
__all__ = ["DEFAULT_TA_UNIT_MS", "DEFAULT_UPPAAL_POLICY", "main", "uppaal_policy"]

# agents.registry (torch, SB3) and formal.verification/formal.report (stormpy) take over a second
# to import: they are imported in the functions that need them, so that --help and flag errors
# answer at once.


def _process_tree_cpu_s() -> float:
    """CPU time (s) of this process and of every child process it has waited for (the worker
    processes, Storm's solver children, TChecker)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    run_start, cpu_start, load_before = time.perf_counter(), _process_tree_cpu_s(), os.getloadavg()[0]
    args = resolve_sizes(build_parser(__doc__.split("\n\n")[0]).parse_args(argv))

    console = Console()
    command = "python verify.py" + (
        "" if not argv and len(sys.argv) <= 1 else " " + shlex.join(argv or sys.argv[1:])
    )
    from agents.registry import AgentSpecError, split_specs

    try:
        check_numeric_flags(args)
        config = load_config(args)
        from formal.verification import Settings, run_verification

        agents = tuple(split_specs(args.agents))
        if agents == ("auto",):
            shipped = shipped_checkpoints(config.name)
            agents = (*split_specs(DEFAULT_AGENTS), *(display(p) for p in shipped))
        check_agent_specs(agents)
        if args.band_scheduler:
            check_agent_specs((args.band_scheduler,))
        execution, warnings = backend_spec_from_args(args)
        for warning in warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
        bands = parse_bands(args)
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
        ta_settings = build_ta_settings(args, config, tm.rate_per_s)
        if args.uppaal or args.uppaal_only:
            run_uppaal(args, config, ta_settings, console)
        if args.prism:
            write_prism(args, tm, console)
        if args.uppaal_only:
            return 0
        ta_unsupported = None if args.no_ta else ta_unsupported_reason(config)
        if args.ta_only:
            return run_ta_only(args, ta_settings, ta_unsupported, console, command)
        check_costs_modelled(tm)
    except (ConfigError, AgentSpecError, ExecutionUsageError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return 2
    from formal.report import cross_check_failures, markdown, report_data, rich_tables

    if ta_unsupported is not None:
        console.print(
            f"[yellow]timed-automata stage skipped: {escape(ta_unsupported)}[/yellow]", soft_wrap=True
        )
    console.print(f"Storm: {tm.describe()}", markup=False)
    start = time.perf_counter()
    report = run_verification(
        settings, progress=lambda msg: console.print(f"  {msg}", style="dim", markup=False)
    )
    for table in rich_tables(report):
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    run_ta = not args.no_ta and ta_unsupported is None
    ta_report = run_ta_stage(args, ta_settings, console, command) if run_ta else None

    if report.safety is None and not any(r.figures is not None for r in report.rows):
        console.print(
            "[red]error:[/red] no check produced a result (see the notes above); "
            f"{escape(display(args.out))} and its JSON are left as they were"
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
        args.out.with_suffix(".json"): json_text({**report_data(report, command), "whole_run": run}),
    }
    if ta_report is not None:
        outputs[args.ta_out] = json_text(to_json(ta_report, command))
    write_together(outputs)
    console.print(
        "wrote " + ", ".join(display(p) for p in outputs) + f" ({time.perf_counter() - start:.1f} s)",
        markup=False,
    )
    failures = cross_check_failures(report)
    for line in failures:
        console.print(f"[red]{escape(line)}[/red]", soft_wrap=True)
    ok = (
        not failures
        and report.safety is not None
        and report.safety.holds
        and all(r.figures is not None for r in report.rows)
        and all(b.figures is not None for b in report.bands + report.portfolio + report.portfolio_experts)
    )
    return 0 if ok and (ta_report is None or ta_report.ok) else 1


if __name__ == "__main__":
    sys.exit(main())
