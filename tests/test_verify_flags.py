"""verify.py's flags are checked before anything runs, and a run never leaves a half-written or
all-error report in place of the committed one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apps import verify, verify_cli, verify_outputs, verify_ta
from batchenv.scenarios import load_scenario
from formal import verification
from formal.verification import Settings, VerificationReport

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ticks", "0"], "--ticks: must be in [1, 1e+09], got 0"),
        (["--overflow-s", "-1"], "--overflow-s: must be in (0, 3600], got -1.0"),
        (["--sim-horizon-s", "0"], "--sim-horizon-s: must be in (0, 1e+06], got 0.0"),
        (["--rate", "0"], "--rate: must be in (0, 100000]"),
        (["--rate", "nan"], "--rate: must be in (0, 100000]"),
        (["--rate", "inf"], "--rate: must be in (0, 100000]"),
        (["--tick-ms", "0.5"], "--tick-ms: must be in [1, 5]"),
        (["--queue-cap", "0"], "--queue-cap: must be in [1, 1024]"),
        (["--cpu-budget-s", "-1"], "--cpu-budget-s: must be in [0, 86400]"),
        (["--agent-seeds", "-1"], "--agent-seeds: must be in [0, 100]"),
        (["--agent-horizon-s", "0"], "--agent-horizon-s: must be in (0, 100000]"),
        (["--ta-unit-ms", "0"], "--ta-unit-ms: must be in [0.1, 5]"),
        (["--ta-queue-cap", "1"], "--ta-queue-cap: must be in [2, 64]"),
        (["--seed", "-1"], "--seed: must be in [0, 4.29497e+09]"),
        (["--bands", "0.5"], "--bands: comma-separated numbers in [1, 100]"),
        (["--bands", "x"], "--bands: comma-separated numbers in [1, 100]"),
        (["--agents", "foo"], "unknown agent 'foo'"),
        (["--band-scheduler", "foo"], "unknown agent 'foo'"),
        (["--agents", "missing.zip"], "checkpoint 'missing.zip' is not a file"),
    ],
)
def test_bad_flags_are_refused_up_front_and_nothing_is_written(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "v.md"
    assert verify.main([*args, "--out", str(out), "--ta-out", str(tmp_path / "ta.json")]) == 2
    printed = capsys.readouterr().out.replace("\n", " ")
    assert message in printed, printed
    assert list(tmp_path.iterdir()) == []


def test_an_error_with_brackets_is_printed_whole(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Error text is not read as rich markup: ``[draft]`` in a path and YAML's ``expected ','
    or ']'`` both show (rich dropped text between brackets that looked like a style tag)."""
    folder = tmp_path / "[draft]"
    folder.mkdir()
    scenario = folder / "s.yaml"
    scenario.write_text("arrivals:\n  process: [poisson\n")
    assert verify.main(["--config", str(scenario), "--out", str(tmp_path / "v.md")]) == 2
    printed = " ".join(capsys.readouterr().out.split())
    expected = (
        f"error: {scenario}: not valid YAML: line 3, column 1: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence at line 2, column 12)"
    )
    assert expected in printed, printed


def test_a_bad_flag_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "verify.py"), "--ticks", "0", "--out", str(tmp_path / "v.md")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --ticks"), result.stdout
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_scenario_the_timed_automata_cannot_check_skips_that_stage_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_ta, "find_tchecker", lambda: object())  # as if TChecker were installed

    def storm_stage(*args: object, **kwargs: object) -> None:
        raise SystemExit(7)

    monkeypatch.setattr(verification, "run_verification", storm_stage)
    files = ["--out", str(tmp_path / "v.md"), "--ta-out", str(tmp_path / "ta.json")]
    args = ["--scenario", "azure_trace", *files, "--models-dir", str(tmp_path / "m"), "--jobs", "1"]
    with pytest.raises(SystemExit) as stopped:  # stopped where the Storm stage would start
        verify.main(args)
    assert stopped.value.code == 7
    printed = " ".join(capsys.readouterr().out.split())
    assert "timed-automata stage skipped: arrivals.process: the exact SMDP solver needs 'poisson'" in printed
    assert verify_ta.ta_unsupported_reason(load_scenario("azure_trace")) is not None
    assert verify_ta.ta_unsupported_reason(load_scenario("default")) is None


