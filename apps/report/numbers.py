"""The quoted results of evaluate.py's scenario suite and of the benchmarks (proposed_eval.py,
env_speed.py): one function per source, each adding its macros (value, file, key) to a
:class:`~apps.report.macros.Macros`."""

from __future__ import annotations

import statistics
from typing import Any

from apps.report.formatting import fkilo, fnum, fpct
from apps.report.macros import Macros, add_pending
from apps.report.names import (
    AGENTS,
    DESIGN_VARIANTS,
    MODEL_LETTERS,
    NON_POISSON,
    POISSON_ONE_WORKER,
    SCENARIOS,
)
from apps.report.names import SUITE_METRICS as METRICS
from apps.report.sources import (
    BENCH,
    DESIGN,
    ENV_SPEED,
    SUITE,
    BuildError,
    SuiteScenario,
)

__all__ = [
    "bench_numbers",
    "design_numbers",
    "env_speed_numbers",
    "suite_numbers",
]

# -- the scenario suite (evaluate.py --report docs/results/proposed.md)


def suite_numbers(macros: Macros, suite: dict[str, SuiteScenario]) -> None:
    missing = [s for s in SCENARIOS if s not in suite]
    if missing:
        raise BuildError(f"{SUITE}: no scenario {', '.join(missing)}")
    for scen, data in suite.items():
        stok = SCENARIOS.get(scen)
        if stok is None:
            continue
        macros.add(f"resRate{stok}", data.rate.replace("-", "--"), SUITE, f"{scen}: mean rate (1/s)")
        for agent in data.cells:
            atok = AGENTS.get(agent)
            if atok is None:
                continue
            key = f"{scen} / {agent}"
            for metric, (mtok, _, _) in METRICS.items():
                v = data.shown(agent, metric)
                if v is None:
                    continue
                macros.add(f"res{mtok}{atok}{stok}", v.tex(sign=(mtok == "Gap")), SUITE, f"{key} / {metric}")
                if v.ci is not None and mtok in ("Cost", "Gap"):
                    macros.add(f"res{mtok}Ci{atok}{stok}", v.ci_tex(), SUITE, f"{key} / {metric} (95% CI)")
                if mtok == "Gap":
                    macros.add(f"resRed{atok}{stok}", fnum(-v.x, v.digits), SUITE, f"{key} / -{metric}")
            mix = data.mix_percent(agent)
            for letter, (model, pct) in zip(MODEL_LETTERS, (mix or {}).items(), strict=False):
                macros.add(f"resMix{letter}{atok}{stok}", str(pct), SUITE, f"{key} / mix_{model} (%)")
    _suite_aggregates(macros, suite)


