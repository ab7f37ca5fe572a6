"""PRISM-language text of the discrete-time model (:mod:`formal.discrete`): an MDP whose
nondeterminism is the scheduler, and DTMCs of the same system under one policy.

Both are generated from a :class:`~formal.discrete.TickModel`, so from the ``SystemConfig``:
service ticks come from :class:`batchenv.timing.ServiceTable`, the arrival distribution from the
rate and tick, the costs from the reward weights.

Variables: ``q`` (waiting requests, 0..Q), ``a`` (age of the oldest waiting request in ticks,
0..W+1; W+1 only after a timeout violation), ``r1..rn`` (remaining service ticks per worker),
and with Markov-modulated arrivals ``ph`` (the arrival phase; every phase is an initial state,
weighted by the stationary phase distribution when values are read); a choice MDP whose choices
depend on the age below the upper bound a dispatch leaving requests behind keeps also has ``l``,
a lower bound of the age (:func:`choice_program`, :func:`needs_age_bounds`).
While every worker is busy, ``a`` holds the age the oldest request will have when the first
worker becomes free, capped at W (it stays constant during the busy period); when a worker is idle
it is the age itself. Decisions only happen when a worker is idle, so this changes no decision;
it merges states that differ only in ages that cannot matter (about five times fewer states).
Commands, one per tick:

- ``[tick]``: no decision possible (queue empty or every worker busy); time passes.
- ``[wait]``: a worker is idle and requests wait; the scheduler waits. With the shield (default)
  only while ``a < W``.
- ``[m<i>_b<b>]``: dispatch ``b`` requests on model ``i`` (the MDP offers ``b = min(q,
  max_batch)`` on every model; a DTMC has the policy's own choice in each state; a choice MDP
  (:func:`choice_program`) offers, in each state, the decisions of a given set).

Each command has (K + 1) arrival branches times two service-rounding branches (times the next
phases with Markov-modulated arrivals; commands are then written once per phase).

Reward structures (all non-negative, per tick; long-run averages ``R{"..."}=? [LRA]``):

- ``cost``: the regret of :mod:`batchenv.metrics` (best quality - score) accrued in the tick:
  ``w_lat * tick_s`` per waiting request, ``b * (best quality - quality(m) + w_lat *
  service_s(b, m))`` per dispatch, ``best quality + w_drop`` per expected drop.
- ``waiting`` (requests waiting during the tick), ``served`` (requests dispatched), ``batches``
  (dispatches), ``service_ms`` (``b * service_ms`` per dispatch), ``busy`` (busy workers during
  the tick), ``dropped`` (expected drops), and for choice MDPs ``sojourn_ms`` (``tick_ms *
  waiting + service_ms``: its long-run average over the served rate is the mean latency, so its
  Rmin and Rmax bound the mean latency over every resolution of the choices).

The SLO penalty ``reward.w_slo`` is not in the cost: the model keeps one age (the oldest
request's), so the number of requests of a batch that miss ``slo_ms`` is not a function of its
state. A config with ``w_slo > 0`` is refused (:func:`check_costs_modelled`).

Labels: ``"violation"`` (``a > W``: the oldest request waited beyond max_wait_ms while a worker was
idle), ``"full"`` (``q = Q``, an arrival now would be dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from batchenv.config import ConfigError
from batchenv.sim import Decision
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, policy_table

__all__ = [
    "CHOICE_REWARD_NAMES",
    "REWARD_NAMES",
    "Choices",
    "action_label",
    "check_costs_modelled",
    "choice_program",
    "dtmc_program",
    "mdp_program",
    "parse_action_label",
    "rectangles",
    "write_program",
]

REWARD_NAMES = ("cost", "waiting", "served", "batches", "service_ms", "busy", "dropped")
CHOICE_REWARD_NAMES = (*REWARD_NAMES, "sojourn_ms")
"""Reward structures of a choice MDP: those of the DTMCs and ``sojourn_ms``."""

Choices = Mapping[tuple[int, int, int], frozenset[Decision]]
"""``{(phase, q, a): decisions allowed}`` over the decision states of a choice MDP; every
decision is None (wait) or ``(model, b)`` with ``b`` the batch actually dispatched."""


def check_costs_modelled(model: TickModel) -> None:
    """ConfigError naming ``reward.w_slo`` when the config has an SLO penalty: the model keeps
    the oldest request's age only, so it cannot count a batch's SLO misses, and a cost without
    the penalty would be silently wrong."""
    w_slo = model.config.reward.w_slo
    if w_slo > 0:
        raise ConfigError(
            "reward.w_slo",
            f"is {w_slo:g} (> 0) in scenario {model.config.name!r}: the discrete-time model keeps only "
            "the oldest request's age, so the SLO misses of a batch, and their penalty, are not a "
            "function of its state; set reward.w_slo to 0 (a scenario YAML with 'extends:') to verify "
            "the system without the penalty",
        )


def _num(x: float) -> str:
    """A float literal PRISM parses exactly as Python wrote it."""
    text = repr(float(x))
    return text if ("e" not in text and "E" not in text) else f"{float(x):.17f}".rstrip("0")


def action_label(model: int, batch: int) -> str:
    """PRISM action label of dispatching ``batch`` requests on model index ``model``."""
    return f"m{model}_b{batch}"


def parse_action_label(label: str) -> Decision:
    """Inverse of :func:`action_label` (``"wait"``/``"tick"`` give None)."""
    if label in ("wait", "tick"):
        return None
    head, _, tail = label.partition("_b")
    if not head.startswith("m") or not tail.isdigit():
        raise ValueError(f"not an action label: {label!r}")
    return (int(head[1:]), int(tail))


def rectangles(states: Iterable[tuple[int, int]]) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Compress a set of (q, a) into ``[(q_lo, q_hi, [(a_lo, a_hi), ...]), ...]``: consecutive
    queue lengths with the same age intervals are merged."""
    by_q: dict[int, list[int]] = {}
    for q, a in states:
        by_q.setdefault(q, []).append(a)
    rows: list[tuple[int, int, list[tuple[int, int]]]] = []
    for q in sorted(by_q):
        ages = sorted(by_q[q])
        intervals: list[tuple[int, int]] = []
        for a in ages:
            if intervals and a == intervals[-1][1] + 1:
                intervals[-1] = (intervals[-1][0], a)
            else:
                intervals.append((a, a))
        if rows and rows[-1][1] == q - 1 and rows[-1][2] == intervals:
            rows[-1] = (rows[-1][0], q, intervals)
        else:
            rows.append((q, q, intervals))
    return rows


