"""The results of a :class:`~formal.verification.VerificationReport` as strict-JSON data
(``docs/results/verification.json``, read by the report builder): :func:`report_data`."""

from __future__ import annotations

import dataclasses
from typing import Any

from batchenv.fileio import json_safe
from formal.real_agents import RealAgentResult
from formal.report_tables import EVENT_SIM_TOLERANCE, TICK_SIM_TOLERANCE, worst_deviations
from formal.results import CROSS_CHECK_FIELDS, BandRow, VerificationReport

__all__ = ["report_data"]


def _fields(obj: Any, drop: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A dataclass's fields as a mapping (nested dataclasses too), without ``drop``; None stays None."""
    if obj is None:
        return None
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in drop}


def _plain(value: Any) -> Any:
    return _fields(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def report_data(report: VerificationReport, command: str) -> dict[str, Any]:
    """The results of ``report`` as strict-JSON data (``verification.json``): the same numbers as
    :func:`markdown`, unrounded; times in s, latencies in ms, rates per s, costs per request.

    Keys: ``command``, ``scenario``, ``wall_s``, ``cpu_s``, ``jobs``, ``model`` (the discrete-time
    model), ``settings``, ``safety`` (a) and ``safety_bound_ms``, ``optimum`` and ``smdp`` (b),
    ``policies`` (c: per policy Storm's figures, the tick and event simulators' and their largest
    relative differences), ``bands`` (d: the band scheduler's bounds per band), ``real_agents``
    (e), ``portfolio`` (g: the portfolio scheduler's bounds per band, empty unless checked) and
    ``portfolio_experts`` (each of its experts alone, exact estimate),
    ``cross_check``, ``notes``, ``timings_s``."""
    tm, st = report.model, report.settings
    o, sm = report.optimum, report.smdp
    worst = worst_deviations(report)
    smdp = _fields(sm)
    if smdp is not None and o is not None:
        smdp["relative_gap_of_discrete_optimum"] = (o.cost_per_request - sm.cost_whole) / sm.cost_whole
    data = {
        "command": command,
        "scenario": tm.config.name,
        "wall_s": report.total_s,
        "cpu_s": report.cpu_s,
        "jobs": st.jobs,
        "model": {
            "tick_ms": tm.tick_ms,
            "rate_per_s": tm.rate_per_s,
            "mean_arrivals_per_tick": tm.mean_arrivals,
            "max_arrivals_per_tick": tm.max_arrivals,
            "arrival_tail": tm.arrival_tail,
            "queue_cap": tm.queue_cap,
            "max_wait_ticks": tm.max_age_ticks,
            "n_workers": tm.n_workers,
            "description": tm.describe(),
        },
        "settings": {
            "overflow_s": st.overflow_s,
            "crosscheck_ticks": st.crosscheck_ticks,
            "sim_horizon_s": st.sim_horizon_s,
            "seed": st.seed,
            "agents": list(st.agents),
        },
        "safety": None if report.safety is None else {"holds": report.safety.holds, **_fields(report.safety)},
        "optimum": _fields(o, drop=("policy",)),
        "smdp": smdp,
        "policies": [
            {
                "key": row.key,
                "name": row.name,
                "source": row.source,
                "same_as": row.same_as,
                "error": row.error,
                "storm": _fields(row.figures, drop=("rates",)),
                "tick_simulator": _fields(row.ticksim, drop=("decision_visits",)),
                "event_simulator": _fields(row.continuous),
                "max_rel_diff_tick_simulator": row.deviation(row.ticksim),
                "max_rel_diff_event_simulator": row.deviation(row.continuous),
            }
            for row in report.rows
        ],
        "cross_check": {
            "fields": list(CROSS_CHECK_FIELDS),
            "tick_simulator_tolerance": TICK_SIM_TOLERANCE,
            "event_simulator_tolerance": EVENT_SIM_TOLERANCE,
            "tick_simulator_max_rel_diff": worst[0] if worst else None,
            "event_simulator_max_rel_diff": worst[1] if worst else None,
        },
        "bands": [_band_data(b) for b in report.bands],
        "portfolio": [_band_data(b) for b in report.portfolio],
        "portfolio_experts": [_band_data(b) for b in report.portfolio_experts],
        "real_agents": [_real_agent_data(r) for r in report.real_agents],
        "safety_bound_ms": (tm.max_age_ticks + 1) * tm.tick_ms,
        "notes": list(report.notes),
        "timings_s": dict(report.timings),
    }
    return json_safe(data)


def _band_data(band: BandRow) -> dict[str, Any]:
    return {
        "factor": band.factor,
        "label": band.label,
        "scheduler": band.scheduler,
        "rows": list(band.rows),
        "same_as": band.same_as,
        "error": band.error,
        "figures": _fields(band.figures),
    }


def _real_agent_data(r: RealAgentResult) -> dict[str, Any]:
    gap, half = r.agent_vs_table
    return {
        **_fields(r),
        "agent_cost": list(r.agent_cost),
        "table_cost": list(r.table_cost) if r.table_costs else None,
        "agent_vs_table": {"gap": gap, "ci95": half},
        "agent_vs_model": r.agent_vs_model,
        "in_band": {f"{f:g}": v for f, v in r.in_band.items()},
    }