def _suite_aggregates(macros: Macros, suite: dict[str, SuiteScenario]) -> None:
    """Figures over several scenarios, quoted in the text."""

    def gap(scen: str, agent: str) -> float:
        return suite[scen].value(agent, "gap").x

    def p99(scen: str, agent: str) -> float:
        return suite[scen].value(agent, "latency_p99_ms").x

    macros.add(
        "resSuiteMaxGapPropPoisson",
        fnum(max(gap(s, "proposed") for s in POISSON_ONE_WORKER), 2),
        SUITE,
        "max over the one-worker Poisson scenarios of proposed / gap (%)",
    )
    wins = [s for s in NON_POISSON if gap(s, "proposed") < gap(s, "util_switch")]
    macros.add(
        "resSuiteWinsVsSwitch",
        str(len(wins)),
        SUITE,
        "non-Poisson scenarios where proposed gap < util_switch gap",
    )
    macros.add("resSuiteNonPoisson", str(len(NON_POISSON)), SUITE, "number of non-Poisson scenarios compared")
    every_scenario = [*NON_POISSON, *POISSON_ONE_WORKER, "default_randomised"]
    tail_losses = [s for s in every_scenario if p99(s, "proposed") > p99(s, "timeout")]
    macros.add(
        "resSuiteTailLosses",
        str(len(tail_losses)),
        SUITE,
        "scenarios of the suite where proposed p99 > timeout p99",
    )
    macros.add(
        "resSuiteScenarios",
        str(len(every_scenario)),
        SUITE,
        "scenarios of the suite (incl. default_randomised)",
    )
    loads = [s for s in NON_POISSON if not s.startswith("multi_gpu")]
    gpus = [s for s in NON_POISSON if s.startswith("multi_gpu")]
    macros.add(
        "resSuiteBestRedLoad",
        fnum(max(-gap(s, "proposed") for s in loads), 1),
        SUITE,
        "max over bursty, diurnal, azure_trace* of -(proposed / gap) (%)",
    )
    macros.add(
        "resSuiteBestRedGpu",
        fnum(max(-gap(s, "proposed") for s in gpus), 1),
        SUITE,
        "max over multi_gpu* of -(proposed / gap) (%)",
    )
    for tok, group in (("Load", loads), ("Gpu", gpus)):
        best = max(group, key=lambda s: -gap(s, "proposed"))
        macros.add(
            f"resSuiteBest{tok}Name",
            f"\\sname{{{best.replace('_', chr(92) + '_')}}}",
            SUITE,
            f"the scenario of resSuiteBestRed{tok}",
        )
        for metric, mtok in (
            ("latency_mean_ms", "Mean"),
            ("latency_p99_ms", "Tail"),
            ("mean_quality", "Qual"),
        ):
            for agent, atok in (("proposed", "Prop"), ("timeout", "Timeout")):
                macros.add(
                    f"resSuiteBest{tok}{mtok}{atok}",
                    suite[best].value(agent, metric).tex(),
                    SUITE,
                    f"{best} / {agent} / {metric}",
                )
    horizons = {s.horizon_s for s in suite.values()}
    if len(horizons) != 1:
        raise BuildError(f"{SUITE}: the scenarios have different horizons {sorted(horizons)}")
    macros.add("resSuiteSeeds", str(suite["default"].n_seeds), SUITE, "len(seeds)")
    macros.add("resSuiteHorizonS", f"{horizons.pop():g}", SUITE, "scenarios[*].config.horizon_s (s)")
    default = suite["default"].params
    macros.add(
        "resStaticBatch",
        str(default["static"]["batch_size"]),
        SUITE,
        "default / static / params.batch_size",
    )
    guard = "proposed(guard_slo_ms=80,guard_penalty=0.2)"
    macros.add(
        "resGuardSloMs",
        f"{default[guard]['guard_slo_ms']:g}",
        SUITE,
        f"default / {guard} / params.guard_slo_ms",
    )
    macros.add(
        "resGuardPenalty",
        f"{default[guard]['guard_penalty']:g}",
        SUITE,
        f"default / {guard} / params.guard_penalty",
    )
    forced = [
        v.x
        for s in suite.values()
        for agent in s.cells
        if agent.startswith("proposed") and (v := s.shown(agent, "n_forced")) is not None
    ]
    macros.add(
        "resSuiteForcedProp", fnum(max(forced), 0), SUITE, "max over scenarios of proposed* / n_forced"
    )


# -- benchmarks/proposed_eval.py

BENCH_PARTS = ("gap", "sensitivity", "tracking", "oracle", "table", "workers", "speed", "slo")
GAP_AGENTS = {
    "proposed": "Prop",
    "proposed(rate_estimation=false)": "PropNoRate",
    "timeout": "Timeout",
    "util_switch": "Switch",
}


def bench_numbers(macros: Macros, data: dict[str, Any]) -> None:
    for part in BENCH_PARTS:
        if part not in data:
            raise BuildError(f"{BENCH}: no '{part}' part")
    settings = data["settings"]
    macros.add("resBenchSeeds", str(settings["seeds"]), BENCH, "settings.seeds (gap part)")
    macros.add("resBenchHorizonS", f"{settings['horizon_s']:g}", BENCH, "settings.horizon_s (gap part)")
    _gap_part(macros, data["gap"])
    _sensitivity_part(macros, data["sensitivity"])
    _tracking_part(macros, data["tracking"])
    _oracle_part(macros, data["oracle"])
    _table_part(macros, data["table"]["default"])
    _workers_part(macros, data["workers"])
    _speed_part(macros, data["speed"])
    _slo_part(macros, data["slo"])


def _gap_part(macros: Macros, gap: dict[str, Any]) -> None:
    worst = upper = 0.0
    for scen in POISSON_ONE_WORKER:
        entry = gap[scen]
        stok = SCENARIOS[scen]
        macros.add(
            f"resBenchOptCost{stok}", fnum(entry["optimal_cost"][0], 4), BENCH, f"gap.{scen}.optimal_cost[0]"
        )
        for agent, atok in GAP_AGENTS.items():
            g, ci = entry["gaps"][agent]
            macros.add(
                f"resBenchGap{atok}{stok}", fpct(g, 2, sign=True), BENCH, f"gap.{scen}.gaps.{agent}[0]"
            )
            macros.add(f"resBenchGapCi{atok}{stok}", fpct(ci, 2), BENCH, f"gap.{scen}.gaps.{agent}[1]")
            if agent == "proposed":
                worst = max(worst, abs(g))
                upper = max(upper, g + ci)
    macros.add("resBenchMaxAbsGapProp", fpct(worst, 2), BENCH, "max over gap.* of |gaps.proposed[0]|")
    macros.add("resBenchMaxUpperGapProp", fpct(upper, 2), BENCH, "max over gap.* of gaps.proposed[0] + [1]")
    forced = max(int(e["forced"]) for e in gap.values())
    macros.add("resBenchForcedProp", str(forced), BENCH, "max over gap.* of forced")


