"""Run the TChecker timed-automata model checker on a model text and read its verdict.

TChecker (MIT) checks reachability of location labels (``tck-reach``: zone graph, BFS) and
Büchi acceptance (``tck-liveness``: an accepting cycle through locations with the given labels,
Couvreur's SCC algorithm or nested DFS). Two forms are found, in this order:

1. ``$TCHECKER_LIB``: a ``libtchecker.so`` with the C entry points ``tck_reach`` and
   ``tck_liveness`` (the library of PyPI's ``tcheckerpy`` wheel);
2. ``$TCHECKER_BIN``: a folder with the ``tck-reach`` and ``tck-liveness`` programs of a TChecker
   build from source;
3. ``<repository>/.cache/tchecker/lib/libtchecker.so``, installed by
   ``bash .ci/install_tchecker.sh`` (which ``.ci/run`` calls);
4. ``tck-reach`` and ``tck-liveness`` on ``PATH``.

Each check runs in a child process (the library is called through ctypes there), with a
wall-clock timeout, so that a crash or a runaway search cannot take the caller down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "INSTALL_HINT",
    "CheckResult",
    "TChecker",
    "TCheckerError",
    "TCheckerMissingError",
    "TCheckerTimeoutError",
    "find_tchecker",
]

REPO = Path(__file__).resolve().parents[1]
CACHE_LIB = REPO / ".cache" / "tchecker" / "lib" / "libtchecker.so"
INSTALL_HINT = "install it with `bash .ci/install_tchecker.sh` (or set TCHECKER_LIB / TCHECKER_BIN)"

REACH_ALGORITHMS = {"reach": 0, "concur19": 1, "covreach": 2, "aLU-covreach": 3}
LIVENESS_ALGORITHMS = {"couvscc": 0, "ndfs": 1}

CERTIFICATES = {"reach": {"graph": 0, "none": 3}, "liveness": {"graph": 0, "none": 2}}

# Runs in the child: python -c _CALLER <lib> reach|liveness <model> <labels> <algorithm> <certificate> <out>
_CALLER = """
import ctypes, sys
lib, kind, model, labels, algorithm, certificate, out = sys.argv[1:8]
f = getattr(ctypes.CDLL(lib), "tck_" + kind)
ptr = ctypes.POINTER(ctypes.c_int)
s = ctypes.c_char_p
if kind == "reach":
    f.argtypes = [s, s, s, ctypes.c_int, s, ctypes.c_int, ptr, ptr]
    f(out.encode(), model.encode(), labels.encode(), int(algorithm), b"bfs", int(certificate), None, None)
else:
    f.argtypes = [s, s, s, ctypes.c_int, ctypes.c_int, ptr, ptr]
    f(out.encode(), model.encode(), labels.encode(), int(algorithm), int(certificate), None, None)
