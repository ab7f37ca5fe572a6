"""Names of scenarios, agents and metrics in the report: the letters-only tokens of macro names
(LaTeX command names have no digits), the labels of tables and figures, and the groups of
scenarios the text compares."""

from __future__ import annotations

__all__ = [
    "ABLATION_AGENTS",
    "ABLATION_SCENARIOS",
    "AGENTS",
    "AGENT_LABELS",
    "ALGO_NAMES",
    "DESIGN_VARIANTS",
    "MODEL_LETTERS",
    "NON_POISSON",
    "PLAIN_LABELS",
    "POISSON_ONE_WORKER",
    "SCENARIOS",
    "SUITE_METRICS",
]

MODEL_LETTERS = "ABC"
"""Macro tokens of the models in the config's order (LLM-1, LLM-2, LLM-3)."""
SCENARIOS = {
    "default": "Default",
    "poisson_05": "PoisFive",
    "poisson_25": "PoisTwentyFive",
    "poisson_50": "PoisFifty",
    "poisson_75": "PoisSeventyFive",
    "poisson_95": "PoisNinetyFive",
    "high_load": "HighLoad",
    "default_randomised": "Randomised",
    "bursty": "Bursty",
    "diurnal": "Diurnal",
    "azure_trace": "Trace",
    "azure_trace_low": "TraceLow",
    "azure_trace_medium": "TraceMedium",
    "azure_trace_high": "TraceHigh",
    "multi_gpu": "MultiGpu",
    "multi_gpu_4": "MultiGpuFour",
}
AGENTS = {
    "greedy": "Greedy",
    "static": "Static",
    "timeout": "Timeout",
    "aimd": "Aimd",
    "util_switch": "Switch",
    "optimal": "Opt",
    "proposed": "Prop",
    "proposed(rate_estimation=false)": "PropNoRate",
    "proposed(model_switching=false)": "PropNoSwitch",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)": "PropGuard",
    "proposed(slo_guard=false)": "PropNoGuard",
    "ppo_default": "Ppo",
    "dqn_default": "Dqn",
}
AGENT_LABELS = {
    "greedy": "greedy",
    "static": "static",
    "timeout": "timeout (tuned)",
    "aimd": "AIMD",
    "util_switch": "util\\_switch (tuned)",
    "optimal": "optimum",
    "proposed": "proposed",
    "proposed(rate_estimation=false)": "no rate estimation",
    "proposed(model_switching=false)": "no model switching",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)": "tail guard",
    "proposed(slo_guard=false)": "no SLO guard",
    "ppo_default": "PPO (shipped)",
    "dqn_default": "DQN (shipped)",
}
PLAIN_LABELS = {k: v.replace("\\_", "_") for k, v in AGENT_LABELS.items()}
"""The labels without LaTeX escapes (figure legends)."""

POISSON_ONE_WORKER = [
    "poisson_05",
    "default",
    "poisson_25",
    "poisson_50",
    "high_load",
    "poisson_75",
    "poisson_95",
]
NON_POISSON = [
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_low",
    "azure_trace_medium",
    "azure_trace_high",
    "multi_gpu",
    "multi_gpu_4",
]
ABLATION_SCENARIOS = [
    "poisson_25",
    "poisson_50",
    "default_randomised",
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_low",
    "multi_gpu",
    "multi_gpu_4",
]
ABLATION_AGENTS = [
    "proposed",
    "proposed(rate_estimation=false)",
    "proposed(model_switching=false)",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)",
]
SUITE_METRICS = {
    # metric of evaluate.py's results -> (macro token, scale, decimals), scale and decimals as
    # evaluate.py's tables show the metric (evaluation/tables.py; a test checks they agree)
    "cost_per_request": ("Cost", 1.0, 4),
    "gap": ("Gap", 100.0, 2),
    "gap_hindsight": ("Bound", 100.0, 2),
    "score_per_request": ("Score", 1.0, 4),
    "latency_mean_ms": ("Mean", 1.0, 1),
    "latency_p99_ms": ("Tail", 1.0, 1),
    "slo_attainment": ("Slo", 1.0, 3),
    "throughput_per_s": ("Thr", 1.0, 1),
    "mean_quality": ("Qual", 1.0, 4),
    "mean_batch_size": ("Batch", 1.0, 1),
    "utilisation": ("Util", 1.0, 2),
    "drop_rate": ("Drops", 1.0, 3),
    "n_forced": ("Forced", 1.0, 1),
}
DESIGN_VARIANTS = {
    "defaults": "Defaults",
    "z = 2": "ZTwo",
    "z = 4": "ZFour",
    "drops restart too": "DropRestart",
    "no CUSUM": "NoCusum",
    "h = 7": "HSeven",
    "h = 14": "HFourteen",
    "r = 2": "RTwo",
    "no timer (patience inf)": "NoTimer",
    "patience 1": "PatienceOne",
    "whole-queue batches": "WholeQueue",
}
ALGO_NAMES = {"ppo": "PPO", "dqn": "DQN", "a2c": "A2C", "maskable_ppo": "MaskablePPO"}