NEAR_FACTORS = ("0.95", "1.05")
"""The rate errors of the sensitivity part that the text calls near (+-5%)."""


def _sensitivity_part(macros: Macros, sens: dict[str, dict[str, float]]) -> None:
    near = max(abs(v[f]) for v in sens.values() for f in NEAR_FACTORS)
    spread = {round(abs(float(f) - 1), 9) for f in NEAR_FACTORS}
    if len(spread) != 1:
        raise BuildError(f"NEAR_FACTORS {NEAR_FACTORS} are not symmetric around 1")
    macros.add(
        "resSensNearPct",
        f"{100 * spread.pop():.0f}",
        BENCH,
        "sensitivity factors 0.95 and 1.05 (+-%)",
    )
    macros.add("resSensNear", fpct(near, 2), BENCH, "max over sensitivity.* of |f = 0.95|, |f = 1.05|")
    macros.add(
        "resSensHalf",
        fpct(max(v["0.5"] for v in sens.values()), 0),
        BENCH,
        "max over sensitivity.* of f = 0.5",
    )
    macros.add(
        "resSensDouble",
        fpct(max(v["2.0"] for v in sens.values()), 0),
        BENCH,
        "max over sensitivity.* of f = 2.0",
    )
    half_rate = max(sens, key=lambda r: sens[r]["0.5"])
    double_rate = max(sens, key=lambda r: sens[r]["2.0"])
    macros.add("resSensHalfRate", f"{float(half_rate):.4g}", BENCH, "sensitivity: rate of the max at f = 0.5")
    macros.add(
        "resSensDoubleRate", f"{float(double_rate):.4g}", BENCH, "sensitivity: rate of the max at f = 2.0"
    )


DISPERSION_WINDOW_S = 1.0
"""The window (s) at which the report quotes the trace's index of dispersion."""


def _tracking_part(macros: Macros, track: dict[str, Any]) -> None:
    settings = track["settings"]
    first, second, third = settings["rates_per_s"][:3]
    tight, loose = settings["tolerances"]
    up_key, down_key = f"{first:g}->{second:g}", f"{second:g}->{third:g}"
    macros.add("resTrackFrom", f"{first:g}", BENCH, "tracking.settings.rates_per_s[0]")
    macros.add("resTrackTo", f"{second:g}", BENCH, "tracking.settings.rates_per_s[1]")
    macros.add("resTrackBack", f"{third:g}", BENCH, "tracking.settings.rates_per_s[2]")
    macros.add("resTrackTight", f"{100 * tight:g}", BENCH, "tracking.settings.tolerances[0] (%)")
    macros.add("resTrackLoose", f"{100 * loose:g}", BENCH, "tracking.settings.tolerances[1] (%)")
    up = track[up_key]
    for name, key in (("resTrackUpTwenty", "settle20_s"), ("resTrackUpFifty", "settle50_s")):
        median_ms = 1000 * statistics.median(up[key])
        macros.add(name, f"{median_ms:.0f}", BENCH, f"tracking.{up_key}.{key} median (ms)")
    macros.add("resTrackUpRms", fpct(up["rms"], 1), BENCH, f"tracking.{up_key}.rms")
    macros.add("resTrackDownRms", fpct(track[down_key]["rms"], 0), BENCH, f"tracking.{down_key}.rms")
    macros.add("resTrackStepS", f"{settings['step_s']:g}", BENCH, "tracking.settings.step_s (s)")
    dispersion = track["dispersion_azure_trace_high"]
    one_second = dispersion["windows_s"].index(DISPERSION_WINDOW_S)
    macros.add(
        "resDispersionWindowS",
        f"{DISPERSION_WINDOW_S:g}",
        BENCH,
        "the window of dispersion_azure_trace_high quoted (s)",
    )
    macros.add(
        "resDispersionOneSec",
        f"{dispersion['variance_to_mean'][one_second]:.2f}",
        BENCH,
        "tracking.dispersion_azure_trace_high: variance / mean at the 1 s window",
    )


def _oracle_part(macros: Macros, oracle: dict[str, Any]) -> None:
    for agent, tok in (
        ("timeout (tuned)", "Timeout"),
        ("util_switch (tuned)", "Switch"),
        ("proposed", "Prop"),
        ("proposed, true phase rate (oracle)", "Oracle"),
    ):
        o = oracle[agent]
        macros.add(f"resOracleGap{tok}", fpct(o["gap"][0], 1, sign=True), BENCH, f"oracle.{agent}.gap[0]")
        macros.add(f"resOracleTail{tok}", fnum(o["p99_ms"], 1), BENCH, f"oracle.{agent}.p99_ms")


