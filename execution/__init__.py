"""The one execution layer of batchenv: runs independent tasks on this machine or on Ray.

A task is a picklable top-level function with picklable arguments. Every parallel part of
batchenv runs through here: the episodes of ``evaluate.py`` (:mod:`evaluation.runner`), the
tuning grids (:mod:`evaluation.tuning`), the benchmarks and the model checks of ``verify.py``
(:mod:`formal.verification`).

==============  ==================================================================================
outcome         what a task gives back: its value or its error as plain data (:class:`TaskError`)
backends        the :class:`Backend` interface (``submit`` -> future of an outcome, ``cancel``),
                the local process pool (the default; ``jobs=1`` runs in this process) and
                :class:`BackendSpec`, the backend chosen while planning
ray_backend     Ray Core tasks on an embedded local Ray or a cluster (``address="auto"`` or
                ``host:port``); the only module that imports Ray
cluster         a cluster's address checked without Ray: its form, whether the head answers,
                what a refused token needs
paths           the files a task names, made absolute where the task is made (the driver)
run             :func:`run_tasks`: many tasks, results in task order, one progress bar, Ctrl-C
                cancels queued and running tasks
episode         one episode as a task (:class:`EpisodeTask` -> :class:`EpisodeResult`)
cli             ``--backend``, ``--address`` and ``--jobs``, shared by the command lines
==============  ==================================================================================

Results never depend on the backend or its number of jobs: each task is a pure function of its
arguments, and :func:`run_tasks` returns them in task order. Dependent work (a task submitted
once an earlier result is known, as verification does with Storm's optimal scheduler) uses
:meth:`Backend.submit` and the futures it returns.

Ray is imported only when a Ray backend is created, so the default commands neither import nor
start it. Work that needs more of Ray than tasks (Ray Tune trials for multi-seed training and
hyperparameter search) joins the same cluster through :func:`execution.ray_backend.start_or_join`,
so that ``--backend ray --address ...`` means the same everywhere.
"""

from execution.backends import (
    BACKENDS,
    Backend,
    BackendSpec,
    BackendUnavailableError,
    LocalBackend,
    usable_cores,
)
from execution.outcome import Outcome, TaskError, TaskFailedError, call_safely
from execution.run import run_tasks

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendSpec",
    "BackendUnavailableError",
    "LocalBackend",
    "Outcome",
    "TaskError",
    "TaskFailedError",
    "call_safely",
    "run_tasks",
    "usable_cores",
]
