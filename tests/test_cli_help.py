"""Every command line's ``--help``, as a new user first reads it: it exits 0, and each option
states its default at most once and never an empty or meaningless one ("(default: None)", which
argparse.ArgumentDefaultsHelpFormatter appends to a help text that already names the default,
or to an option whose default is None, or "(default: False)" to a flag), always as
"(default: X)", never with a path of this machine (a default inside the repository is shown
relative to it), and no "%%" shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CLIS = (
    "train.py",
    "evaluate.py",
    "verify.py",
    "-m apps.tune",
    "-m apps.search",
    "-m apps.optimal",
    "-m apps.report",
    "-m serving.server",
    "-m serving.loadgen",
    "-m serving.calibrate",
    "-m formal.ta.figure",
    "docs/report/build.py",
    *sorted(
        f"benchmarks/{path.name}"
        for path in (REPO / "benchmarks").glob("*.py")
        if "__main__" in path.read_text(encoding="utf-8")
    ),
)
"""Each command line, as given after ``python``; every script of ``benchmarks/`` that can run."""

PARSER_OWNERS = {
    "apps/optimal.py": "-m apps.optimal",
    "apps/report/cli.py": "docs/report/build.py",
    "apps/train.py": "train.py",
    "apps/tune.py": "-m apps.tune",
    "apps/verify_cli.py": "verify.py",
    "evaluation/plan.py": "evaluate.py",
    "formal/ta/figure.py": "-m formal.ta.figure",
    "serving/calibrate.py": "-m serving.calibrate",
    "serving/loadgen.py": "-m serving.loadgen",
    "serving/server.py": "-m serving.server",
}
"""The modules that build a parser, outside ``benchmarks/``, and the command line showing it."""

EMPTY_DEFAULTS = ("(default: None)", "(default: )", "(default: [])", "(default: False)", "(default: True)")
"""What ArgumentDefaultsHelpFormatter shows for a default that says nothing (True/False: a flag)."""


def help_entries(text: str) -> list[str]:
    """The entries of a help text (an option or positional with its help, whitespace collapsed,
    so that wrapping does not matter): each starts on a line indented by two spaces and goes on
    over the lines indented further."""
    entries: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if re.match(r"^ {2}\S", line):
            current = [line]
            entries.append(current)
        elif current is not None and line.startswith("   "):
            current.append(line)
        else:
            current = None
    return [" ".join(" ".join(lines).split()) for lines in entries]


@pytest.mark.parametrize("cli", CLIS)
def test_help_states_each_default_once(cli: str) -> None:
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run(
        [sys.executable, *cli.split(), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "usage:" in text, text
    flat = " ".join(text.split())
    for empty in EMPTY_DEFAULTS:
        assert empty not in flat, f"{cli}: {empty}"
    assert "%%" not in text, f"{cli}: '%%' in the help"
    # a path may be wrapped over lines: compared without any whitespace
    assert str(REPO) not in "".join(text.split()), f"{cli}: the repository's absolute path {REPO} in the help"
    loose = re.findall(r"\(default [^)]{0,60}", flat)
    assert not loose, f"{cli}: a default not written '(default: X)': {loose}"
    for entry in help_entries(text):
        assert len(re.findall(r"\(default\b", entry)) <= 1, f"{cli}: a default twice: {entry}"


def test_every_command_line_with_a_parser_is_covered() -> None:
    """A new parser (a script of benchmarks/, formal/ or docs/report/, a make_*.py, a module of
    apps/ or serving/) gets its line in CLIS or PARSER_OWNERS."""
    covered = set(CLIS)
    missing = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in {"tests", "__pycache__"}]
        for name in files:
            path = Path(folder, name)
            if name.endswith(".py") and "ArgumentParser(" in path.read_text(encoding="utf-8"):
                relative = path.relative_to(REPO).as_posix()
                if PARSER_OWNERS.get(relative, relative) not in covered:
                    missing.append(relative)
    assert not missing, f"command lines whose --help is not tested: {missing}"
