"""Outputs of a :class:`~formal.verification.VerificationReport`: the Markdown of
``docs/results/verification.md``, the same results as JSON (``verification.json``, read by the
report builder) and rich tables for the terminal.

Each output has its module: :mod:`formal.report_tables` (the number formats, defined there once,
and the rows of every table), :mod:`formal.report_markdown` (:func:`markdown`) and
:mod:`formal.report_data` (:func:`report_data`); this module, the one to import, re-exports their
public names and builds the rich tables (:func:`rich_tables`)."""

from __future__ import annotations

from typing import Any

from formal.report_data import report_data
from formal.report_markdown import markdown
from formal.report_tables import (
    BAND_HEADER,
    CROSS_HEADER,
    EVENT_SIM_TOLERANCE,
    POLICY_HEADER,
    REAL_HEADER,
    TICK_SIM_TOLERANCE,
    band_table_rows,
    cross_check_failures,
    cross_rows,
    fmt_pct,
    fmt_prob,
    fmt_resolved,
    fmt_sig,
    policy_table_rows,
    real_agent_rows,
    summary_rows,
)
from formal.results import VerificationReport

__all__ = [
    "EVENT_SIM_TOLERANCE",
    "TICK_SIM_TOLERANCE",
    "band_table_rows",
    "cross_check_failures",
    "fmt_pct",
    "fmt_prob",
    "fmt_resolved",
    "fmt_sig",
    "markdown",
    "policy_table_rows",
    "real_agent_rows",
    "report_data",
    "rich_tables",
]


def rich_tables(report: VerificationReport) -> list[Any]:
    """Rich renderables for the terminal: summary, policies, cross-check."""
    from rich.table import Table

    summary = Table(title="Verification summary", show_lines=False)
    for col in ("check", "result", "detail"):
        summary.add_column(col, overflow="fold")
    for check, result, detail in summary_rows(report):
        summary.add_row(check, result, detail)
    policies = Table(title="Policies as DTMCs (Storm)")
    for col in POLICY_HEADER:
        policies.add_column(col, justify="left" if col == "policy" else "right")
    for row in policy_table_rows(report):
        policies.add_row(*row)
    cross = Table(title="Cross-check: Storm vs tick simulator vs event simulator")
    for col in CROSS_HEADER:
        cross.add_column(col, justify="left" if col in ("policy", "quantity") else "right")
    for row in report.rows:
        for r in cross_rows(row):
            cross.add_row(*r)
    out = [summary, policies, cross]
    for title, header, rows in (
        ("The band scheduler under estimation error (min - max)", BAND_HEADER, band_table_rows(report)),
        (
            "The portfolio under any switching (min - max)",
            BAND_HEADER,
            band_table_rows(report, report.portfolio),
        ),
        ("Real agents in the event simulator", REAL_HEADER, real_agent_rows(report)),
    ):
        if rows:
            table = Table(title=title)
            for col in header:
                table.add_column(col, overflow="fold")
            for r in rows:
                table.add_row(*r)
            out.append(table)
    return out