def _range(var: str, lo: int, hi: int, full_lo: int, full_hi: int) -> str:
    if lo == hi:
        return f"{var}={lo}"
    parts = []
    if lo > full_lo:
        parts.append(f"{var}>={lo}")
    if hi < full_hi:
        parts.append(f"{var}<={hi}")
    return " & ".join(parts) if parts else "true"


def _overlap(lo: int, hi: int, top: int) -> str:
    """PRISM condition that the ages ``[l, a]`` a state allows meet ``[lo, hi]`` (``l <= hi & a >=
    lo``); bounds that are the variables' own (0, ``top``) are left out."""
    parts = []
    if hi < top:
        parts.append(f"l<={hi}")
    if lo > 0:
        parts.append(f"a>={lo}")
    return " & ".join(parts) if parts else "true"


def _guard_of(states: Iterable[tuple[int, int]], model: TickModel, bounds: bool = False) -> str:
    """PRISM guard (over q and a) true exactly on ``states`` among the decision states. With
    ``bounds`` (the age is known only to lie in ``[l, a]``, :func:`needs_age_bounds`), true where
    some age of ``[l, a]`` is one of ``states``' at that q."""
    clauses = []
    for q_lo, q_hi, ages in rectangles(states):
        # bounds are left out only where they are the variables' own: q in 0..Q, a in 0..W+1
        q_part = _range("q", q_lo, q_hi, 0, model.queue_cap)
        top = model.max_age_ticks + 1
        a_parts = [_overlap(lo, hi, top) if bounds else _range("a", lo, hi, 0, top) for lo, hi in ages]
        if "true" in a_parts:
            a_parts = ["true"]
        a_part = a_parts[0] if len(a_parts) == 1 else "(" + " | ".join(a_parts) + ")"
        terms = [t for t in (q_part, a_part) if t != "true"]
        clauses.append("(" + " & ".join(terms) + ")" if terms else "true")
    return " | ".join(clauses) if clauses else "false"


