"""The command-line flags of the execution layer, shared by ``evaluate.py``, ``python -m
apps.tune`` and ``verify.py``: ``--backend local|ray``, ``--address`` and ``--jobs``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from execution.backends import BACKENDS, BackendSpec, usable_cores
from execution.cluster import address_error

__all__ = [
    "EXECUTION_FLAGS",
    "ExecutionUsageError",
    "add_execution_arguments",
    "backend_spec_from_args",
    "backend_spec_or_exit",
    "without_execution_flags",
]

EXECUTION_FLAGS = ("--backend", "--address", "--jobs")
"""The flags of :func:`add_execution_arguments`: they choose where tasks run, never the results."""


class ExecutionUsageError(ValueError):
    """A bad ``--backend`` / ``--address`` / ``--jobs`` combination (a one-line message)."""


def add_execution_arguments(parser: argparse.ArgumentParser, default_jobs: int | None = None) -> None:
    """Add ``--backend``, ``--address`` and ``--jobs`` in an "execution" group.

    :param default_jobs: the default of ``--jobs`` is the usable cores, at most this (None: 8).
    """
    default_text = f"the usable cores, at most {default_jobs or 8}"
    group = parser.add_argument_group("execution (results are identical for every choice)")
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: worker processes on this machine (default; Ray is not needed); ray: Ray "
        "tasks, on an embedded local Ray or on the cluster given by --address (needs "
        'pip install -e ".[dist]")',
    )
    group.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="with --backend ray: join this Ray cluster (auto = RAY_ADDRESS or the cluster of "
        "'ray start' on this machine) instead of starting a local Ray",
    )
    group.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"tasks run at once: local processes, or CPUs of the local Ray; with --address, at "
        f"most that many tasks at once (default: {default_text}; every CPU of a cluster)",
    )
    parser.set_defaults(_default_jobs=default_jobs)


def backend_spec_from_args(
    args: argparse.Namespace, *, start_method: str = "spawn"
) -> tuple[BackendSpec, list[str]]:
    """The backend the flags ask for, and warnings (``--jobs`` above the usable cores).

    :raises ExecutionUsageError: ``--jobs`` below 1, ``--address`` without ``--backend ray`` or
        of another form than ``auto`` / ``HOST:PORT``.
    """
    warnings: list[str] = []
    if args.jobs is not None and args.jobs < 1:
        raise ExecutionUsageError(f"--jobs must be >= 1, got {args.jobs}")
    if args.address is not None and args.backend != "ray":
        raise ExecutionUsageError("--address joins a Ray cluster: it needs --backend ray")
    if args.address is not None and address_error(args.address) is not None:
        raise ExecutionUsageError(f"--address: {address_error(args.address)}")
    cores = usable_cores()
    if args.backend == "ray" and args.address is not None:
        return BackendSpec("ray", args.jobs, args.address.strip()), warnings
    default = getattr(args, "_default_jobs", None)
    jobs = args.jobs if args.jobs is not None else min(cores, default or 8)
    if jobs > cores:
        warnings.append(
            f"--jobs {jobs} is more than the {cores} usable cores of this machine: tasks will share "
            "cores (slower; the results are the same)"
        )
    return BackendSpec(args.backend, jobs, None, start_method), warnings


def _print_warning(message: str) -> None:
    print(f"warning: {message}")


def backend_spec_or_exit(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    warn: Callable[[str], None] = _print_warning,
) -> BackendSpec:
    """:func:`backend_spec_from_args` for a command line: a bad combination of flags ends the
    program through ``parser.error`` (usage and the one-line message, exit status 2), and each
    warning goes to ``warn`` (default: printed as ``warning: ...``)."""
    try:
        spec, warnings = backend_spec_from_args(args)
    except ExecutionUsageError as exc:
        parser.error(str(exc))
    for warning in warnings:
        warn(warning)
    return spec


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    """Every ``--long`` option string of ``parser``."""
    return [
        option for action in parser._actions for option in action.option_strings if option.startswith("--")
    ]


def _execution_flag(token: str, options: list[str]) -> str | None:
    """The execution flag ``token`` (``--flag`` or ``--flag=value``) names, as argparse reads it:
    the flag itself, or a prefix of it that names no other option of ``options``; else None."""
    name = token.partition("=")[0]
    if not name.startswith("--") or len(name) < 3:
        return None
    matches = [option for option in options if option.startswith(name)]
    if name in options:
        matches = [name]
    return matches[0] if len(matches) == 1 and matches[0] in EXECUTION_FLAGS else None


def without_execution_flags(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` without ``--backend``, ``--address`` and ``--jobs`` and their values (``--jobs 2``
    and ``--jobs=2``, or an abbreviation argparse accepts): what a result file records as its
    command, since results are identical for every backend and number of workers."""
    options = _long_options(parser)
    kept: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            kept += [token, *tokens]
            break
        if _execution_flag(token, options) is None:
            kept.append(token)
        elif "=" not in token:
            next(tokens, None)  # its value
    return kept