def _table_part(macros: Macros, table: dict[str, Any]) -> None:
    macros.add("resTableRows", str(table["rows"]), BENCH, "table.default.rows")
    macros.add("resTableBuildS", fnum(table["build_s"], 1), BENCH, "table.default.build_s")
    macros.add("resThresholdMin", str(min(table["thresholds"])), BENCH, "min of table.default.thresholds")
    macros.add("resThresholdMax", str(max(table["thresholds"])), BENCH, "max of table.default.thresholds")


def _workers_part(macros: Macros, workers: dict[str, Any]) -> None:
    for scen in ("multi_gpu", "multi_gpu_4"):
        for agent, tok in (
            ("util_switch", "Switch"),
            ("proposed", "Prop"),
            ("proposed(worker_model=share)", "Share"),
        ):
            macros.add(
                f"resWorkersGap{tok}{SCENARIOS[scen]}",
                fpct(workers[scen]["gaps"][agent][0], 1, sign=True),
                BENCH,
                f"workers.{scen}.gaps.{agent}[0]",
            )


def _speed_part(macros: Macros, speed: dict[str, Any]) -> None:
    prop = [v["decisions_per_s"] for k, v in speed.items() if k.endswith("/proposed")]
    ratios = [
        v["decisions_per_s"] / speed[k.replace("/proposed", "/timeout")]["decisions_per_s"]
        for k, v in speed.items()
        if k.endswith("/proposed")
    ]
    macros.add("resSpeedPropMin", fkilo(min(prop)), BENCH, "min over speed.*/proposed of decisions_per_s")
    macros.add("resSpeedPropMax", fkilo(max(prop)), BENCH, "max over speed.*/proposed of decisions_per_s")
    macros.add("resSpeedRatioMin", fnum(min(ratios), 2), BENCH, "min of proposed / timeout decisions_per_s")
    macros.add("resSpeedRatioMax", fnum(max(ratios), 2), BENCH, "max of proposed / timeout decisions_per_s")


def _slo_part(macros: Macros, slo: dict[str, Any]) -> None:
    for agent, tok in (
        ("timeout", "Timeout"),
        ("util_switch", "Switch"),
        ("proposed", "Prop"),
        ("proposed(slo_guard=false)", "PropNoGuard"),
        ("proposed(rate_estimation=false)", "PropNoRate"),
        ("proposed(model_switching=false)", "PropNoSwitch"),
    ):
        row = slo[agent]
        macros.add(f"resSloCost{tok}", fnum(row["cost"][0], 4), BENCH, f"slo.{agent}.cost[0]")
        macros.add(f"resSloGap{tok}", fpct(row["gap"][0], 1, sign=True), BENCH, f"slo.{agent}.gap[0]")
        if tok in ("Timeout", "Switch", "Prop", "PropNoGuard"):
            macros.add(f"resSloTail{tok}", f"{row['p99_ms']:.1f}", BENCH, f"slo.{agent}.p99_ms")
            macros.add(
                f"resSloAttain{tok}", f"{row['slo_attainment']:.3f}", BENCH, f"slo.{agent}.slo_attainment"
            )


def design_numbers(macros: Macros, data: dict[str, Any]) -> None:
    for key, entry in data["design"].items():
        scen, variant = key.split("/", 1)
        stok, vtok = SCENARIOS.get(scen), DESIGN_VARIANTS.get(variant)
        if stok and vtok:
            macros.add(
                f"resDesign{vtok}{stok}", fpct(entry["gap"][0], 1, sign=True), DESIGN, f"design.{key}.gap[0]"
            )


def env_speed_numbers(macros: Macros, data: dict[str, Any]) -> None:
    ratios, best = data["ratios_to_cartpole"], data["best"]
    macros.add(
        "resEnvRatio", fnum(ratios["env_steps_per_s"], 2), ENV_SPEED, "ratios_to_cartpole.env_steps_per_s"
    )
    macros.add(
        "resSimRatio",
        fnum(ratios["sim_requests_per_s_default"], 1),
        ENV_SPEED,
        "ratios_to_cartpole.sim_requests_per_s_default",
    )
    macros.add("resEnvSteps", fkilo(best["env_steps_per_s"]), ENV_SPEED, "best.env_steps_per_s")
    busy = "ratios_to_cartpole.env_steps_per_s_high_load"
    if "env_steps_per_s_high_load" in ratios:  # measured with --scenarios default,high_load
        macros.add("resEnvRatioBusy", fnum(ratios["env_steps_per_s_high_load"], 2), ENV_SPEED, busy)
    else:
        add_pending(macros, {"resEnvRatioBusy": busy}, ENV_SPEED)
    macros.add(
        "resSimRequests",
        fkilo(best["sim_requests_per_s_default"]),
        ENV_SPEED,
        "best.sim_requests_per_s_default",
    )