class _Writer:
    """Shared pieces of the MDP and DTMC texts."""

    def __init__(self, model: TickModel, bounds: bool = False) -> None:
        check_costs_modelled(model)
        self.m = model
        self.workers = [f"r{i + 1}" for i in range(model.n_workers)]
        self.phased = model.n_phases > 1
        self.bounds = bounds
        """Keep ``l``, a lower bound on the age (:func:`needs_age_bounds`)."""

    # ------------------------------------------------------------------ expressions
    def idle(self) -> str:
        return " | ".join(f"{r}=0" for r in self.workers)

    def p(self, phase: int, k: int) -> str:
        """Name of the constant P(k arrivals in a tick of ``phase``)."""
        return f"p{phase}_{k}" if self.phased else f"p{k}"

    def phase_guard(self, guard: str, phase: int) -> str:
        return f"ph={phase} & {guard}" if self.phased else guard

    def phases(self) -> range:
        return range(self.m.n_phases)

    def drops(self, waiting: str, phase: int = 0) -> str:
        """Expected drops in a tick of ``phase`` that starts with ``waiting`` (an expression) queued."""
        k_max = len(self.m.phase_arrival_probs[phase]) - 1
        terms = [f"{self.p(phase, k)}*max(0, {waiting}+{k}-Q)" for k in range(1, k_max + 1)]
        return " + ".join(terms) if terms else "0"

    def busy_count(self) -> str:
        return " + ".join(f"({r}>0 ? 1 : 0)" for r in self.workers)

    def workers_tick(self) -> str:
        return " & ".join(f"({r}'=max({r}-1, 0))" for r in self.workers)

    def _dispatched_worker(self, i: int, remaining: int) -> str:
        """Remaining ticks of worker ``i`` after a tick in which a batch of ``remaining + 1``
        ticks started on the lowest-numbered idle worker."""
        r = self.workers[i]
        if len(self.workers) == 1:
            return str(remaining)
        cond = " & ".join([f"{w}>0" for w in self.workers[:i]] + [f"{r}=0"])
        return f"(({cond}) ? {remaining} : max({r}-1, 0))"

    def workers_dispatch(self, remaining: int) -> str:
        return " & ".join(
            f"({r}'={self._dispatched_worker(i, remaining)})" for i, r in enumerate(self.workers)
        )

    def next_free_tick(self) -> str:
        """Ticks until the first worker is free, after a tick without dispatch."""
        parts = [f"max({r}-1, 0)" for r in self.workers]
        return parts[0] if len(parts) == 1 else f"min({', '.join(parts)})"

    def next_free_dispatch(self, remaining: int) -> str:
        """Ticks until the first worker is free, after a tick with a dispatch."""
        parts = [self._dispatched_worker(i, remaining) for i in range(len(self.workers))]
        return parts[0] if len(parts) == 1 else f"min({', '.join(parts)})"

    def arrivals(
        self,
        waiting: str,
        age_kept: str,
        age_new: str,
        workers: str,
        weight: str = "",
        phase: int = 0,
        lower: tuple[str, str] | None = None,
    ) -> list[str]:
        """One branch per arrival count k (and next phase j with Markov-modulated arrivals):
        ``p_k[*t_ij][*weight] : (q'=...) & (a'=...) & workers[ & (ph'=j)]``.

        :param waiting: requests left waiting after the decision (an expression).
        :param age_kept: next ``a`` when the branch has no arrivals (k = 0).
        :param age_new: next ``a`` when k > 0 requests arrive.
        :param phase: the current arrival phase.
        :param lower: with age bounds, next ``l`` without and with arrivals (default: as ``a``).
        """
        m = self.m
        nexts = (
            [(j, f"t{phase}_{j}") for j in self.phases() if m.phase_switch[phase][j] > 0]
            if self.phased
            else [(0, "")]
        )
        branches = []
        for k in range(len(m.phase_arrival_probs[phase])):
            if waiting == "0":
                q_next = str(min(k, m.queue_cap))
            elif k == 0:
                q_next = waiting
            else:
                q_next = f"min({waiting}+{k}, Q)"
            a_next = age_kept if k == 0 else age_new
            l_next = ""
            if self.bounds:
                kept, new = lower or (age_kept, age_new)
                l_next = f" & (l'={kept if k == 0 else new})"
            for j, switch in nexts:
                prob = "*".join(x for x in (self.p(phase, k), switch, weight) if x)
                update = f"(q'={q_next}) & (a'={a_next}){l_next} & {workers}" + (
                    f" & (ph'={j})" if self.phased else ""
                )
                branches.append(f"{prob} : {update}")
        return branches

    # ------------------------------------------------------------------ commands
    def command(self, label: str, guard: str, branches: list[str]) -> str:
        body = "\n      + ".join(branches)
        return f"  [{label}] {guard} ->\n        {body};"

    def commands(self, label: str, guard: str, branches_of) -> list[str]:
        """One command per phase (one without phases): ``branches_of(phase)`` gives its branches."""
        return [self.command(label, self.phase_guard(guard, i), branches_of(i)) for i in self.phases()]

    def tick_commands(self) -> list[str]:
        # q > 0 here means every worker is busy: a (the age at the next free tick) is unchanged.
        fresh = f"min({self.next_free_tick()}, W)"
        return self.commands(
            "tick",
            f"!(({self.idle()}) & q>0)",
            lambda i: self.arrivals(
                "q",
                "a",
                f"(q=0 ? {fresh} : a)",
                self.workers_tick(),
                phase=i,
                lower=("l", f"(q=0 ? {fresh} : l)"),
            ),
        )

    def wait_commands(self, guards: list[str]) -> list[str]:
        """Wait where a worker is idle; ``guards[phase]`` are the states (None: no wait there)."""
        # A worker is idle and stays idle: a is the age itself and may pass W (a violation). With
        # age bounds the age lies in [l, a]: a passes W only once l has (before, it may be below W).
        age = "min(a+1, W+1)"
        lower = None
        if self.bounds:
            age = "(l<W ? min(a+1, W) : min(a+1, W+1))"
            lower = ("min(l+1, W+1)", "min(l+1, W+1)")
        return [
            self.command(
                "wait",
                self.phase_guard(guard, i),
                self.arrivals("q", age, age, self.workers_tick(), phase=i, lower=lower),
            )
            for i, guard in enumerate(guards)
            if guard is not None
        ]

    def dispatch_commands(
        self, model: int, batch: int, guards: list[str | None], leftover: bool
    ) -> list[str]:
        """Dispatch ``batch`` on ``model`` where ``guards[phase]`` holds (None: nowhere in that
        phase); ``leftover``: some states of the guards keep requests."""
        service = self.m.service_ticks(model, batch)
        waiting = f"q-{batch}" if leftover else "0"
        outcomes = [(service.hi - 1, service.p_hi)]
        if service.p_hi < 1.0:
            outcomes.append((service.hi - 2, 1.0 - service.p_hi))
        out = []
        for phase, guard in enumerate(guards):
            if guard is None:
                continue
            branches: list[str] = []
            for remaining, p in outcomes:
                free = self.next_free_dispatch(remaining)
                fresh = f"min({free}, W)"
                lower = None
                if leftover:
                    kept = f"min(a+1+{free}, W)"
                    age_kept, age_new = f"(q>{batch} ? {kept} : 0)", f"(q>{batch} ? {kept} : {fresh})"
                    # the requests left behind were waiting already: at least 1 + free ticks old
                    least = f"min(1+{free}, W)"
                    lower = (f"(q>{batch} ? {least} : 0)", f"(q>{batch} ? {least} : {fresh})")
                else:
                    age_kept, age_new = "0", fresh
                weight = "" if p == 1.0 else _num(p)
                branches += self.arrivals(
                    waiting, age_kept, age_new, self.workers_dispatch(remaining), weight, phase, lower
                )
            out.append(self.command(action_label(model, batch), self.phase_guard(guard, phase), branches))
        return out

    # ------------------------------------------------------------------ whole text
    def header(self, kind: str, title: str) -> list[str]:
        m = self.m
        cfg = m.config
        lines = [
            f"// {title}",
            f"// Generated by formal/prism.py from SystemConfig '{cfg.name}': {m.describe()}.",
            "// Semantics: formal/discrete.py; reward structures and labels: formal/prism.py.",
            "// Models: "
            + ", ".join(f"m{i} = {mp.name} (quality {mp.quality:g})" for i, mp in enumerate(cfg.models)),
            "",
            kind,
            "",
            f"const int Q = {m.queue_cap};  // model queue capacity (requests)",
            f"const int W = {m.max_age_ticks};  // max_wait_ms = {cfg.max_wait_ms:g} ms in ticks",
        ]
        for i in self.phases():
            probs = m.phase_arrival_probs[i]
            mean = m.phase_mean_arrivals(i)
            where = f" in phase {i} ({m.phase_rates_per_s[i]:g}/s)" if self.phased else ""
            truncated = f"Poisson({mean:.6g}) truncated at {len(probs) - 1}"
            lines.append(f"// arrivals per {m.tick_ms:g} ms tick{where}: {truncated}")
            lines += [f"const double {self.p(i, k)} = {_num(p)};" for k, p in enumerate(probs)]
        if self.phased:
            lines.append(f"// phase transitions per {m.tick_ms:g} ms tick: expm(generator x tick)")
            lines += [
                f"const double t{i}_{j} = {_num(m.phase_switch[i][j])};"
                for i in self.phases()
                for j in self.phases()
                if m.phase_switch[i][j] > 0
            ]
        lines.append("")
        return lines

    def module(self, commands: list[str]) -> list[str]:
        m = self.m
        init = "" if self.phased else " init 0"
        lines = [
            "module batching",
            f"  q : [0..Q]{init};  // waiting requests",
            f"  a : [0..W+1]{init};  // age of the oldest waiting request (ticks)",
        ]
        if self.bounds:
            lines.append(
                f"  l : [0..W+1]{init};  // lower bound on that age (ticks): it lies in [l, a] after a "
                "dispatch that left requests behind"
            )
        lines += [
            f"  {r} : [0..{m.max_busy_ticks}]{init};  // remaining service ticks of worker {i + 1}"
            for i, r in enumerate(self.workers)
        ]
        if self.phased:
            lines.append(f"  ph : [0..{m.n_phases - 1}];  // arrival phase")
        lines.append("")
        lines += commands
        lines += ["endmodule", ""]
        if self.phased:  # an empty system in every phase; values are weighted by the stationary law
            start = "init q=0 & a=0 & " + ("l=0 & " if self.bounds else "")
            lines += [start + " & ".join(f"{r}=0" for r in self.workers) + " endinit", ""]
        return lines

    def labels_and_rewards(
        self, dispatches: list[tuple[int, int, bool]], has_wait: bool, names: tuple[str, ...] = REWARD_NAMES
    ) -> list[str]:
        m = self.m
        w_tick = m.config.reward.w_latency_per_s * m.tick_s
        # a dropped request costs the best quality it did not get plus the drop penalty
        w_drop = max(m.config.qualities) + m.config.reward.w_drop
        lines = [
            'label "violation" = a > W;  // waited beyond max_wait_ms with a worker idle',
            'label "full" = q = Q;  // an arrival now would be dropped',
            "",
        ]
        idle_labels = ("tick", "wait") if has_wait else ("tick",)

        def structure(name: str, idle_value, dispatch_value) -> list[str]:
            """``idle_value(waiting, phase)`` for tick and wait, ``dispatch_value(model, batch,
            waiting, phase)`` for dispatches; one item per phase when a value uses the phase."""
            out = [f'rewards "{name}"']
            items = [(label, "q", lambda w, i: idle_value(w, i)) for label in idle_labels]
            for model, batch, leftover in dispatches:
                waiting = f"q-{batch}" if leftover else "0"
                items.append(
                    (
                        action_label(model, batch),
                        waiting,
                        lambda w, i, mo=model, b=batch: dispatch_value(mo, b, w, i),
                    )
                )
            for label, waiting, value in items:
                values = [value(waiting, i) for i in self.phases()]
                if len(set(values)) == 1:
                    out.append(f"  [{label}] true : {values[0]};")
                else:
                    out += [f"  [{label}] ph={i} : {v};" for i, v in enumerate(values)]
            out += ["endrewards", ""]
            return out

        def cost_idle(waiting: str, phase: int) -> str:
            return f"{_num(w_tick)}*{waiting} + {_num(w_drop)}*({self.drops(waiting, phase)})"

        def cost_dispatch(model: int, batch: int, waiting: str, phase: int) -> str:
            ticks = m.service_ticks(model, batch)
            per_request = m.regret(model) + m.config.reward.w_latency_per_s * ticks.service_ms / 1000.0
            parts = [_num(batch * per_request)]
            if waiting != "0":
                parts.append(f"{_num(w_tick)}*({waiting})")
            parts.append(f"{_num(w_drop)}*({self.drops(waiting, phase)})")
            return " + ".join(parts)

        def sojourn_dispatch(model: int, batch: int, waiting: str, phase: int) -> str:
            service = _num(batch * m.service_ticks(model, batch).service_ms)
            return service if waiting == "0" else f"{service} + {_num(m.tick_ms)}*({waiting})"

        busy = self.busy_count()
        values = {
            "cost": (cost_idle, cost_dispatch),
            "waiting": (lambda w, i: w, lambda mo, b, w, i: w),
            "served": (lambda w, i: "0", lambda mo, b, w, i: str(b)),
            "batches": (lambda w, i: "0", lambda mo, b, w, i: "1"),
            "service_ms": (lambda w, i: "0", lambda mo, b, w, i: _num(b * m.service_ticks(mo, b).service_ms)),
            "busy": (lambda w, i: busy, lambda mo, b, w, i: f"1 + {busy}"),
            "dropped": (lambda w, i: self.drops(w, i), lambda mo, b, w, i: self.drops(w, i)),
            "sojourn_ms": (lambda w, i: f"{_num(m.tick_ms)}*{w}", sojourn_dispatch),
        }
        for name in names:
            lines += structure(name, *values[name])
        return lines


