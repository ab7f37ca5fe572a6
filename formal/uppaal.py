"""UPPAAL timed-automata model of the batching system, generated from a ``SystemConfig``.

Two variants of one network, each an XML file (UPPAAL 4.1 / 5.x, document type
``-//Uppaal Team//DTD Flat System 1.1//EN``) with its queries embedded and also written to a
``.q`` file:

- **symbolic** (``batching.xml`` + ``batching.q``): arrivals with a minimum inter-arrival time
  (any sporadic stream up to a bounded rate) and a ``Tag`` observer that follows one arbitrary
  request; queries for deadlock freedom, the timeout bound, worst-case latency and queue length.
- **statistical** (``batching_smc.xml`` + ``batching_smc.q``): Poisson arrivals (an exponential
  rate), stopwatches for the busy time and the queue-length integral; queries for throughput,
  utilisation, mean queue and the probability of overflow.

Templates:

``ArrivalBounded`` / ``ArrivalPoisson``
    Broadcast ``arrive!``; the sender's update enqueues (or drops when ``q == QCAP``).
``Scheduler``
    The queue and the policy timeout(B, T) with model thresholds: a batch of ``min(q,
    max_batch)`` is started on the lowest idle worker as soon as ``B`` requests wait or the oldest
    has waited ``T``
    (``T <= max_wait_ms``, so the timeout shield holds by construction); the model is
    ``POLICY_MODEL[i]`` for the largest ``i`` with ``q >= POLICY_FROM_Q[i]`` (the queue length at
    the decision). Locations: ``Empty`` (no request), ``Accum`` (requests wait, a worker is idle;
    invariant ``oldest <= POLICY_T``), ``Blocked`` (requests wait, every worker busy) and the
    committed ``Check``, ``Dispatch``, ``Notify``. After a partial dispatch the clock ``oldest``
    keeps the age of the request that left (an upper bound of the new oldest age), as in the
    PRISM model.
``Worker(id)``
    One per GPU: ``start[id]?`` then busy for ``SVC[m][b]`` time units (the service time of the
    batch from the config's timing table, rounded up to the time unit), then ``done[id]!``.
``Tag`` (symbolic variant)
    Picks any one admitted arrival, follows its FIFO position through dispatches and measures its
    latency with clock ``z``.

Time unit: ``time_unit_ms`` (default 0.1 ms); every clock constant is an integer of that unit.
UPPAAL itself is not needed to generate the files; :func:`run_verifyta` runs ``verifyta`` when it
is on ``PATH``.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.timing import ServiceTable
from formal.policies import TimeoutPolicy

__all__ = [
    "DOCTYPE",
    "Query",
    "UppaalModel",
    "generate",
    "lint",
    "run_verifyta",
    "write_models",
]

DOCTYPE = (
    "<!DOCTYPE nta PUBLIC '-//Uppaal Team//DTD Flat System 1.1//EN' "
    "'http://www.it.uu.se/research/group/darts/uppaal/flat-1_2.dtd'>"
)


@dataclass(frozen=True)
class Query:
    """One UPPAAL query and the comment that explains it (and its expected outcome)."""

    formula: str
    comment: str


@dataclass
class UppaalModel:
    """A generated network: XML text and its queries."""

    name: str
    xml: str
    queries: list[Query] = field(default_factory=list)

    def q_text(self) -> str:
        """The queries as a ``.q`` file (comments as ``/* */`` blocks before each query)."""
        parts = []
        for query in self.queries:
            parts.append(f"/*\n{query.comment}\n*/\n{query.formula}\n")
        return "\n".join(parts)


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------


class _Template:
    """A template under construction: locations, transitions, declarations."""

    def __init__(self, name: str, parameter: str = "", declaration: str = "") -> None:
        self.name = name
        self.parameter = parameter
        self.declaration = declaration
        self.locations: list[tuple[str, str, dict[str, str], str | None]] = []
        self.init: str | None = None
        self.transitions: list[tuple[str, str, dict[str, str]]] = []

    def loc(self, name: str, *, invariant: str = "", rate: str = "", kind: str | None = None) -> str:
        labels = {}
        if invariant:
            labels["invariant"] = invariant
        if rate:
            labels["exponentialrate"] = rate
        self.locations.append((f"id_{self.name}_{name}", name, labels, kind))
        if self.init is None:
            self.init = f"id_{self.name}_{name}"
        return name

    def edge(self, source: str, target: str, **labels: str) -> None:
        keys = {"select": "select", "guard": "guard", "sync": "synchronisation", "update": "assignment"}
        self.transitions.append(
            (
                f"id_{self.name}_{source}",
                f"id_{self.name}_{target}",
                {keys[k]: v for k, v in labels.items() if v},
            )
        )

    def element(self) -> ET.Element:
        tpl = ET.Element("template")
        ET.SubElement(tpl, "name").text = self.name
        if self.parameter:
            ET.SubElement(tpl, "parameter").text = self.parameter
        if self.declaration:
            ET.SubElement(tpl, "declaration").text = self.declaration
        for i, (loc_id, name, labels, kind) in enumerate(self.locations):
            loc = ET.SubElement(tpl, "location", id=loc_id, x=str(200 * i), y="0")
            ET.SubElement(loc, "name", x=str(200 * i - 20), y="-30").text = name
            for label_kind, text in labels.items():
                ET.SubElement(loc, "label", kind=label_kind, x=str(200 * i - 20), y="20").text = text
            if kind:
                ET.SubElement(loc, kind)
        assert self.init is not None
        ET.SubElement(tpl, "init", ref=self.init)
        for source, target, labels in self.transitions:
            tr = ET.SubElement(tpl, "transition")
            ET.SubElement(tr, "source", ref=source)
            ET.SubElement(tr, "target", ref=target)
            for label_kind, text in labels.items():
                ET.SubElement(tr, "label", kind=label_kind).text = text
        return tpl


def _service_units(config: SystemConfig, unit_ms: float) -> list[list[int]]:
    """Service time of every (model, batch size) in time units, rounded up; entry 0 is 0."""
    table = ServiceTable(config).service_ms
    return [
        [0] + [math.ceil(table[m, b] / unit_ms - 1e-9) for b in range(1, config.max_batch_size + 1)]
        for m in range(config.n_models)
    ]


def _int_array(values: Sequence[int]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------


def _declarations(
    config: SystemConfig,
    policy: TimeoutPolicy,
    *,
    queue_cap: int,
    unit_ms: float,
    rate_per_s: float,
    min_interarrival_ms: float,
    smc: bool,
) -> str:
    units_per_ms = 1.0 / unit_ms
    svc = _service_units(config, unit_ms)
    rate = Fraction(rate_per_s).limit_denominator(1000) * Fraction(unit_ms).limit_denominator(1000) / 1000
    thresholds = (0, *policy.thresholds)
    lines = [
        f"// Dynamic batching system generated by formal/uppaal.py from SystemConfig '{config.name}'.",
        f"// Time unit: {unit_ms:g} ms; every clock constant below is in time units "
        f"({units_per_ms:g} per ms).",
        "// Variant: " + ("statistical (Poisson arrivals)" if smc else "symbolic (bounded arrival rate)"),
        "",
        f"const int N_WORKERS = {config.n_workers};",
        f"const int N_MODELS = {config.n_models};  // "
        + ", ".join(f"{i} = {m.name} (quality {m.quality:g})" for i, m in enumerate(config.models)),
        f"const int MAX_BATCH = {config.max_batch_size};",
        f"const int QCAP = {queue_cap};  // queue capacity of the model (requests); beyond: dropped",
        f"const int MAX_WAIT = {math.floor(config.max_wait_ms / unit_ms + 1e-9)};  "
        f"// max_wait_ms = {config.max_wait_ms:g} ms",
        f"const int SLO = {math.floor(config.slo_ms / unit_ms + 1e-9)};  // slo_ms = {config.slo_ms:g} ms",
        "",
        f"// Policy {policy.name}: once POLICY_B requests wait or the oldest has waited",
        "// POLICY_T, start min(q, POLICY_MAX) of them on model POLICY_MODEL[i] for the largest i",
        "// with q >= POLICY_FROM_Q[i].",
        f"const int POLICY_B = {policy.batch};",
        f"const int POLICY_MAX = {policy.max_batch or config.max_batch_size};",
        f"const int POLICY_T = {math.floor(policy.timeout_ms / unit_ms + 1e-9)};  "
        f"// {policy.timeout_ms:g} ms",
        f"const int POLICY_K = {len(policy.models)};",
        f"const int POLICY_MODEL[POLICY_K] = {_int_array(policy.models)};",
        f"const int POLICY_FROM_Q[POLICY_K] = {_int_array(thresholds)};",
        "",
        "// SVC[m][b]: service time of a batch of b requests on model m (time units, rounded up):",
        "// T_pre + T_comm(b) + T_inf(m, b) + T_post from the config's timing table.",
        "const int SVC[N_MODELS][MAX_BATCH + 1] = {",
    ]
    lines += [f"    {_int_array(row)}{',' if i < len(svc) - 1 else ''}" for i, row in enumerate(svc)]
    lines += [
        "};",
        "",
        f"// Arrivals: Poisson at {rate_per_s:g} requests/s (statistical variant); at least",
        f"// {min_interarrival_ms:g} ms apart (symbolic variant).",
        f"const int RATE_NUM = {rate.numerator};  // rate per time unit = RATE_NUM / RATE_DEN",
        f"const int RATE_DEN = {rate.denominator};",
        f"const int MIN_IA = {math.ceil(min_interarrival_ms / unit_ms - 1e-9)};",
        "",
        "typedef int[0, N_WORKERS - 1] wid_t;",
        "broadcast chan arrive;           // a request arrives (to Scheduler and Tag)",
        "broadcast chan start[N_WORKERS]; // the scheduler starts a batch on worker w (idle)",
        "broadcast chan done[N_WORKERS];  // worker w finished its batch",
        "broadcast chan dispatched;       // a batch left the queue (to Tag)",
        "",
        "int[0, QCAP] q = 0;              // waiting requests",
        "bool busy[N_WORKERS];            // worker w runs a batch",
        "int[0, MAX_BATCH] last_b = 0;    // size of the last batch started",
        "int[0, N_MODELS - 1] last_m = 0; // its model",
        "int[0, N_WORKERS - 1] last_w = 0;  // its worker",
        "clock oldest;                    // age of the oldest waiting request",
        "meta int[0, 2000000000] served = 0;   // requests whose batch completed",
        "meta int[0, 2000000000] dropped = 0;  // arrivals that found the queue full",
    ]
    if smc:
        lines += [
            "clock qarea;                     // integral of q over time (stopwatch of rate q)",
        ]
    lines += [
        "",
        "bool idle() {",
        "    for (w : wid_t) { if (!busy[w]) { return true; } }",
        "    return false;",
        "}",
        "",
        "int first_idle() {",
        "    for (w : wid_t) { if (!busy[w]) { return w; } }",
        "    return 0;",
        "}",
        "",
        "int batch_size() {",
        "    return q < POLICY_MAX ? q : POLICY_MAX;",
        "}",
        "",
        "int model_for(int n) {",
        "    int i;",
        "    int chosen = POLICY_MODEL[0];",
        "    for (i = 1; i < POLICY_K; i++) { if (n >= POLICY_FROM_Q[i]) { chosen = POLICY_MODEL[i]; } }",
        "    return chosen;",
        "}",
        "",
        "void enqueue() {",
        "    if (q < QCAP) { q++; } else { dropped++; }",
        "}",
    ]
    return "\n".join(lines)


def _arrival_bounded() -> _Template:
    t = _Template("ArrivalBounded", declaration="clock y;  // time since the last arrival")
    t.loc("Next")
    t.edge("Next", "Next", guard="y >= MIN_IA", sync="arrive!", update="enqueue(), y = 0")
    return t


def _arrival_poisson() -> _Template:
    t = _Template("ArrivalPoisson")
    t.loc("Next", rate="RATE_NUM : RATE_DEN")
    t.edge("Next", "Next", sync="arrive!", update="enqueue()")
    return t


def _scheduler(smc: bool) -> _Template:
    t = _Template("Scheduler")
    area = "qarea' == q" if smc else ""
    t.loc("Empty", invariant=area)
    t.loc("Accum", invariant="oldest <= POLICY_T" + (f" && {area}" if smc else ""))
    t.loc("Blocked", invariant=area)
    t.loc("Check", kind="committed")
    t.loc("Dispatch", kind="committed")
    t.loc("Notify", kind="committed")
    t.edge("Empty", "Check", sync="arrive?", update="oldest = 0")
    for waiting in ("Accum", "Blocked"):
        t.edge(waiting, "Check", sync="arrive?")
    for loc in ("Empty", "Accum", "Blocked"):
        t.edge(loc, "Check", select="w : wid_t", sync="done[w]?")
    t.edge("Accum", "Dispatch", guard="oldest >= POLICY_T")
    t.edge("Check", "Dispatch", guard="q > 0 && idle() && q >= POLICY_B")
    t.edge("Check", "Dispatch", guard="q > 0 && idle() && oldest >= POLICY_T")
    t.edge("Check", "Accum", guard="q > 0 && idle() && q < POLICY_B && oldest < POLICY_T")
    t.edge("Check", "Blocked", guard="q > 0 && !idle()")
    t.edge("Check", "Empty", guard="q == 0")
    t.edge(
        "Dispatch",
        "Notify",
        select="w : wid_t",
        guard="w == first_idle()",
        sync="start[w]!",
        update="last_w = w, last_m = model_for(q), last_b = batch_size(), q = q - last_b, busy[w] = true",
    )
    t.edge("Notify", "Check", sync="dispatched!")
    return t


def _worker(smc: bool) -> _Template:
    t = _Template(
        "Worker",
        parameter="const wid_t id",
        declaration="\n".join(
            [
                "clock x;                  // time in the current batch",
                "int[0, MAX_BATCH] b = 0;  // its size",
                "int[0, N_MODELS - 1] m = 0;  // its model",
            ]
            + (["clock work;               // busy time (stopwatch)"] if smc else [])
        ),
    )
    t.loc("Idle", invariant="work' == 0" if smc else "")
    t.loc("Busy", invariant="x <= SVC[m][b]")
    t.edge("Idle", "Busy", sync="start[id]?", update="x = 0, b = last_b, m = last_m")
    t.edge(
        "Busy",
        "Idle",
        guard="x >= SVC[m][b]",
        sync="done[id]!",
        update="busy[id] = false, served += b, b = 0",
    )
    return t


def _tag() -> _Template:
    t = _Template(
        "Tag",
        declaration="\n".join(
            [
                "clock z;                      // latency of the tagged request so far",
                "int[0, QCAP] pos = 0;         // its position in the FIFO queue (1 = oldest)",
                "int[0, N_WORKERS - 1] w = 0;  // the worker serving it",
            ]
        ),
    )
    t.loc("Idle")
    t.loc("Waiting")
    t.loc("InService")
    t.edge("Idle", "Idle", sync="arrive?")
    t.edge("Idle", "Waiting", guard="q < QCAP", sync="arrive?", update="z = 0, pos = q")
    t.edge("Waiting", "InService", guard="pos <= last_b", sync="dispatched?", update="w = last_w")
    t.edge("Waiting", "Waiting", guard="pos > last_b", sync="dispatched?", update="pos = pos - last_b")
    t.edge("InService", "Idle", sync="done[w]?")
    return t


def _symbolic_queries() -> list[Query]:
    return [
        Query("A[] not deadlock", "Deadlock freedom. Expected: satisfied."),
        Query(
            "A[] (q > 0 && exists (w : wid_t) !busy[w]) imply "
            "(Scheduler.Accum || Scheduler.Check || Scheduler.Dispatch || Scheduler.Notify)",
            "Whenever requests wait and a worker is idle, the scheduler is accumulating (Accum, "
            "where the invariant oldest <= POLICY_T holds) or deciding in zero time (committed "
            "locations). Expected: satisfied.",
        ),
        Query(
            "A[] Scheduler.Accum imply oldest <= MAX_WAIT",
            "Timeout bound: no request waits longer than max_wait_ms while a worker is idle. "
            "Expected: satisfied.",
        ),
        Query(
            "A[] Scheduler.Accum imply oldest <= POLICY_T",
            "The policy's own batch timeout T bounds the accumulation. Expected: satisfied.",
        ),
        Query(
            "A[] (busy[0] imply Worker(0).Busy) && (Worker(0).Busy imply busy[0])",
            "The scheduler's view of worker 0 (busy[0]) matches the worker's location. Expected: satisfied.",
        ),
        Query(
            "Tag.Waiting --> Tag.InService",
            "Every admitted request is eventually dispatched. Expected: satisfied.",
        ),
        Query(
            "sup{Tag.Waiting || Tag.InService}: Tag.z",
            "Worst-case latency (time units) of any admitted request under the bounded arrival "
            "rate: arrival to completion.",
        ),
        Query(
            "sup{Tag.Waiting}: Tag.z",
            "Worst-case waiting time (time units) before a request's batch starts.",
        ),
        Query(
            "A[] Tag.InService imply Tag.z <= SLO",
            "Every admitted request meets slo_ms under the bounded arrival rate. Satisfied iff the "
            "worst-case latency is at most SLO.",
        ),
        Query("sup: q", "Largest queue length reachable under the bounded arrival rate."),
        Query(
            "E<> q == QCAP",
            "Can the queue fill up (and drop the next arrival) under the bounded arrival rate?",
        ),
    ]


def _smc_queries(horizon_units: int, overflow_units: int, runs: int) -> list[Query]:
    return [
        Query(
            f"Pr[<={overflow_units}] (<> q == QCAP)",
            f"Probability that the queue fills up within {overflow_units} time units from an "
            "empty system (compare with the Storm overflow figure).",
        ),
        Query(
            f"Pr[<={horizon_units}] (<> dropped > 0)",
            f"Probability of at least one drop within the episode horizon ({horizon_units} time units).",
        ),
        Query(
            f"E[<={horizon_units}; {runs}] (max: served)",
            "Requests served in the horizon; throughput (requests/s) = this / horizon_s.",
        ),
        Query(
            f"E[<={horizon_units}; {runs}] (max: Worker(0).work)",
            "Busy time of worker 0 (time units); utilisation = this / horizon in time units.",
        ),
        Query(
            f"E[<={horizon_units}; {runs}] (max: qarea)",
            "Integral of the queue length (request x time units); mean queue = this / horizon.",
        ),
        Query(
            f"simulate[<={min(horizon_units, 10 * overflow_units)}; 1] {{q, served, dropped}}",
            "One simulated trajectory of the queue and the counters.",
        ),
    ]


def generate(
    config: SystemConfig,
    policy: TimeoutPolicy,
    *,
    smc: bool,
    queue_cap: int = 64,
    time_unit_ms: float = 0.1,
    rate_per_s: float | None = None,
    min_interarrival_ms: float | None = None,
    overflow_s: float = 1.0,
    smc_runs: int = 200,
) -> UppaalModel:
    """The UPPAAL network of ``config`` under ``policy`` (one XML document with its queries).

    :param smc: statistical variant (Poisson arrivals) instead of the symbolic one.
    :param queue_cap: queue capacity of the model (requests), in [1, 32767].
    :param time_unit_ms: time unit (ms), in [0.001, 1]; service times are rounded up to it.
    :param rate_per_s: Poisson rate (requests/s); default the config's mean rate.
    :param min_interarrival_ms: symbolic variant: minimum time between arrivals (ms); default
        ``1000 / rate_per_s`` (the bounded rate equals the mean rate).
    :param overflow_s: time bound (s) of the overflow probability query.
    :param smc_runs: runs per expectation query.
    """
    policy.validate(config)
    if isinstance(queue_cap, bool) or not isinstance(queue_cap, int) or not 1 <= queue_cap <= 32767:
        raise ConfigError("queue_cap", f"must be an integer in [1, 32767] (requests), got {queue_cap!r}")
    if not isinstance(time_unit_ms, int | float) or not 0.001 <= time_unit_ms <= 1.0:
        raise ConfigError("time_unit_ms", f"must be in [0.001, 1] (ms), got {time_unit_ms!r}")
    rate = config.arrivals.mean_rate_per_s if rate_per_s is None else rate_per_s
    if not isinstance(rate, int | float) or not rate > 0:
        raise ConfigError("rate_per_s", f"must be > 0 (requests/s), got {rate!r}")
    min_ia = 1000.0 / rate if min_interarrival_ms is None else min_interarrival_ms
    if not isinstance(min_ia, int | float) or not min_ia >= time_unit_ms:
        raise ConfigError(
            "min_interarrival_ms", f"must be >= the time unit ({time_unit_ms:g} ms), got {min_ia!r}"
        )
    if not overflow_s > 0:
        raise ConfigError("overflow_s", f"must be > 0 (s), got {overflow_s!r}")
    if isinstance(smc_runs, bool) or not isinstance(smc_runs, int) or smc_runs < 1:
        raise ConfigError("smc_runs", f"must be an integer >= 1, got {smc_runs!r}")
    units_per_s = round(1000.0 / time_unit_ms)

    nta = ET.Element("nta")
    ET.SubElement(nta, "declaration").text = _declarations(
        config,
        policy,
        queue_cap=queue_cap,
        unit_ms=time_unit_ms,
        rate_per_s=rate,
        min_interarrival_ms=min_ia,
        smc=smc,
    )
    templates = [_arrival_poisson() if smc else _arrival_bounded(), _scheduler(smc), _worker(smc)]
    if not smc:
        templates.append(_tag())
    for template in templates:
        nta.append(template.element())
    arrival = templates[0].name
    processes = ["Arrival", "Scheduler", "Worker"] + ([] if smc else ["Tag"])
    ET.SubElement(nta, "system").text = "\n".join(
        [
            "// The scheduler is listed before the tag: receivers of a broadcast update in this order.",
            f"Arrival = {arrival}();",
            "system " + ", ".join(processes) + ";",
        ]
    )
    if smc:
        queries = _smc_queries(
            round(config.horizon_s * units_per_s), round(overflow_s * units_per_s), smc_runs
        )
    else:
        queries = _symbolic_queries()
    queries_el = ET.SubElement(nta, "queries")
    for query in queries:
        q_el = ET.SubElement(queries_el, "query")
        ET.SubElement(q_el, "formula").text = query.formula
        ET.SubElement(q_el, "comment").text = query.comment
    ET.indent(nta, space="  ")
    body = ET.tostring(nta, encoding="unicode")
    xml = '<?xml version="1.0" encoding="utf-8"?>\n' + DOCTYPE + "\n" + body + "\n"
    return UppaalModel("batching_smc" if smc else "batching", xml, queries)


def write_models(models: Sequence[UppaalModel], directory: str | Path) -> list[Path]:
    """Write each model's ``<name>.xml`` and ``<name>.q`` into ``directory``; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in models:
        for suffix, text in ((".xml", model.xml), (".q", model.q_text())):
            paths.append(write_atomic(directory / f"{model.name}{suffix}", text))
    return paths


