"""PRISM-language text of the discrete-time model (:mod:`formal.discrete`): an MDP whose
nondeterminism is the scheduler, and DTMCs of the same system under one policy.

Both are generated from a :class:`~formal.discrete.TickModel`, so from the ``SystemConfig``:
service ticks come from :class:`batchenv.timing.ServiceTable`, the arrival distribution from the
rate and tick, the costs from the reward weights.

Variables: ``q`` (waiting requests, 0..Q), ``a`` (age of the oldest waiting request in ticks,
0..W+1; W+1 only after a timeout violation), ``r1..rn`` (remaining service ticks per worker).
While every worker is busy, ``a`` holds the age the oldest request will have when the first
worker becomes free, capped at W (it stays constant during the busy period); when a worker is idle
it is the age itself. Decisions only happen when a worker is idle, so this changes no decision;
it merges states that differ only in ages that cannot matter (about five times fewer states).
Commands, one per tick:

- ``[tick]``: no decision possible (queue empty or every worker busy); time passes.
- ``[wait]``: a worker is idle and requests wait; the scheduler waits. With the shield (default)
  only while ``a < W``.
- ``[m<i>_b<b>]``: dispatch ``b`` requests on model ``i`` (the MDP offers ``b = min(q,
  max_batch)`` on every model; a DTMC has the policy's own choice in each state).

Each command has (K + 1) arrival branches times two service-rounding branches.

Reward structures (all non-negative, per tick; long-run averages ``R{"..."}=? [LRA]``):

- ``cost``: the regret of :mod:`batchenv.metrics` (best quality - score) accrued in the tick:
  ``w_lat * tick_s`` per waiting request, ``b * (best quality - quality(m) + w_lat *
  service_s(b, m))`` per dispatch, ``best quality + w_drop`` per expected drop.
- ``waiting`` (requests waiting during the tick), ``served`` (requests dispatched), ``batches``
  (dispatches), ``service_ms`` (``b * service_ms`` per dispatch), ``busy`` (busy workers during
  the tick), ``dropped`` (expected drops).

Labels: ``"violation"`` (``a > W``: the oldest request waited beyond max_wait_ms while a worker was
idle), ``"full"`` (``q = Q``, an arrival now would be dropped).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from batchenv.sim import Decision
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, policy_table

__all__ = [
    "REWARD_NAMES",
    "action_label",
    "dtmc_program",
    "mdp_program",
    "parse_action_label",
    "rectangles",
    "write_program",
]

REWARD_NAMES = ("cost", "waiting", "served", "batches", "service_ms", "busy", "dropped")


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


def _guard_of(states: Iterable[tuple[int, int]], model: TickModel) -> str:
    """PRISM guard (over q and a) true exactly on ``states`` among the decision states."""
    clauses = []
    for q_lo, q_hi, ages in rectangles(states):
        # bounds are left out only where they are the variables' own: q in 0..Q, a in 0..W+1
        q_part = _range("q", q_lo, q_hi, 0, model.queue_cap)
        a_parts = [_range("a", lo, hi, 0, model.max_age_ticks + 1) for lo, hi in ages]
        a_part = a_parts[0] if len(a_parts) == 1 else "(" + " | ".join(a_parts) + ")"
        terms = [t for t in (q_part, a_part) if t != "true"]
        clauses.append("(" + " & ".join(terms) + ")" if terms else "true")
    return " | ".join(clauses) if clauses else "false"


class _Writer:
    """Shared pieces of the MDP and DTMC texts."""

    def __init__(self, model: TickModel) -> None:
        self.m = model
        self.workers = [f"r{i + 1}" for i in range(model.n_workers)]

    # ------------------------------------------------------------------ expressions
    def idle(self) -> str:
        return " | ".join(f"{r}=0" for r in self.workers)

    def drops(self, waiting: str) -> str:
        """Expected drops in a tick that starts with ``waiting`` (an expression) queued."""
        terms = [f"p{k}*max(0, {waiting}+{k}-Q)" for k in range(1, self.m.max_arrivals + 1)]
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
        self, waiting: str, age_kept: str, age_new: str, workers: str, weight: str = ""
    ) -> list[str]:
        """One branch per arrival count k: ``p_k[*weight] : (q'=...) & (a'=...) & workers``.

        :param waiting: requests left waiting after the decision (an expression).
        :param age_kept: next ``a`` when the branch has no arrivals (k = 0).
        :param age_new: next ``a`` when k > 0 requests arrive.
        """
        branches = []
        for k in range(self.m.max_arrivals + 1):
            if waiting == "0":
                q_next = str(min(k, self.m.queue_cap))
            elif k == 0:
                q_next = waiting
            else:
                q_next = f"min({waiting}+{k}, Q)"
            a_next = age_kept if k == 0 else age_new
            prob = f"p{k}*{weight}" if weight else f"p{k}"
            branches.append(f"{prob} : (q'={q_next}) & (a'={a_next}) & {workers}")
        return branches

    # ------------------------------------------------------------------ commands
    def command(self, label: str, guard: str, branches: list[str]) -> str:
        body = "\n      + ".join(branches)
        return f"  [{label}] {guard} ->\n        {body};"

    def tick_command(self) -> str:
        # q > 0 here means every worker is busy: a (the age at the next free tick) is unchanged.
        fresh = f"min({self.next_free_tick()}, W)"
        return self.command(
            "tick",
            f"!(({self.idle()}) & q>0)",
            self.arrivals("q", "a", f"(q=0 ? {fresh} : a)", self.workers_tick()),
        )

    def wait_command(self, guard: str) -> str:
        # A worker is idle and stays idle: a is the age itself and may pass W (a violation).
        return self.command(
            "wait", guard, self.arrivals("q", "min(a+1, W+1)", "min(a+1, W+1)", self.workers_tick())
        )

    def dispatch_command(self, model: int, batch: int, guard: str, leftover: bool) -> str:
        """Dispatch ``batch`` on ``model``; ``leftover``: some states of the guard keep requests."""
        service = self.m.service_ticks(model, batch)
        waiting = f"q-{batch}" if leftover else "0"
        branches: list[str] = []
        outcomes = [(service.hi - 1, service.p_hi)]
        if service.p_hi < 1.0:
            outcomes.append((service.hi - 2, 1.0 - service.p_hi))
        for remaining, p in outcomes:
            free = self.next_free_dispatch(remaining)
            fresh = f"min({free}, W)"
            if leftover:
                kept = f"min(a+1+{free}, W)"
                age_kept, age_new = f"(q>{batch} ? {kept} : 0)", f"(q>{batch} ? {kept} : {fresh})"
            else:
                age_kept, age_new = "0", fresh
            weight = "" if p == 1.0 else _num(p)
            branches += self.arrivals(waiting, age_kept, age_new, self.workers_dispatch(remaining), weight)
        return self.command(action_label(model, batch), guard, branches)

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
            f"// arrivals per {m.tick_ms:g} ms tick: Poisson({m.mean_arrivals:.6g}) truncated at "
            f"{m.max_arrivals}",
        ]
        lines += [f"const double p{k} = {_num(p)};" for k, p in enumerate(m.arrival_probs)]
        lines.append("")
        return lines

    def module(self, commands: list[str]) -> list[str]:
        m = self.m
        lines = [
            "module batching",
            "  q : [0..Q] init 0;  // waiting requests",
            "  a : [0..W+1] init 0;  // age of the oldest waiting request (ticks)",
        ]
        lines += [
            f"  {r} : [0..{m.max_busy_ticks}] init 0;  // remaining service ticks of worker {i + 1}"
            for i, r in enumerate(self.workers)
        ]
        lines.append("")
        lines += commands
        lines += ["endmodule", ""]
        return lines

    def labels_and_rewards(self, dispatches: list[tuple[int, int, bool]], has_wait: bool) -> list[str]:
        m = self.m
        w_tick = m.config.reward.w_latency_per_s * m.tick_s
        # a dropped request costs the best quality it did not get plus the drop penalty
        w_drop = max(m.config.qualities) + m.config.reward.w_drop
        lines = [
            'label "violation" = a > W;  // waited beyond max_wait_ms with a worker idle',
            'label "full" = q = Q;  // an arrival now would be dropped',
            "",
        ]
        idle_terms = {"tick": "q", "wait": "q"} if has_wait else {"tick": "q"}

        def structure(name: str, value_of: dict[str, str], dispatch_value) -> list[str]:
            out = [f'rewards "{name}"']
            for label, waiting in idle_terms.items():
                value = value_of[label].replace("$W", waiting)
                out.append(f"  [{label}] true : {value};")
            for model, batch, leftover in dispatches:
                waiting = f"q-{batch}" if leftover else "0"
                out.append(
                    f"  [{action_label(model, batch)}] true : {dispatch_value(model, batch, waiting)};"
                )
            out += ["endrewards", ""]
            return out

        def cost_idle() -> str:
            return f"{_num(w_tick)}*$W + {_num(w_drop)}*({self.drops('$W')})"

        def cost_dispatch(model: int, batch: int, waiting: str) -> str:
            ticks = m.service_ticks(model, batch)
            per_request = m.regret(model) + m.config.reward.w_latency_per_s * ticks.service_ms / 1000.0
            parts = [_num(batch * per_request)]
            if waiting != "0":
                parts.append(f"{_num(w_tick)}*({waiting})")
            drops = self.drops(waiting) if waiting != "0" else self.drops("0")
            parts.append(f"{_num(w_drop)}*({drops})")
            return " + ".join(parts)

        busy = self.busy_count()
        lines += structure("cost", {"tick": cost_idle(), "wait": cost_idle()}, cost_dispatch)
        lines += structure("waiting", {"tick": "$W", "wait": "$W"}, lambda mo, b, w: w)
        lines += structure("served", {"tick": "0", "wait": "0"}, lambda mo, b, w: str(b))
        lines += structure("batches", {"tick": "0", "wait": "0"}, lambda mo, b, w: "1")
        lines += structure(
            "service_ms",
            {"tick": "0", "wait": "0"},
            lambda mo, b, w: _num(b * m.service_ticks(mo, b).service_ms),
        )
        lines += structure("busy", {"tick": busy, "wait": busy}, lambda mo, b, w: f"1 + {busy}")
        lines += structure(
            "dropped", {"tick": self.drops("$W"), "wait": self.drops("$W")}, lambda mo, b, w: self.drops(w)
        )
        return lines


def mdp_program(model: TickModel, *, shield: bool = True) -> str:
    """The MDP: in every state with an idle worker and waiting requests, the scheduler chooses
    wait (only while ``a < W`` with ``shield``) or a full batch ``min(q, max_batch)`` on any model.

    :param shield: enforce the timeout shield; without it waits stay allowed at ``a >= W`` (used to
        show that the timeout-safety property is not vacuous).
    """
    w = _Writer(model)
    cap = min(model.max_batch, model.queue_cap)
    commands = [w.tick_command()]
    wait_guard = f"({w.idle()}) & q>0" + (" & a<W" if shield else "")
    commands.append(w.wait_command(wait_guard))
    dispatches: list[tuple[int, int, bool]] = []
    for m in range(model.n_models):
        for b in range(1, cap + 1):
            leftover = b == model.max_batch and model.queue_cap > b
            q_guard = f"q>={b}" if leftover else f"q={b}"
            commands.append(w.dispatch_command(m, b, f"({w.idle()}) & {q_guard}", leftover))
            dispatches.append((m, b, leftover))
    title = "Dynamic batching: MDP over all schedulers" + ("" if shield else " (no timeout shield)")
    lines = w.header("mdp", title)
    lines += w.module(commands)
    lines += w.labels_and_rewards(dispatches, has_wait=True)
    return "\n".join(lines)


def dtmc_program(model: TickModel, policy: DiscretePolicy) -> str:
    """The DTMC of ``policy`` (with the timeout shield) on ``model``."""
    w = _Writer(model)
    table = policy_table(policy, model)
    groups: dict[Decision, list[tuple[int, int]]] = {}
    for state, decision in table.items():
        groups.setdefault(decision, []).append(state)
    commands = [w.tick_command()]
    if None in groups:
        commands.append(w.wait_command(f"({w.idle()}) & ({_guard_of(groups[None], model)})"))
    dispatches: list[tuple[int, int, bool]] = []
    for decision in sorted(d for d in groups if d is not None):
        m, b = decision
        states = groups[decision]
        leftover = any(q > b for q, _ in states)
        commands.append(w.dispatch_command(m, b, f"({w.idle()}) & ({_guard_of(states, model)})", leftover))
        dispatches.append((m, b, leftover))
    lines = w.header("dtmc", f"Dynamic batching under policy {policy.name}")
    lines += w.module(commands)
    lines += w.labels_and_rewards(dispatches, has_wait=None in groups)
    return "\n".join(lines)


def write_program(text: str, path: str | Path) -> Path:
    """Write a PRISM text to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