def mdp_program(model: TickModel, *, shield: bool = True) -> str:
    """The MDP: in every state with an idle worker and waiting requests, the scheduler chooses
    wait (only while ``a < W`` with ``shield``) or a full batch ``min(q, max_batch)`` on any model.

    :param shield: enforce the timeout shield; without it waits stay allowed at ``a >= W`` (used to
        show that the timeout-safety property is not vacuous).
    """
    w = _Writer(model)
    cap = min(model.max_batch, model.queue_cap)
    commands = w.tick_commands()
    wait_guard = f"({w.idle()}) & q>0" + (" & a<W" if shield else "")
    commands += w.wait_commands([wait_guard] * model.n_phases)
    dispatches: list[tuple[int, int, bool]] = []
    for m in range(model.n_models):
        for b in range(1, cap + 1):
            leftover = b == model.max_batch and model.queue_cap > b
            q_guard = f"q>={b}" if leftover else f"q={b}"
            commands += w.dispatch_commands(m, b, [f"({w.idle()}) & {q_guard}"] * model.n_phases, leftover)
            dispatches.append((m, b, leftover))
    title = "Dynamic batching: MDP over all schedulers" + ("" if shield else " (no timeout shield)")
    lines = w.header("mdp", title)
    lines += w.module(commands)
    lines += w.labels_and_rewards(dispatches, has_wait=True)
    return "\n".join(lines)


