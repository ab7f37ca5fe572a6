"""The one command of the trace results table (benchmarks/trace_results.py) on tiny settings."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from benchmarks.cli_parts import parse_parts

FIELDS = {
    "cost",
    "gap_vs_timeout",
    "gap_vs_hindsight",
    "mean_ms",
    "p99_ms",
    "slo",
    "quality",
    "verdict_cost",
    "verdict_p99",
}


def test_trace_results_command_writes_every_field(tmp_path: Path) -> None:
    from benchmarks import trace_results

    out = tmp_path / "trace_results.md"
    argv = ["--scenarios", "azure_trace_30", "--agents", "greedy,timeout,proposed,optimal"]
    argv += ["--n-seeds", "2", "--horizon-s", "2", "--jobs", "1", "--out", str(out)]
    assert trace_results.main(argv) == 0
    text = out.read_text()
    assert "`python benchmarks/trace_results.py --scenarios azure_trace_30" in text.splitlines()[2]
    data = json.loads(out.with_suffix(".json").read_text())
    agents = data["azure_trace_30"]["agents"]
    assert set(agents) == {"greedy", "timeout", "proposed", "optimal"}
    assert "does not apply" in agents["optimal"]["not_applicable"]
    for name in ("greedy", "timeout", "proposed"):
        assert set(agents[name]) >= FIELDS
        assert agents[name]["verdict_cost"] in ("beats", "ties", "loses")
    assert agents["timeout"]["gap_vs_timeout"] == [0.0, 0.0]
    hindsight_gap = agents["timeout"]["gap_vs_hindsight"][0]
    assert math.isfinite(hindsight_gap) and hindsight_gap >= -1e-9  # no schedule beats the bound


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--scenarios", "default"], "not a trace scenario"),
        (["--agents", "greedy"], "must include timeout"),
        (["--agents", "timeout,bogus"], "unknown agent"),
        (["--n-seeds", "1"], "--n-seeds must be in"),
        (["--seeds", "1"], "--seeds must be in"),
    ],
)
def test_trace_results_bad_flags_are_one_line_errors(argv: list[str], match: str, capsys) -> None:
    from benchmarks import trace_results

    with pytest.raises(SystemExit):
        trace_results.main(argv)
    assert match in capsys.readouterr().err


def test_parse_parts_keeps_the_order_and_names_an_unknown_part(capsys):
    parser = argparse.ArgumentParser(prog="bench")
    assert parse_parts(parser, " mmpp, traces,,", ("traces", "mmpp")) == ["mmpp", "traces"]
    with pytest.raises(SystemExit):
        parse_parts(parser, "traces,nope", ("traces", "mmpp"))
    assert "--parts: unknown part 'nope'; parts: traces,mmpp" in capsys.readouterr().err


def test_the_gap_to_the_bound_covers_the_seeds_with_a_bound_and_says_how_many() -> None:
    """One rule with evaluate.py: a seed without a bound is left out of the gap to it, not the
    scenario, and the section states the number of seeds when it is not all of them."""
    from benchmarks import trace_results
    from benchmarks.robust.trace_table import scenario_summary
    from execution.hindsight_task import BoundResult

    ok = BoundResult("ok", lower_cost_per_request=0.05, exact=True, upper_cost_per_request=0.05)
    failed = BoundResult("not_applicable", reason="too many arrivals")
    assert trace_results.bound_sentence([ok, ok]) == (
        "Hindsight bound: exact on 2 of 2 episodes (a lower bound on the others)."
    )
    assert trace_results.bound_sentence([ok, failed, ok]) == (
        "Hindsight bound on 2 of 3 episodes, the seeds the gap vs hindsight covers (none on the others: "
        "too many arrivals); exact on 2 of them (a lower bound on the others)."
    )
    episodes = [
        {"cost": cost, "mean_ms": 10.0, "p99_ms": 20.0, "slo": 1.0, "quality": 1.0}
        for cost in (0.06, 0.5, 0.07)
    ]
    gap = scenario_summary({"timeout": episodes}, [ok, failed, ok])["timeout"]["gap_vs_hindsight"][0]
    assert gap == pytest.approx((0.065 - 0.05) / 0.05)  # seeds 0 and 2 only
