"""The quoted figures of the formal verification: Storm's results (verify.py's JSON) and the
UPPAAL models (as verify.py --uppaal generates them)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from apps.report.formatting import fint, latex_minus
from apps.report.macros import Macros, add_pending
from apps.report.sources import (
    UPPAAL_FILES,
    VERIFICATION,
    VERIFICATION_TA,
    BuildError,
)
from formal.report import fmt_pct, fmt_prob, fmt_sig

__all__ = [
    "TA_KEYS",
    "VERIFICATION_KEYS",
    "count_queries",
    "ta_numbers",
    "uppaal_numbers",
    "verification_numbers",
]

# -- verification (verify.py)

VERIFICATION_KEYS = {
    "resVerWallS": "wall_s",
    "resVerCpuS": "cpu_s",
    "resVerTickMs": "model.tick_ms",
    "resVerRate": "model.rate_per_s",
    "resVerQueueCap": "model.queue_cap",
    "resVerMaxWaitTicks": "model.max_wait_ticks",
    "resVerShieldStates": "safety.shielded.states",
    "resVerShieldTransitions": "safety.shielded.transitions",
    "resVerShieldBuildS": "safety.shielded.build_s",
    "resVerShieldPmax": "safety.p_max_shielded",
    "resVerNoShieldStates": "safety.unshielded.states",
    "resVerNoShieldPmax": "safety.p_max_unshielded",
    "resVerOptCost": "optimum.cost_per_request",
    "resVerOptCheckS": "optimum.check_s",
    "resVerSmdpCost": "smdp.cost_whole",
    "resVerTickGap": "smdp.relative_gap_of_discrete_optimum (%)",
    "resVerTickGapAbs": "|smdp.relative_gap_of_discrete_optimum| (%)",
    "resVerAgreement": "smdp.agreement (%)",
    "resVerTickSimDiff": "cross_check.tick_simulator_max_rel_diff (%)",
    "resVerTickSimTol": "cross_check.tick_simulator_tolerance (%)",
    "resVerEventSimDiff": "cross_check.event_simulator_max_rel_diff (%)",
    "resVerEventSimTol": "cross_check.event_simulator_tolerance (%)",
    "resVerPolicies": "number of policies",
    "resVerBandFactor": "bands[widest].factor",
    "resVerBandRows": "bands[widest].rows (number of rate rows)",
    "resVerBandCostLow": "bands[widest].figures.cost_per_request.low",
    "resVerBandCostHigh": "bands[widest].figures.cost_per_request.high",
    "resVerBandCostPct": "bands[widest] cost high / low - 1 (%)",
    "resVerBandLatLow": "bands[widest].figures.latency_ms.low",
    "resVerBandLatHigh": "bands[widest].figures.latency_ms.high",
    "resVerRealPropGap": "real_agents[proposed].agent_vs_model (%)",
    "resVerRealPropInBand": "real_agents[proposed].in_band[widest] (%)",
}
VERIFIED_POLICIES = {
    "greedy": "Greedy",
    "static": "Static",
    "timeout": "Timeout",
    "util_switch": "Switch",
    "smdp_optimum": "Smdp",
    "storm_optimum": "Storm",
    "proposed(rate_estimation=false)": "Prop",
}


def verification_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """The verification's figures, or every macro [pending] when ``data`` is None."""
    s = VERIFICATION
    if data is None:
        add_pending(macros, VERIFICATION_KEYS, s)
        return
    model, safety, optimum, smdp, cross = (
        data[k] for k in ("model", "safety", "optimum", "smdp", "cross_check")
    )
    gap = fmt_pct(smdp["relative_gap_of_discrete_optimum"]).rstrip("%")
    values = {
        "resVerWallS": f"{data['wall_s']:.1f}",
        "resVerCpuS": f"{data['cpu_s']:.1f}",
        "resVerTickMs": f"{model['tick_ms']:g}",
        "resVerRate": f"{model['rate_per_s']:g}",
        "resVerQueueCap": str(model["queue_cap"]),
        "resVerMaxWaitTicks": str(model["max_wait_ticks"]),
        "resVerShieldStates": fint(safety["shielded"]["states"]),
        "resVerShieldTransitions": fint(safety["shielded"]["transitions"]),
        "resVerShieldBuildS": f"{safety['shielded']['build_s']:.1f}",
        "resVerShieldPmax": fmt_prob(safety["p_max_shielded"]),
        "resVerNoShieldStates": fint(safety["unshielded"]["states"]),
        "resVerNoShieldPmax": fmt_prob(safety["p_max_unshielded"]),
        "resVerOptCost": f"{optimum['cost_per_request']:.6g}",
        "resVerOptCheckS": f"{optimum['check_s']:.1f}",
        "resVerSmdpCost": f"{smdp['cost_whole']:.6g}",
        "resVerTickGap": latex_minus(gap),
        "resVerTickGapAbs": gap.lstrip("+-"),
        "resVerAgreement": f"{100 * smdp['agreement']:.1f}",
        "resVerTickSimDiff": f"{100 * cross['tick_simulator_max_rel_diff']:.2f}",
        "resVerTickSimTol": f"{100 * cross['tick_simulator_tolerance']:g}",
        "resVerEventSimDiff": f"{100 * cross['event_simulator_max_rel_diff']:.2f}",
        "resVerEventSimTol": f"{100 * cross['event_simulator_tolerance']:g}",
        "resVerPolicies": str(len(data["policies"])),
    }
    values.update(_band_values(data))
    for name, key in VERIFICATION_KEYS.items():
        macros.add(name, values[name], s, key)
    for policy in data["policies"]:
        tok = VERIFIED_POLICIES.get(policy["key"])
        storm = policy["storm"]
        if tok is None or storm is None:
            continue
        where = f"policies[{policy['key']}].storm"
        macros.add(f"resVerLatency{tok}", fmt_sig(storm["latency_ms"]), s, f"{where}.latency_ms")
        macros.add(f"resVerCost{tok}", fmt_sig(storm["cost_per_request"], 5), s, f"{where}.cost_per_request")
        macros.add(f"resVerUtil{tok}", fmt_sig(storm["utilisation"]), s, f"{where}.utilisation")


