"""verify.py: its CLI, its errors, a small end-to-end run, and (slow) the default run's budget."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import stable_baselines3 as sb3

from agents import checkpoint
from apps import verify
from batchenv.env import DynamicBatchingEnv
from batchenv.scenarios import load_scenario

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "verify.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def test_help_explains_every_flag() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for flag in (
        "--scenario",
        "--config",
        "--rate",
        "--tick-ms",
        "--queue-cap",
        "--overflow-s",
        "--agents",
        "--jobs",
        "--ticks",
        "--sim-horizon-s",
        "--seed",
        "--out",
        "--models-dir",
        "--uppaal",
        "--uppaal-only",
        "--uppaal-policy",
        "--prism",
        "--no-ta",
        "--ta-only",
        "--ta-bursts",
        "--ta-unit-ms",
        "--ta-queue-cap",
        "--ta-out",
        "--robust",
    ):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tick-ms", "7"], "--tick-ms: must be in [1, 5]"),
        (["--queue-cap", "0"], "--queue-cap: must be in [1, 1024]"),
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--uppaal-only", "--uppaal-policy", "B=8,X=1"], "--uppaal-policy"),
        (["--uppaal-only", "--uppaal-policy", "B=8,T=500"], "timeout.timeout_ms"),
        (["--ta-only", "--ta-bursts", "1,x"], "--ta-bursts"),
        (["--ta-only", "--ta-queue-cap", "200"], "--ta-queue-cap: must be in [2, 64]"),
        (["--ta-only", "--ta-unit-ms", "0"], "--ta-unit-ms: must be in [0.1, 5]"),
    ],
)
def test_bad_input_names_the_field(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert verify.main(args) == 2
    assert message in capsys.readouterr().out.replace("\n", " ")


def test_uppaal_only_writes_models_and_says_when_verifyta_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert verify.main(["--uppaal-only", "--prism", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "batching.props",
        "batching.q",
        "batching.tck",
        "batching.xml",
        "batching_any.q",
        "batching_any.tck",
        "batching_any.xml",
        "batching_finite.q",
        "batching_finite.tck",
        "batching_finite.xml",
        "batching_mdp.prism",
    ]
    if shutil.which("verifyta") is None:
        assert "verifyta is not on PATH" in out and "not installed" in out
    # the committed defaults are what verify.py writes
    for name in names:
        assert (tmp_path / name).read_text() == (REPO / "formal" / "models" / name).read_text(), name


def test_small_end_to_end_run_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report" / "verification.md"
    args = [
        "--tick-ms",
        "5",
        "--queue-cap",
        "12",
        "--agents",
        "util_switch",
        "--ticks",
        "20000",
        "--sim-horizon-s",
        "30",
        "--out",
        str(out),
        "--rate",
        "80",
        "--no-ta",
    ]
    code = verify.main(args)
    printed = capsys.readouterr().out
    # At a 5 ms tick with 30 s of simulation the event simulator is 10% off Storm, beyond its 3%
    # tolerance (set for the default 2 ms tick): the run says so and exits 1, after writing its
    # report; that cross-check is its only failure.
    assert code == 1, printed
    flat = " ".join(printed.split())
    assert "cross-check failed: the event simulator differs from Storm by" in flat
    assert "the tick simulator differs" not in flat and "FAILS" not in flat
    text = out.read_text()
    assert text.startswith("# Verification results")
    assert "Produced by `python verify.py --tick-ms 5 --queue-cap 12" in text
    assert "| (a) timeout safety, every scheduler | holds |" in text
    for key in ("greedy", "static", "timeout"):
        assert f"| {key} |" in text
    assert "storm_optimum" in text and "states" in printed
    # the same results as JSON next to the Markdown, unrounded
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["command"] in text and data["model"]["tick_ms"] == 5 and data["model"]["queue_cap"] == 12
    assert data["safety"]["holds"] is True and data["safety"]["p_max_shielded"] == 0
    assert f"**{data['optimum']['cost_per_request']:.6g} per request**" in text
    policies = {p["key"]: p for p in data["policies"]}
    assert {"greedy", "static", "timeout", "storm_optimum"} <= set(policies)
    assert f"| greedy | {policies['greedy']['storm']['stats']['states']} |" in text
    cross = data["cross_check"]
    worst = cross["tick_simulator_max_rel_diff"]
    assert worst == max(p["max_rel_diff_tick_simulator"] for p in data["policies"] if p["storm"])
    assert worst <= cross["tick_simulator_tolerance"]
    assert cross["event_simulator_max_rel_diff"] > cross["event_simulator_tolerance"] == 0.03
    assert cross["fields"][-2:] == ["mean_batch", "cost_per_request"]
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left over


def test_ta_only_writes_json_or_says_tchecker_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ta.json"
    md = tmp_path / "v.md"
    md.write_text("# Verification results\n\nStorm part.\n\n## Timed automata (TChecker)\n\nold section\n")
    args = ["--ta-only", "--ta-bursts", "1", "--ta-queue-cap", "8", "--ta-out", str(out), "--out", str(md)]
    from formal.tchecker import TCheckerMissingError, find_tchecker

    try:
        find_tchecker()
    except TCheckerMissingError:
        assert verify.main(args) == 2
        assert "install_tchecker.sh" in capsys.readouterr().out.replace("\n", " ")
        return
    assert verify.main(args) == 0, capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["command"].startswith("python verify.py --ta-only") and data["all_hold"]
    props = {(r["scheduler"].split()[0], r["property"]) for r in data["results"]}
    assert ("Triton-like", "leads-to") in props
    # with 8 places the SMDP optimum dispatches everything on LLM-1 at once, as the tuned timeout
    smdp = next(name for name in [*data["schedulers"], *data["same_as"]] if name.startswith("SMDP"))
    assert ("SMDP", "worst-case latency") in props or data["same_as"][smdp].startswith("timeout tuned")
    text = md.read_text()  # the Storm part kept, the timed-automata section replaced
    assert text.startswith("# Verification results\n\nStorm part.\n\n## Timed automata (TChecker)\n")
    assert "old section" not in text and "Generated by `python verify.py --ta-only" in text
    safety = next(
        r
        for r in data["results"]
        if r["scheduler"].startswith("Triton") and r["property"] == "timeout safety"
    )
    assert safety["value"] == 10.0 and safety["holds"]
    monkeypatch.setenv("TCHECKER_LIB", str(tmp_path / "missing.so"))
    assert verify.main(args) == 2
    assert "install_tchecker.sh" in capsys.readouterr().out.replace("\n", " ")


@pytest.mark.slow
def test_default_run_within_60_seconds(tmp_path: Path) -> None:
    """The default run (Storm, the simulations, the real agents and the timed automata with
    TChecker) needs under 60 s of CPU in all its processes, so under 60 s of wall time on 2 cores
    even without any parallelism; the wall time is checked too when the machine is idle (other
    jobs on a shared machine slow it down, not the verification)."""
    busy_before = os.getloadavg()[0]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = _run("--out", str(tmp_path / "v.md"), "--ta-out", str(tmp_path / "ta.json"), timeout=600)
    elapsed = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stdout + result.stderr
    # every process of the run: verify.py, its worker processes, Storm's solver children, TChecker
    total_cpu_s = (children.ru_utime - children_before.ru_utime) + (
        children.ru_stime - children_before.ru_stime
    )
    assert total_cpu_s < 60, f"verify.py used {total_cpu_s:.1f} s of CPU in all its processes"
    text = (tmp_path / "v.md").read_text()
    storm_cpu_s = float(re.search(r"([\d.]+) s CPU time in all", text).group(1))
    assert storm_cpu_s <= total_cpu_s
    assert "## Timed automata (TChecker)" in text or "TChecker not found" in result.stdout
    if busy_before < 0.5 and os.getloadavg()[0] < 2.5:
        assert elapsed < 60, f"verify.py took {elapsed:.1f} s"


def test_a_learned_checkpoint_is_distilled_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = load_scenario("default")
    model = sb3.PPO("MlpPolicy", DynamicBatchingEnv(config), n_steps=32, batch_size=32, seed=0, device="cpu")
    path = checkpoint.save_checkpoint(model, tmp_path / "ppo_tiny.zip", config, algo="ppo")
    out = tmp_path / "v.md"
    args = [
        "--tick-ms",
        "5",
        "--queue-cap",
        "10",
        "--agents",
        str(path),
        "--ticks",
        "20000",
        "--sim-horizon-s",
        "20",
        "--out",
        str(out),
        "--no-ta",
    ]
    code = verify.main(args)
    printed = " ".join(capsys.readouterr().out.split())
    # a 5 ms tick and 20 s of simulation: the event simulator is off by more than its 3% (the run's
    # only failure; test_small_end_to_end_run_writes_the_report)
    assert code == 1 and "cross-check failed: the event simulator" in printed, printed
    assert "FAILS" not in printed and "the tick simulator differs" not in printed
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| {path} |"))
    assert row.endswith("| 0 |")  # P(violation) = 0: the shield holds for the learned agent too
    assert "checkpoint ppo_tiny.zip; distilled over 210 states" in text
