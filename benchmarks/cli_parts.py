"""Options that several benchmark scripts share: ``--parts`` (the scripts with several parts), and
``--scenario-path`` with ``--scenarios`` (the scripts over trace scenarios)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from batchenv.arrivals import make_arrival_process
from batchenv.config import ConfigError
from batchenv.scenarios import SPLIT_WINDOWS, add_scenario_dir, load_scenario, split_of, trace_scenarios

__all__ = ["add_scenario_path_argument", "check_trace_files", "chosen_trace_scenarios", "parse_parts"]


def parse_parts(parser: argparse.ArgumentParser, text: str, parts: Sequence[str]) -> list[str]:
    """The part names of ``text`` (``--parts``: comma-separated, blanks ignored), in its order;
    a name that is not among ``parts`` is a usage error (``parser.error``) naming it and the
    allowed ones."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        parser.error(f"--parts: unknown part {unknown[0]!r}; parts: {','.join(parts)}")
    return chosen


def add_scenario_path_argument(parser: argparse.ArgumentParser) -> None:
    """``--scenario-path DIR`` (repeatable): a directory of scenarios of one's own, applied by
    :func:`chosen_trace_scenarios`."""
    parser.add_argument(
        "--scenario-path",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of scenarios of your own, searched after the packaged ones (repeatable; "
        "as $BATCHENV_SCENARIO_PATH), e.g. benchmarks/configs/external",
    )


def chosen_trace_scenarios(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    """Add ``args.scenario_path``'s directories to the scenario path of this process (and its
    workers), then read ``args.scenarios`` (comma-separated, blanks ignored).

    :returns: the names chosen, in their order (empty when none is given), and every trace
        scenario with a time split (:func:`batchenv.scenarios.trace_scenarios`).
    A directory that is not one, or a name that is not such a scenario, is a usage error
    (``parser.error``) naming it.
    """
    for directory in args.scenario_path:
        try:
            add_scenario_dir(directory)
        except ConfigError as exc:
            parser.error(f"--scenario-path: {exc}")
    known = trace_scenarios()
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(
            f"--scenarios: {unknown[0]!r} is not a trace scenario with a time split; "
            f"choose among {','.join(known)}"
        )
    return chosen, known


def check_trace_files(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Read the trace of every trace scenario in ``names`` and of its ``_train`` and ``_test``
    halves now, before any work: a missing or unreadable trace file (e.g. an external one not yet
    made) is a usage error (``parser.error``, exit code 2) in one line naming the scenario, as in
    ``evaluate.py``. Traces are cached, so reading them again later costs little."""
    for name in names:
        for scenario in (name, *(split_of(name, part) for part in SPLIT_WINDOWS)):
            try:
                make_arrival_process(load_scenario(scenario))
            except ConfigError as exc:
                parser.error(f"scenario {scenario!r}: {exc}")