def _band_values(data: dict[str, Any]) -> dict[str, str]:
    """The proposed scheduler under the widest band of estimation error (its Rmin/Rmax of cost
    and latency) and the real proposed scheduler against its model."""
    bands = [b for b in data["bands"] if b["figures"] is not None]
    if not bands:
        raise BuildError(f"{VERIFICATION}: no band of the proposed scheduler has figures")
    widest = max(bands, key=lambda b: b["factor"])
    figures = widest["figures"]
    cost, latency = figures["cost_per_request"], figures["latency_ms"]
    rows = re.match(r"(\d+) rows", widest["rows"][0])
    real = next((r for r in data["real_agents"] if r["agent"] == widest["scheduler"]), None)
    if real is None:
        raise BuildError(f"{VERIFICATION}: the real {widest['scheduler']} scheduler was not simulated")
    band_key = f"{widest['factor']:g}"  # the JSON's keys of in_band
    return {
        "resVerBandFactor": f"{widest['factor']:g}",
        "resVerBandRows": rows.group(1) if rows else "1",
        "resVerBandCostLow": f"{cost['low']:.6g}",
        "resVerBandCostHigh": f"{cost['high']:.6g}",
        "resVerBandCostPct": f"{100 * (cost['high'] / cost['low'] - 1):.1f}",
        "resVerBandLatLow": f"{latency['low']:.1f}",
        "resVerBandLatHigh": f"{latency['high']:.1f}",
        "resVerRealPropGap": latex_minus(f"{100 * real['agent_vs_model']:+.2f}"),
        "resVerRealPropInBand": f"{100 * real['in_band'][band_key]:.2f}",
    }


# -- the UPPAAL models (as verify.py --uppaal generates them)


