"""The batching system as an average-reward semi-Markov decision process (SMDP) over the queue
length, its exact solution for one worker and Poisson arrivals, and the structure of the optimal
policy. The optimum (:class:`agents.optimal.OptimalScheduler`) and the proposed scheduler's
tables (:mod:`agents.policy_table`) are built on this API.

    solution = solve_optimal(config, rate_per_s=100.0)   # cached per (system, rate)
    solution.score_per_request, solution.cost_per_request, solution.dispatch_threshold
    control_limits(solution).describe()                   # "1-10 LLM-1 b=..."

To solve a modified SMDP (other rewards or sojourns, as :func:`staggered_model` does for several
workers), build its data, change it and solve it with the same solver (not cached):

    model = build_smdp(config, rate_per_s=100.0, queue_cap=266)   # an SMDPModel
    model = dataclasses.replace(model, reward=model.reward - extra)
    with single_threaded_blas():
        result = policy_iteration(model)                          # actions, gain, h, ...
    values = action_values(model, result.relative_values, result.gain_per_s)

Modules: :mod:`~agents.smdp.model` (the decision process and its queue cap),
:mod:`~agents.smdp.solvers` (policy iteration, relative value iteration, certified bounds),
:mod:`~agents.smdp.solution` (:func:`solve_optimal` and its cache), :mod:`~agents.smdp.limits`
(control limits), :mod:`~agents.smdp.staggered` (several workers, approximated).

Structure found (default system; ``python -m apps.optimal --rates 20,50,100,200,300,400``)
    ======  ====  ==============  ==============  ==========================================
    rate/s   q*   score/request   cost/request    policy by queue length q (to p99.99 of q)
    ======  ====  ==============  ==============  ==========================================
     20      1    0.982271        0.017729        1-4 LLM-1 (b = 1..3: q = 4 sends 3)
     50      1    0.976465        0.023535        1-6 LLM-1 b = q
    100      1    0.961726        0.038274        1-10 LLM-1 (q = 10 sends 9); 11 LLM-2
    200      1    0.917316        0.082684        1-5 LLM-1; 6-14 LLM-2; 15-21 LLM-3 b = 12..15
    300      2    0.891156        0.108844        1 wait; 2-3 LLM-1; 4-21 LLM-3 b = 4..20
    400      2    0.867379        0.132621        1 wait; 2-41 LLM-3 b = q
    ======  ====  ==============  ==============  ==========================================

    - Control limit: for every rate from 5 to 575/s (step 5) the policy dispatches iff q >= q*,
      the form Deb and Serfozo (1973) proved for batch service with one service mode (here,
      with three models and size-dependent service times, a finding). q* is 1 or 2 and not
      monotone in the rate: 2 for 260-320/s and from 345/s, 1 below 260/s and at 325-340/s
      (there one request is worth sending on LLM-1 at once).
    - Model: the model index never decreases with q (quality while the queue is short, speed
      when it is long): LLM-1, then LLM-2, then LLM-3. The switch points fall as the rate grows
      (LLM-2 from q = 6 at 200/s, q = 4 at 270/s, not at all from 295/s).
    - Batch: mostly the whole queue; not always: near a kink of the interpolated table (q = 4
      at 20/s, q = 10 at 100/s) and when a backlog builds, the policy sends part of the queue
      (several smaller batches finish earlier on average than one big one).
    - With ``timing.mode: pad`` (a batch runs as the next table size) the policy is not a
      control limit at every rate: it also waits just below a table size to fill it (q = 3 at
      230/s; q = 7 at 350/s; q = 5-7, 15 and 31 at 550/s).
    - Partial batches are worth little: the best policy that always sends the whole queue (the
      env's ``Discrete(1 + M)``, ``action_set="whole"``) costs at most 0.04% more.
    - The simulator's cost of this policy matches the solver's within 0.05% at every rate above
      (4M requests per rate, ``--simulate 4000000 --seeds 8``; docs/optimal.md).
"""

from agents.smdp.limits import ControlLimits, PolicyRun, control_limits
from agents.smdp.model import (
    ACTION_SETS,
    CAP_PROBABILITY,
    SMDPModel,
    build_smdp,
    check_action_set,
    check_supported,
    default_queue_cap,
)
from agents.smdp.solution import OptimalSolution, clear_cache, solve_optimal
from agents.smdp.solvers import (
    PolicyEvaluation,
    PolicyIterationResult,
    action_values,
    bellman_rates,
    evaluate_policy,
    policy_iteration,
    relative_value_iteration,
    single_threaded_blas,
)
from agents.smdp.staggered import solver_system, staggered_model

__all__ = [
    "ACTION_SETS",
    "CAP_PROBABILITY",
    "ControlLimits",
    "OptimalSolution",
    "PolicyEvaluation",
    "PolicyIterationResult",
    "PolicyRun",
    "SMDPModel",
    "action_values",
    "bellman_rates",
    "build_smdp",
    "check_action_set",
    "check_supported",
    "clear_cache",
    "control_limits",
    "default_queue_cap",
    "evaluate_policy",
    "policy_iteration",
    "relative_value_iteration",
    "single_threaded_blas",
    "solve_optimal",
    "solver_system",
    "staggered_model",
]