def dtmc_program(model: TickModel, policy: DiscretePolicy, *, shield: bool = True) -> str:
    """The DTMC of ``policy`` on ``model``, with the timeout shield or, with ``shield=False``, its
    raw table: a wait at ``a >= W`` then leads to the violation ``a = W + 1``, where the policy's
    shield dispatch follows one tick late (so that the chain stays defined; only the reachability
    of the violation is meant to be read from it)."""
    table = policy_table(policy, model, shield=shield)
    choices = {(i, q, a): frozenset((d,)) for (q, a), d in table.items() for i in range(model.n_phases)}
    suffix = "" if shield else " (raw table, no timeout shield)"
    return _choice_text(
        model, choices, "dtmc", f"Dynamic batching under policy {policy.name}{suffix}", REWARD_NAMES
    )


def choice_program(
    model: TickModel, choices: Choices, title: str, *, kind: str = "mdp", bounds: bool | None = None
) -> str:
    """An MDP whose nondeterminism, in each decision state ``(phase, q, a)`` (a worker idle, q >=
    1), is the set ``choices[(phase, q, a)]``; decision states missing from ``choices`` wait. Its
    reward structures are :data:`CHOICE_REWARD_NAMES`. With ``kind="dtmc"`` every set must have
    one decision (a DTMC of the same chain).

    ``choices[(phase, q, a)]`` must hold every decision taken at the real ages of the state's
    tick (:func:`formal.band.tick_ages`). After a dispatch that leaves requests behind, the model's
    age ``a`` is an upper bound (the old oldest request's); with ``bounds`` (default:
    :func:`needs_age_bounds`) the model also keeps a lower bound ``l`` (the requests left behind
    were waiting already, so they are at least as old as the service that followed), and a state
    allows every decision of every age in ``[l, a]``: the choices stay those of the real ages. A
    wait then passes ``W`` only once ``l`` has (below it the real age may still be under W)."""
    if kind not in ("mdp", "dtmc"):
        raise ValueError(f"kind must be 'mdp' or 'dtmc', got {kind!r}")
    if bounds is None:
        bounds = needs_age_bounds(model, choices)
    if kind == "dtmc" and (bounds or any(len(c) != 1 for c in choices.values())):
        raise ValueError("a DTMC needs exactly one decision in every state (and no age bounds)")
    return _choice_text(model, choices, kind, title, CHOICE_REWARD_NAMES, bounds)


