"""What a task gives back: its value, or its error as plain data.

A task runs in another process or on another machine; an exception object raised there may not
survive the trip back (an exception class whose constructor takes other arguments than its
message cannot be unpickled, and the pool then reports ``BrokenProcessPool`` instead of the
error). So the worker catches every exception itself and returns a :class:`TaskError`, made of
strings only, inside an :class:`Outcome`. One failing task never affects the others.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Outcome", "TaskError", "TaskFailedError", "call_safely"]

T = TypeVar("T")


@dataclass(frozen=True)
class TaskError:
    """An exception raised by a task, as plain data.

    :ivar kind: the exception's class name, e.g. ``"ConfigError"``.
    :ivar message: ``str(exception)``.
    :ivar traceback: the formatted traceback, from the process that raised it.
    """

    kind: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskError:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(type(exc).__name__, str(exc), text)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" if self.message else self.kind


class TaskFailedError(RuntimeError):
    """Raised by :meth:`Outcome.unwrap` for a failed task; carries its :class:`TaskError`."""

    def __init__(self, error: TaskError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The value of a task, or its :class:`TaskError` (exactly one of the two is set)."""

    value: T | None = None
    error: TaskError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        """The value; raises :class:`TaskFailedError` if the task failed."""
        if self.error is not None:
            raise TaskFailedError(self.error)
        return self.value  # type: ignore[return-value]


def call_safely(fn: Callable[..., T], args: tuple[Any, ...]) -> Outcome[T]:
    """``fn(*args)`` as an :class:`Outcome`: an :class:`Exception` becomes a :class:`TaskError`.
    ``KeyboardInterrupt`` and ``SystemExit`` still propagate (an in-process run stops at once)."""
    try:
        return Outcome(value=fn(*args))
    except Exception as exc:
        return Outcome(error=TaskError.from_exception(exc))
