"""Named scenarios: the YAML files in ``batchenv/configs/``.

``load_scenario("default")`` reads ``batchenv/configs/default.yaml``; any other argument ending in
``.yaml``/``.yml`` (or naming an existing file) is read as a path. Scenarios of your own can be
named too: the directories listed in the environment variable ``BATCHENV_SCENARIO_PATH``
(separated by ``os.pathsep``, ``:`` on Linux) are searched after the packaged ones, whose names
come first (:func:`scenario_dirs`). The local pool's worker processes inherit the variable from
the process that starts them; Ray's workers do not (those of a cluster were started by
``ray start``), so :func:`execution.ray_backend.start_or_join` hands them
:func:`scenario_path_for_workers` in the session's environment. Either way a name resolves the
same way in every task of a parallel run (on a cluster: when the directories are at the same
paths on every node).

Trace scenarios come with a time split: ``<name>_train`` replays the first half of the trace of
``<name>`` (``arrivals.trace_window: [0.0, 0.5]``) and ``<name>_test`` the second half, so that
whatever is tuned or trained on a trace (timeouts, thresholds, RL agents) is evaluated on traffic
it has not seen. :func:`trace_scenarios` lists the trace scenarios that have both halves;
:func:`train_split_of` and :func:`eval_split_of` (or :func:`split_of`) name them.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from batchenv.config import ConfigError, SystemConfig

__all__ = [
    "LIST_SCENARIOS_COMMAND",
    "SCENARIO_DIR",
    "SCENARIO_PATH_ENV",
    "SPLIT_WINDOWS",
    "SUITE",
    "add_scenario_dir",
    "env_id",
    "eval_split_of",
    "list_scenarios",
    "load_scenario",
    "scenario_config",
    "scenario_dirs",
    "scenario_path_for_workers",
    "scenario_summaries",
    "split_of",
    "trace_scenarios",
    "train_split_of",
    "unknown_scenario_message",
]

SCENARIO_DIR = Path(__file__).resolve().parent / "configs"
SCENARIO_PATH_ENV = "BATCHENV_SCENARIO_PATH"
"""Environment variable listing more scenario directories (``os.pathsep``-separated)."""
SPLIT_WINDOWS: dict[str, tuple[float, float]] = {"train": (0.0, 0.5), "test": (0.5, 1.0)}
"""The ``arrivals.trace_window`` of the ``_train`` and ``_test`` variant of a trace scenario."""

SUITE: tuple[str, ...] = (
    "default",
    "poisson_05",
    "poisson_25",
    "poisson_50",
    "poisson_75",
    "poisson_95",
    "high_load",
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_low",
    "azure_trace_medium",
    "azure_trace_high",
    "multi_gpu",
    "multi_gpu_4",
    "default_randomised",
)
"""The scenario suite (``--scenarios suite`` of ``evaluate.py`` and ``python -m apps.tune``)."""


def _path_entries() -> list[Path]:
    """The non-empty entries of ``$BATCHENV_SCENARIO_PATH``, as written (``~`` expanded)."""
    return [
        Path(part).expanduser() for part in os.environ.get(SCENARIO_PATH_ENV, "").split(os.pathsep) if part
    ]


def scenario_dirs() -> list[Path]:
    """Where named scenarios are looked up, in order: ``batchenv/configs/``, then each existing
    directory of ``$BATCHENV_SCENARIO_PATH`` (entries that are not directories are skipped here
    and named by :func:`load_scenario`'s error)."""
    return [SCENARIO_DIR, *(entry.resolve() for entry in _path_entries() if entry.is_dir())]


def scenario_path_for_workers() -> str | None:
    """``$BATCHENV_SCENARIO_PATH`` with every entry made absolute from this process's working
    folder, for worker processes that run elsewhere (Ray's); None when it names no directory."""
    entries = [str(entry.absolute()) for entry in _path_entries()]
    return os.pathsep.join(entries) if entries else None


def add_scenario_dir(directory: str | Path) -> Path:
    """Append ``directory`` to ``$BATCHENV_SCENARIO_PATH`` of this process, and so of the worker
    processes it starts, Ray's included when it is called before Ray starts (a command line's
    ``--scenario-path``); returns it resolved.

    :raises ConfigError: (``scenario_path``) if it is not a directory.
    """
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise ConfigError("scenario_path", f"not a directory: {directory}")
    current = os.environ.get(SCENARIO_PATH_ENV, "")
    os.environ[SCENARIO_PATH_ENV] = os.pathsep.join(p for p in (current, str(path.resolve())) if p)
    return path.resolve()


def _scenario_file(name: str) -> Path | None:
    """The file of scenario ``name`` in the first of :func:`scenario_dirs` that has one."""
    for directory in scenario_dirs():
        candidate = directory / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def list_scenarios() -> list[str]:
    """Names of the scenarios of :func:`scenario_dirs` (packaged ones and your own), sorted."""
    return sorted({p.stem for directory in scenario_dirs() for p in directory.glob("*.yaml")})


def load_scenario(name_or_path: str | Path) -> SystemConfig:
    """A named scenario (:func:`scenario_dirs`), or a scenario YAML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.is_file():
        return SystemConfig.from_yaml(path)
    candidate = _scenario_file(text)
    if candidate is None:
        raise ConfigError("scenario", unknown_scenario_message(text))
    return SystemConfig.from_yaml(candidate)


LIST_SCENARIOS_COMMAND = "python evaluate.py --list-scenarios (installed: batchenv-evaluate --list-scenarios)"
"""A command line that prints every scenario name (an unknown name's error points to it)."""


def scenario_summaries() -> list[tuple[str, str]]:
    """Every scenario of :func:`list_scenarios` with the first sentence of the comment that opens
    its YAML file (its description; empty if it has none). The file is read as text, at most its
    first 40 lines, never parsed, so a broken or unreadable scenario is listed too."""
    summaries = []
    for name in list_scenarios():
        path = _scenario_file(name)
        lines: list[str] = []
        try:
            if path is None:  # a folder named *.yaml, a dangling link
                raise OSError("not a file")
            with path.open(encoding="utf-8", errors="replace") as handle:
                for _ in range(40):
                    line = handle.readline(1000).strip()
                    if not line.startswith("#"):
                        break
                    lines.append(line.lstrip("#").strip())
        except OSError as exc:  # listed all the same, saying why it has no description
            lines = [f"(unreadable: {exc.strerror or exc})"]
        text = " ".join(lines)
        end = text.find(". ")
        summaries.append((name, text if end < 0 else text[: end + 1]))
    return summaries


def unknown_scenario_message(name: str) -> str:
    """Why ``name`` names no scenario, in one line: the close names, if any (too many names for
    a one-line error to list them all), where the names come from and the command that lists
    them; and a missing directory of :data:`SCENARIO_PATH_ENV`."""
    known = list_scenarios()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    guess = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    missing = [str(entry) for entry in _path_entries() if not entry.is_dir()]
    note = f"; {SCENARIO_PATH_ENV} names no directory {missing[0]!r}" if missing else ""
    return (
        f"unknown scenario {name!r}{guess}{note} ({len(known)} scenarios are known, the files of "
        f"batchenv/configs/ and ${SCENARIO_PATH_ENV}: {LIST_SCENARIOS_COMMAND} lists them), or give "
        "a YAML path"
    )


def scenario_config(name_or_path: str | Path, horizon_s: float | None = None) -> SystemConfig:
    """The scenario ``name_or_path`` (see :func:`load_scenario`), its horizon replaced by
    ``horizon_s`` (s) unless that is None."""
    config = load_scenario(name_or_path)
    return config if horizon_s is None else config.replace(horizon_s=horizon_s)


def env_id(scenario: str) -> str:
    """Gymnasium id of a packaged scenario: ``default`` -> ``batchenv/DynamicBatching-v0``,
    ``high_load`` -> ``batchenv/DynamicBatching-HighLoad-v0``."""
    if scenario == "default":
        return "batchenv/DynamicBatching-v0"
    camel = "".join(part.capitalize() for part in scenario.split("_"))
    return f"batchenv/DynamicBatching-{camel}-v0"


def trace_scenarios() -> list[str]:
    """Packaged trace scenarios that have a ``_train`` and a ``_test`` variant, sorted (the
    variants themselves are not listed): tune on :func:`train_split_of`, evaluate on
    :func:`eval_split_of`."""
    names = set(list_scenarios())
    return sorted(
        name
        for name in names
        if f"{name}_train" in names
        and f"{name}_test" in names
        and load_scenario(name).arrivals.process == "trace"
    )


def split_of(name: str, part: str) -> str:
    """The packaged scenario replaying one part of trace scenario ``name``'s trace: ``part`` is
    ``"train"`` (the first half) or ``"test"`` (the second half), e.g. ``split_of("mooncake_conv_30",
    "test")`` -> ``"mooncake_conv_30_test"``; ConfigError if there is none."""
    if part not in SPLIT_WINDOWS:
        raise ConfigError("part", f"must be one of {sorted(SPLIT_WINDOWS)}, got {part!r}")
    known = trace_scenarios()
    if name not in known:
        raise ConfigError(
            "scenario", f"{name!r} has no packaged {part} split; trace scenarios with splits: {known}"
        )
    return f"{name}_{part}"


def train_split_of(name: str) -> str:
    """``split_of(name, "train")``: the first half of the trace, for tuning and training."""
    return split_of(name, "train")


def eval_split_of(name: str) -> str:
    """``split_of(name, "test")``: the second half of the trace, for evaluation."""
    return split_of(name, "test")