def least_age_after_partial_dispatch(model: TickModel, choices: Choices | None = None) -> int:
    """The least age (ticks) the oldest request left behind by a dispatch can have at the next
    decision: 1 with several workers (another may be idle at the next tick), else the fewest
    ticks of the service of a dispatch that leaves requests behind (of any in ``choices``, of
    any dispatch without them): the requests left behind wait that long for the worker."""
    if model.n_workers > 1:
        return 1
    if choices is None:
        services = [s for row in model.service for s in row]
    else:
        partial = {d for (_, q, _), c in choices.items() for d in c if d is not None and d[1] < q}
        services = [model.service_ticks(m, b) for m, b in partial]
    return min((s.hi if s.p_hi >= 1.0 else s.lo for s in services), default=model.max_age_ticks + 1)


def needs_age_bounds(model: TickModel, choices: Choices) -> bool:
    """Whether the choice program of ``choices`` must keep a lower bound of the age
    (:func:`choice_program`): some choice leaves requests behind, and at some queue length the
    decisions of an age ``a`` do not include every decision of the younger ages from
    :func:`least_age_after_partial_dispatch` to ``a``. Otherwise the choices at the upper bound
    ``a`` already hold the decision of any real age the state may have (the model keeps one age)."""
    if not any(d is not None and d[1] < q for (_, q, _), c in choices.items() for d in c):
        return False
    least = least_age_after_partial_dispatch(model, choices)
    for (phase, q, a), here in choices.items():
        if a > model.max_age_ticks:  # only after a violation, where the age is exact
            continue
        for x in range(least, a):
            younger = choices.get((phase, q, x))
            if younger is not None and not younger <= here:
                return True
    return False