sys.stdout.flush()
"""


class TCheckerMissingError(RuntimeError):
    """TChecker is not installed where :func:`find_tchecker` looks."""


class TCheckerError(RuntimeError):
    """TChecker rejected the model or failed (its error lines are the message)."""


class TCheckerTimeoutError(RuntimeError):
    """A check ran out of its time budget."""


@dataclass(frozen=True)
class CheckResult:
    """One TChecker verdict.

    :ivar holds: reach: a state with every label is reachable; liveness: an accepting cycle
        exists.
    :ivar stats: every ``KEY value`` line TChecker printed (``VISITED_STATES``, ...).
    :ivar seconds: wall-clock time of the whole call (s), process start included.
    :ivar certificate: the explored state space as Graphviz text (``certificate="graph"``).
    """

    kind: str
    labels: tuple[str, ...]
    holds: bool
    stats: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    certificate: str = field(default="", repr=False)

    @property
    def visited_states(self) -> int:
        key = "VISITED_STATES" if "VISITED_STATES" in self.stats else "VISITED_STATES_TOTAL"
        return int(self.stats.get(key, "0"))


@dataclass(frozen=True)
class TChecker:
    """A located TChecker: ``library`` (libtchecker.so) or ``bin_dir`` (tck-reach, tck-liveness)."""

    library: Path | None = None
    bin_dir: Path | None = None

    def describe(self) -> str:
        """Where it is (relative to the repository when inside it) and, for the installed library,
        the wheel it came from."""
        path = self.library if self.library is not None else self.bin_dir
        assert path is not None
        shown = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        if self.library is None:
            return f"TChecker programs in {shown}"
        stamp = self.library.parent / "INSTALLED"
        source = f" ({stamp.read_text().strip()})" if stamp.is_file() else ""
        return f"TChecker library {shown}{source}"

    def reach(
        self,
        model: str,
        labels: tuple[str, ...] | list[str],
        *,
        algorithm: str = "covreach",
        timeout_s: float = 60.0,
        certificate: str = "none",
    ) -> CheckResult:
        """Is a state whose locations carry every one of ``labels`` reachable in ``model`` (the
        TChecker text)? No labels: explore everything.

        :param algorithm: ``covreach`` (zone graph with inclusion subsumption), ``reach`` (plain
            zone graph), ``concur19`` or ``aLU-covreach``.
        :param timeout_s: wall-clock budget (s); :class:`TCheckerTimeoutError` beyond it.
        :param certificate: ``graph`` to return the explored zone graph (Graphviz), or ``none``.
        """
        if algorithm not in REACH_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {sorted(REACH_ALGORITHMS)}, got {algorithm!r}")
        return self._run("reach", model, tuple(labels), algorithm, timeout_s, certificate)

    def liveness(
        self,
        model: str,
        labels: tuple[str, ...] | list[str],
        *,
        algorithm: str = "ndfs",
        timeout_s: float = 60.0,
    ) -> CheckResult:
        """Does ``model`` have a run that visits states with ``labels`` infinitely often (an
        accepting cycle of the zone graph)?

        :param algorithm: ``ndfs`` (a cycle through a state with all labels) or ``couvscc`` (a
            cycle that visits every label).
        """
        if algorithm not in LIVENESS_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {sorted(LIVENESS_ALGORITHMS)}, got {algorithm!r}")
        return self._run("liveness", model, tuple(labels), algorithm, timeout_s, "none")

    def _run(
        self,
        kind: str,
        model: str,
        labels: tuple[str, ...],
        algorithm: str,
        timeout_s: float,
        certificate: str,
    ) -> CheckResult:
        if certificate not in CERTIFICATES[kind]:
            raise ValueError(f"certificate must be one of {sorted(CERTIFICATES[kind])}, got {certificate!r}")
        with tempfile.TemporaryDirectory(prefix="tchecker-") as tmp:
            path = Path(tmp) / "model.tck"
            path.write_text(model)
            out = Path(tmp) / "certificate.dot"
            joined = ",".join(labels)
            if self.library is not None:
                code = REACH_ALGORITHMS[algorithm] if kind == "reach" else LIVENESS_ALGORITHMS[algorithm]
                cert = CERTIFICATES[kind][certificate]
                cmd = [sys.executable, "-c", _CALLER, str(self.library), kind, str(path), joined, str(code)]
                cmd += [str(cert), str(out) if certificate != "none" else ""]
            else:
                assert self.bin_dir is not None
                cmd = [str(self.bin_dir / f"tck-{kind}"), "-a", algorithm, "-C", certificate]
                cmd += [
                    *(["-l", joined] if joined else []),
                    *(["-o", str(out)] if certificate != "none" else []),
                ]
                cmd.append(str(path))
            start = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
            except subprocess.TimeoutExpired:
                message = f"tck-{kind} {joined}: no verdict within {timeout_s:g} s"
                raise TCheckerTimeoutError(message) from None
            seconds = time.perf_counter() - start
            graph = out.read_text() if certificate != "none" and out.is_file() else ""
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
        stats = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
        key = "REACHABLE" if kind == "reach" else "CYCLE"
        if errors or proc.returncode != 0 or key not in stats:
            detail = "; ".join(errors) or proc.stderr.strip() or f"exit code {proc.returncode}, no verdict"
            raise TCheckerError(f"tck-{kind} {joined}: {detail}")
        return CheckResult(kind, labels, stats[key].strip() == "true", stats, seconds, graph)


def find_tchecker() -> TChecker:
    """The TChecker to use (see the module docstring for the search order).

    :raises TCheckerMissingError: with the places searched and how to install it.
    """
    lib = os.environ.get("TCHECKER_LIB")
    if lib:
        if not Path(lib).is_file():
            raise TCheckerMissingError(f"TCHECKER_LIB={lib} is not a file; {INSTALL_HINT}")
        return TChecker(library=Path(lib))
    bin_dir = os.environ.get("TCHECKER_BIN")
    if bin_dir:
        if not (Path(bin_dir) / "tck-reach").is_file():
            raise TCheckerMissingError(f"TCHECKER_BIN={bin_dir} has no tck-reach; {INSTALL_HINT}")
        return TChecker(bin_dir=Path(bin_dir))
    if CACHE_LIB.is_file():
        return TChecker(library=CACHE_LIB)
    on_path = shutil.which("tck-reach")
    if on_path and shutil.which("tck-liveness"):
        return TChecker(bin_dir=Path(on_path).parent)
    raise TCheckerMissingError(
        f"TChecker not found (TCHECKER_LIB, TCHECKER_BIN, {CACHE_LIB.relative_to(REPO)}, tck-reach on PATH); "
        + INSTALL_HINT
    )