def test_ta_only_on_a_scenario_the_timed_automata_cannot_check_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_ta, "find_tchecker", lambda: object())  # as if TChecker were installed
    files = ["--out", str(tmp_path / "v.md"), "--ta-out", str(tmp_path / "ta.json")]
    args = ["--scenario", "azure_trace", "--ta-only", *files, "--models-dir", str(tmp_path / "m")]
    assert verify.main(args) == 2
    printed = capsys.readouterr().out
    assert printed.startswith("error: --ta-only: arrivals.process: the exact SMDP solver needs 'poisson'")
    assert "one worker, Poisson arrivals" in printed
    assert list(tmp_path.iterdir()) == []


def test_an_all_error_run_leaves_the_report_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "v.md"
    out.write_text("committed\n")
    out.with_suffix(".json").write_text("{}\n")

    def failing(settings: Settings, progress: object = None) -> VerificationReport:
        report = VerificationReport(settings, settings.tick_model())
        report.notes.append("every check failed")
        return report

    monkeypatch.setattr(verification, "run_verification", failing)
    code = verify.main(["--agents", "", "--no-ta", "--out", str(out), "--tick-ms", "5", "--queue-cap", "8"])
    assert code == 1
    assert "no check produced a result" in capsys.readouterr().out.replace("\n", " ")
    assert out.read_text() == "committed\n" and out.with_suffix(".json").read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.md"]  # no temporary left


def test_outputs_are_renamed_together_or_not_at_all(tmp_path: Path) -> None:
    first = tmp_path / "a.md"
    first.write_text("old\n")
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder\n")
    with pytest.raises(OSError):
        verify_outputs.write_together({first: "new\n", blocked / "b.json": "{}\n"})
    assert first.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "file"]
    verify_outputs.write_together({first: "new\n", tmp_path / "b.json": "{}\n"})
    assert first.read_text() == "new\n" and (tmp_path / "b.json").read_text() == "{}\n"


def test_a_report_with_other_sizes_than_the_defaults_says_so() -> None:
    assert verify_cli.reduced_settings_note(verify_cli.build_parser().parse_args([])) == ""
    note = verify_cli.reduced_settings_note(
        verify_cli.build_parser().parse_args(["--ticks", "1000", "--bands", "1"])
    )
    assert "--ticks 1000" in note and "--bands 1" in note and "`python verify.py`" in note


@pytest.mark.parametrize(
    ("text", "head"),
    [
        ("", ""),
        ("# Storm\n\nrows\n", "# Storm\n\nrows"),
        (f"# Storm\n\nrows\n\n{verify_ta.SECTION_TITLE}\n\nold rows\n", "# Storm\n\nrows"),
        # a report that holds only a timed-automata section (``--ta-only`` on a new file):
        # rerunning must replace it, not keep it and append a second one
        (f"{verify_ta.SECTION_TITLE}\n\nold rows\n", ""),
    ],
)
def test_ta_section_is_replaced_wherever_it_starts(text: str, head: str) -> None:
    assert verify_ta._before_ta_section(text) == head


def test_full_run_checks_every_checkpoint_shipped_for_the_system() -> None:
    """``verify.py --full`` checks the checkpoints trained for the scenario's system, the ones
    trained on its workload mixture included, and nothing for a scenario with none."""
    names = sorted(path.name for path in verify_cli.shipped_checkpoints("default"))
    assert names == [
        "dqn_default.zip",
        "dqn_default_mixture.zip",
        "ppo_default.zip",
        "ppo_default_mixture.zip",
    ]
    assert verify_cli.shipped_checkpoints("bursty") == []


def test_each_command_writes_its_own_committed_results_by_default() -> None:
    """Plain ``verify.py`` must not overwrite the committed ``--full`` results."""
    quick = verify_cli.resolve_sizes(verify_cli.build_parser().parse_args([]))
    full = verify_cli.resolve_sizes(verify_cli.build_parser().parse_args(["--full"]))
    given = ["--full", "--out", "x.md", "--ta-out", "t.json"]
    chosen = verify_cli.resolve_sizes(verify_cli.build_parser().parse_args(given))
    assert (quick.out.name, quick.ta_out.name) == ("verification_default.md", "verification_default_ta.json")
    assert (full.out.name, full.ta_out.name) == ("verification.md", "verification_ta.json")
    assert (chosen.out, chosen.ta_out) == (Path("x.md"), Path("t.json"))
    for args in (quick, full):
        assert args.out.parent == args.ta_out.parent == verify_cli.REPO / "docs" / "results"
        assert args.out.is_file() and args.ta_out.is_file()  # the committed files