def uppaal_numbers(macros: Macros, models: dict[str, str], policy: Any, time_unit_ms: float) -> None:
    """Sizes of the timed-automata models ``verify.py --uppaal`` writes (``models``: repo-relative
    path -> text of UPPAAL_FILES), the parameters of their scheduler (``policy``, a
    ``formal.policies.TimeoutPolicy``) and their time unit (ms)."""
    xml_file, q_file, _, finite_q_file = UPPAAL_FILES
    xml = models[xml_file]
    root = ET.fromstring(xml.split("\n", 2)[2] if xml.startswith("<?xml") else xml)
    templates = {t.findtext("name"): t for t in root.findall("template")}
    macros.add("resUppaalTemplates", str(len(templates)), xml_file, "number of <template> elements")
    scheduler = templates.get("Scheduler")
    if scheduler is None:
        raise BuildError(f"{xml_file}: no Scheduler template")
    for tag, name in (("location", "Locations"), ("transition", "Transitions")):
        count = str(len(scheduler.findall(tag)))
        macros.add(f"resUppaalSched{name}", count, xml_file, f"Scheduler: number of <{tag}> elements")
    macros.add("resUppaalB", str(policy.batch), xml_file, "scheduler: B (requests; verify.py's default)")
    macros.add("resUppaalT", f"{policy.timeout_ms:g}", xml_file, "scheduler: T (ms; verify.py's default)")
    macros.add("resUppaalUnit", f"{time_unit_ms:g}", xml_file, "time unit (ms; verify.py's default)")
    macros.add("resUppaalQueries", str(count_queries(models[q_file])), q_file, "number of queries")
    finite = str(count_queries(models[finite_q_file]))
    macros.add("resUppaalFiniteQueries", finite, finite_q_file, "number of queries")


def count_queries(text: str) -> int:
    """The queries of a UPPAAL .q file: its lines that are not comments."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("//"))


TA_KEYS = {
    "resTaSchedulers": "schedulers checked",
    "resTaCalls": "TChecker calls in all",
    "resTaStageS": "wall time of the stage (s)",
    "resTaWaitTriton": "Triton-like timeout: longest wait with a worker idle (ms)",
    "resTaBurstMax": "largest burst b",
    "resTaBurstMin": "smallest burst b",
    "resTaLatencyMin": "Triton-like timeout: worst-case latency at the smallest b (ms)",
    "resTaLatencyMax": "Triton-like timeout: worst-case latency at the largest b (ms)",
    "resTaQueueMax": "Triton-like timeout: queue bound at the largest b",
}


def ta_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """The timed-automata checks with TChecker, or every macro [pending] when ``data`` is None."""
    if data is None:
        add_pending(macros, TA_KEYS, VERIFICATION_TA)
        return
    rows = data["results"]
    triton = [r for r in rows if r["scheduler"].startswith("Triton-like")]
    if not triton:
        raise BuildError(f"{VERIFICATION_TA}: no Triton-like timeout rows")
    bursts = data["settings"]["bursts"]
    first, last = f"b={min(bursts)},", f"b={max(bursts)},"

    def value(prop: str, arrivals: str = "") -> float:
        row = next((r for r in triton if r["property"] == prop and arrivals in r["arrivals"] + ","), None)
        if row is None or row["value"] is None:
            raise BuildError(f"{VERIFICATION_TA}: no value for {prop} {arrivals}")
        return row["value"]

    values = {
        "resTaSchedulers": str(len(data["schedulers"]) + len(data["same_as"])),
        "resTaCalls": str(sum(r["tchecker_calls"] for r in rows)),
        "resTaStageS": f"{data['seconds']:.0f}",
        "resTaWaitTriton": f"{value('timeout safety'):g}",
        "resTaBurstMax": str(max(bursts)),
        "resTaBurstMin": str(min(bursts)),
        "resTaLatencyMin": f"{value('worst-case latency', first):g}",
        "resTaLatencyMax": f"{value('worst-case latency', last):g}",
        "resTaQueueMax": f"{value('queue bound', last):g}",
    }
    for name, key in TA_KEYS.items():
        macros.add(name, values[name], VERIFICATION_TA, key)
