"""The timed-automata stage of ``verify.py`` (:mod:`formal.ta.stage`, checked with TChecker): its
settings from the flags, its run and printout, ``--ta-only`` (the stage alone, its section put in
place of the one in ``--out``), and the UPPAAL models of ``--uppaal``."""

from __future__ import annotations

import argparse

from rich.markup import escape

from apps.verify_cli import ROBUST, parse_bands, uppaal_policy
from apps.verify_outputs import display, json_text, write_together
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic
from execution.cli import backend_spec_from_args
from formal.ta.properties import TAChecks, TASettings, uppaal_models
from formal.ta.schedulers import from_timeout
from formal.ta.stage import SECTION_TITLE, default_schedulers, markdown_section, run_ta, to_json
from formal.ta.tchecker_format import to_tchecker
from formal.tchecker import TCheckerMissingError, find_tchecker
from formal.uppaal import lint, run_verifyta, write_models

# agents.smdp (the SMDP solver) is imported in the function that needs it
# (ta_unsupported_reason), so that --help and flag errors answer without it.


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


def build_ta_settings(args: argparse.Namespace, config, rate: float):

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


def run_uppaal(args: argparse.Namespace, config, settings, console) -> None:

    name, table = _uppaal_table(args, config, settings)
    checks = TAChecks(None, settings)
    models, networks = uppaal_models(checks, name, table, max(settings.bursts))
    for model in models:
        problems = lint(model.xml)
        if problems:
            raise RuntimeError(f"{model.name}: generated UPPAAL model fails its name check: {problems}")
    paths = write_models(models, args.models_dir)
    for network in networks:  # the same networks in TChecker's format
        paths.append(write_atomic(args.models_dir / f"{network.name}.tck", to_tchecker(network)))
    console.print(
        f"timed-automata models ({name}) written: " + ", ".join(display(p) for p in paths), markup=False
    )
    for model in models:
        xml, queries = args.models_dir / f"{model.name}.xml", args.models_dir / f"{model.name}.q"
        result = run_verifyta(xml, queries)
        if result is None:
            console.print(
                "[yellow]verifyta is not on PATH: UPPAAL is not installed here (it is not "
                "pip-installable), so the UPPAAL queries were not run.[/yellow] Run them with "
                f"`verifyta {escape(display(xml))} {escape(display(queries))}` or open the model in the "
                "UPPAAL GUI; "
                "the same properties are checked with TChecker by the timed-automata stage."
            )
            break
        code, output = result
        console.print(f"verifyta {display(xml)} exited with {code}:\n{output}", markup=False)


def _before_ta_section(text: str) -> str:
    """The Markdown before the timed-automata section of ``text`` (all of it when there is none),
    without trailing newlines; empty when the section is the file's first line."""

    return ("\n" + text).split(f"\n{SECTION_TITLE}\n", 1)[0].strip("\n")


def replace_ta_section(args: argparse.Namespace, report, command: str, console) -> None:
    """Write the stage's JSON (``--ta-out``) and put its section at the end of the Markdown report
    ``--out`` in place of the one there (the Storm part, from its own command, stays as it is)."""

    path = args.out
    text = path.read_text() if path.is_file() else ""
    head = _before_ta_section(text)
    write_together(
        {
            path: (head + "\n\n" if head else "") + markdown_section(report, command),
            args.ta_out: json_text(to_json(report, command)),
        }
    )
    console.print(
        f"wrote {display(args.ta_out)} and the timed-automata section of {display(path)}", markup=False
    )


def run_ta_stage(args: argparse.Namespace, settings, console, command: str):
    """The timed-automata stage; None (with a message) when TChecker is not installed."""

    try:
        tck = find_tchecker()
    except TCheckerMissingError as exc:
        console.print(f"[yellow]timed-automata stage skipped: {escape(str(exc))}[/yellow]")
        return None
    stage = default_schedulers(
        settings,
        band_scheduler=args.band_scheduler or None,
        bands=parse_bands(args),
        portfolio_scheduler=ROBUST if args.robust else None,
    )
    report = run_ta(
        settings,
        tck,
        stage.schedulers,
        progress=lambda msg: console.print(f"  {msg}", style="dim", markup=False),
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
            markup=False,
        )
    console.print(f"timed automata: {report.seconds:.1f} s")
    return report


def run_ta_only(args: argparse.Namespace, settings, unsupported: str | None, console, command: str) -> int:
    """``--ta-only``: the timed-automata stage alone, its section put into ``--out``
    (:func:`replace_ta_section`); the exit code, 2 (with a message) when TChecker is not installed
    or the stage cannot check the scenario (``unsupported``: why)."""
    try:
        find_tchecker()
    except TCheckerMissingError as exc:
        console.print(f"[red]error:[/red] --ta-only: {escape(str(exc))}")
        return 2
    if unsupported is not None:
        console.print(f"[red]error:[/red] --ta-only: {escape(unsupported)}", soft_wrap=True)
        return 2
    ta_report = run_ta_stage(args, settings, console, command)
    if ta_report is not None:
        replace_ta_section(args, ta_report, command, console)
    return 0 if ta_report is not None and ta_report.ok else 1
