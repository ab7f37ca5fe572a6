"""Run many independent tasks on a backend: results in task order, one progress bar, Ctrl-C
that stops at once.

:func:`run_tasks` keeps a bounded number of tasks in flight (a few per worker), so a huge grid
neither floods the backend's queue nor leaves much to cancel, and a Ctrl-C cancels what is queued,
stops what runs and returns within about a second on every backend. Its ``on_result`` sees each
outcome as soon as it is back (in this process), so a caller can keep what finished (a cache)
even when the run is interrupted later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from execution.backends import Backend
from execution.outcome import Outcome

__all__ = ["IN_FLIGHT_PER_JOB", "progress_bar", "run_tasks"]

IN_FLIGHT_PER_JOB = 4
"""Tasks submitted ahead per job: enough to keep every worker busy while results travel back."""


@contextmanager
def progress_bar(total: int, description: str, console: Console | None) -> Iterator[Callable[[], None]]:
    """A rich progress bar of ``total`` steps; yields the function that advances it by one.
    ``console=None``: no bar (the function does nothing)."""
    if console is None:
        yield lambda: None
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(description, total=total)
        yield lambda: progress.advance(bar)


def run_tasks(
    backend: Backend,
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    *,
    description: str = "tasks",
    console: Console | None = None,
    on_result: Callable[[int, Outcome[Any]], None] | None = None,
) -> list[Outcome[Any]]:
    """``fn(*a)`` for every ``a`` in ``args`` on ``backend``; the outcomes in the order of
    ``args`` whatever the backend and its number of jobs. A failing task is an outcome with an
    error; the others are kept.

    :param console: where the progress bar goes (None: no bar).
    :param on_result: called in this process as ``on_result(i, outcome)`` for the outcome of
        ``args[i]`` as soon as it is back, in the order tasks finish (which may vary from run to
        run; the returned list does not), once per task. On Ctrl-C it is still called for every
        task that had finished, before the others are cancelled. An exception it raises stops
        the run (the backend cancels what is left when it is closed).
    :raises KeyboardInterrupt: after cancelling every queued and running task.
    """
    outcomes: list[Outcome[Any] | None] = [None] * len(args)
    limit = max(1, backend.jobs * IN_FLIGHT_PER_JOB)
    in_flight: dict[Future[Outcome[Any]], int] = {}
    next_index = 0

    def collect(future: Future[Outcome[Any]]) -> None:
        index = in_flight.pop(future)
        outcomes[index] = future.result()
        if on_result is not None:
            on_result(index, future.result())

    with progress_bar(len(args), description, console) as advance:
        try:
            while next_index < len(args) or in_flight:
                while next_index < len(args) and len(in_flight) < limit:
                    in_flight[backend.submit(fn, *args[next_index])] = next_index
                    next_index += 1
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    collect(future)
                    advance()
        except KeyboardInterrupt:
            try:
                for future in [f for f in in_flight if f.done() and not f.cancelled()]:
                    collect(future)  # back already (or run at submission with jobs=1): not lost
            finally:
                for future in in_flight:
                    future.cancel()
                backend.cancel()
            raise
    return [outcome for outcome in outcomes if outcome is not None]