# ------------------------------------------------------------------------------------------------
# Name checking (a structural lint; UPPAAL's own parser is the authority)
# ------------------------------------------------------------------------------------------------

_KEYWORDS = {
    "A",
    "E",
    "Pr",
    "true",
    "false",
    "not",
    "and",
    "or",
    "imply",
    "deadlock",
    "exists",
    "forall",
    "sum",
    "sup",
    "inf",
    "max",
    "min",
    "simulate",
    "if",
    "else",
    "for",
    "while",
    "do",
    "return",
    "int",
    "bool",
    "clock",
    "chan",
    "const",
    "meta",
    "broadcast",
    "urgent",
    "void",
    "typedef",
    "double",
    "struct",
    "scalar",
}
_IDENT = re.compile(r"[A-Za-z_]\w*")
_DECL = re.compile(r"\b(?:int|bool|clock|chan|double|void|wid_t)\b\s*(?:\[[^\]]*\])?\s+([A-Za-z_]\w*)")
_TYPEDEF = re.compile(r"\btypedef\b[^;]*?\b([A-Za-z_]\w*)\s*;")
_BOUND = re.compile(r"\b([A-Za-z_]\w*)\s*:\s*[A-Za-z_]\w*")


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _declared(text: str) -> set[str]:
    text = _strip_comments(text)
    names = set(_DECL.findall(text)) | set(_TYPEDEF.findall(text)) | set(_BOUND.findall(text))
    names |= set(re.findall(r"\b([A-Za-z_]\w*)\s*=\s*[A-Za-z_]\w*\s*\(", text))  # Arrival = T();
    return names