def _choice_text(
    model: TickModel, choices: Choices, kind: str, title: str, names: tuple[str, ...], bounds: bool = False
) -> str:
    w = _Writer(model, bounds)
    groups: dict[Decision, list[list[tuple[int, int]]]] = {}
    for (phase, q, a), decisions in choices.items():
        for decision in decisions:
            groups.setdefault(decision, [[] for _ in w.phases()])[phase].append((q, a))
    commands = w.tick_commands()

    def guards(per_phase: list[list[tuple[int, int]]]) -> list[str | None]:
        return [
            f"({w.idle()}) & ({_guard_of(states, model, bounds)})" if states else None for states in per_phase
        ]

    if None in groups:
        commands += w.wait_commands(guards(groups[None]))
    dispatches: list[tuple[int, int, bool]] = []
    for decision in sorted(d for d in groups if d is not None):
        m, b = decision
        per_phase = groups[decision]
        leftover = any(q > b for states in per_phase for q, _ in states)
        commands += w.dispatch_commands(m, b, guards(per_phase), leftover)
        dispatches.append((m, b, leftover))
    lines = w.header(kind, title)
    lines += w.module(commands)
    lines += w.labels_and_rewards(dispatches, has_wait=None in groups, names=names)
    return "\n".join(lines)


def write_program(text: str, path: str | Path) -> Path:
    """Write a PRISM text to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