def _used(text: str) -> set[str]:
    text = _strip_comments(text)
    text = re.sub(r"\b[A-Za-z_]\w*\s*\.\s*[A-Za-z_]\w*", " ", text)  # Proc.loc checked apart
    text = re.sub(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", " ", text)
    return set(_IDENT.findall(text)) - _KEYWORDS


def lint(xml_text: str, extra_queries: Sequence[str] = ()) -> list[str]:
    """Problems found in a generated network: names used but not declared (in every template
    label, the system declaration and the queries), dangling location references, and
    ``Process.name`` references to unknown processes, locations or local variables.

    A small check written for these models, not a UPPAAL parser: an empty list means every name
    resolves, not that UPPAAL accepts the file.
    """
    problems: list[str] = []
    root = ET.fromstring(xml_text.split("\n", 2)[2] if xml_text.startswith("<?xml") else xml_text)
    global_decl = root.findtext("declaration") or ""
    global_names = _declared(global_decl)
    templates: dict[str, tuple[set[str], set[str]]] = {}
    for tpl in root.findall("template"):
        tname = tpl.findtext("name") or ""
        local = _declared(tpl.findtext("declaration") or "") | _declared(tpl.findtext("parameter") or "")
        locations = {loc.findtext("name") or "" for loc in tpl.findall("location")}
        ids = {loc.get("id") for loc in tpl.findall("location")}
        templates[tname] = (local, locations)
        scope = global_names | local
        init = tpl.find("init")
        if init is None or init.get("ref") not in ids:
            problems.append(f"{tname}: init does not refer to one of its locations")
        for i, tr in enumerate(tpl.findall("transition")):
            for end in ("source", "target"):
                ref = tr.find(end)
                if ref is None or ref.get("ref") not in ids:
                    problems.append(f"{tname}: transition {i} {end} does not refer to a location")
            bound = set()
            for label in tr.findall("label"):
                if label.get("kind") == "select":
                    bound |= set(_BOUND.findall(label.text or ""))
            for label in tr.findall("label"):
                for name in _used(label.text or "") - scope - bound:
                    problems.append(f"{tname}: transition {i} {label.get('kind')} uses undeclared {name!r}")
        for loc in tpl.findall("location"):
            for label in loc.findall("label"):
                for name in _used((label.text or "").replace("'", " ")) - scope:
                    problems.append(
                        f"{tname}.{loc.findtext('name')}: {label.get('kind')} uses undeclared {name!r}"
                    )
    for name in _used(global_decl) - global_names - set(templates):
        problems.append(f"declaration uses undeclared {name!r}")
    system = root.findtext("system") or ""
    processes = {}
    for alias, template in re.findall(r"\b([A-Za-z_]\w*)\s*=\s*([A-Za-z_]\w*)\s*\(", _strip_comments(system)):
        processes[alias] = template
    listed = re.search(r"\bsystem\b([^;]*);", _strip_comments(system))
    if not listed:
        problems.append("system declaration has no 'system ...;' line")
    else:
        for proc in (p.strip() for p in listed.group(1).split(",")):
            processes.setdefault(proc, proc)
            if processes[proc] not in templates:
                problems.append(f"system lists {proc!r}, which is not a template or an instance")
    for name, template in processes.items():
        if template not in templates:
            problems.append(f"system: {name!r} instantiates unknown template {template!r}")
    formulas = [q.findtext("formula") or "" for q in root.iter("query")] + list(extra_queries)
    for formula in formulas:
        for proc, member in re.findall(r"\b([A-Za-z_]\w*)(?:\(\d+\))?\s*\.\s*([A-Za-z_]\w*)", formula):
            template = processes.get(proc)
            if template is None:
                problems.append(f"query {formula!r}: unknown process {proc!r}")
                continue
            local, locations = templates[template]
            if member not in locations and member not in local:
                problems.append(f"query {formula!r}: {proc} has no location or variable {member!r}")
        bound = set(_BOUND.findall(formula))
        text = re.sub(r"\b[A-Za-z_]\w*(?:\(\d+\))?\s*\.\s*[A-Za-z_]\w*", " ", formula)
        for name in _used(text) - global_names - bound:
            problems.append(f"query {formula!r}: undeclared {name!r}")
    return problems


def run_verifyta(
    xml_path: str | Path, q_path: str | Path, timeout_s: float = 600.0
) -> tuple[int, str] | None:
    """Run UPPAAL's ``verifyta`` on a model and its queries; None if it is not on PATH.

    :returns: (exit code, combined output).
    """
    exe = shutil.which("verifyta")
    if exe is None:
        return None
    proc = subprocess.run(
        [exe, str(xml_path), str(q_path)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr
