"""Two-layer unconstrained-features model with input mixup (the per-layer question of Chaudhry et al.): ERM,
two-point mixup and the consistency (ICT) loss, each trained from seeded restarts; NonLin of their eq. (3) per layer.

Restarts: the problem is nonconvex; each rule's best restart is ``ufm.solver.best_element``'s (the lowest
converged, unless an unconverged one is lower beyond rounding: then that one, graded and failed). Restarts that
ended at a saddle (status SADDLE), stalled or ran out of steps are counted in the convergence record and in the
convergence check's detail; if every restart of a rule fails, its convergence check fails naming the status.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ufm import driver
from ufm.algorithms.continuation import continuation_steps
from ufm.algorithms.restarts import concatenate
from ufm.checks import mixup_deep as checks
from ufm.checks.mixup_deep import layer_nonlinearity  # noqa: F401 (a public name)
from ufm.family import Assessment, Family
from ufm.objectives.mixup_deep import (  # noqa: F401 (public names: memory_estimate is read by ufm.solve)
    RELU_SHARPNESS,
    SOLVER,
    accept_rounding_floor,
    initial_params,
    memory_estimate,
    rule_data,
    smooth_loss,
    stages,
)
from ufm.problems import InputError, from_namespace
from ufm.problems.mixup_deep import MAX_NODES, RULES, MixupDeepProblem
from ufm.report import Report
from ufm.solver import SolverOptions, best_element

NAME = "mixup-deep"
DESCRIPTION = "two-layer UFM with input mixup: ERM vs mixup vs consistency loss, NonLin per layer (Chaudhry et al.)"
FLAGS = {"n_lambdas": "--lambdas", "mu_v": "--mu-v", "eval_lambdas": "--eval-lambdas"}
# One variant; --sharpness (softplus only) and --m (fixed classifier only) depend on other flags and are refused
# by problem_from_args where they do not apply.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}
ARGUMENTS = (  # flag, type, default, help (the problem's field: FLAGS, else the flag without dashes)
    ("--C", int, 4, "number of classes (>= 2)"),
    ("--d0", int, None, "first-layer feature dimension (>= 1; default C)"),
    ("--d1", int, None, "hidden width (default 2C; >= C-1 with a fixed ETF)"),
    ("--activation", str, "relu", "relu (default; reached by softplus continuation), softplus (smooth) or linear"),
    (
        "--sharpness",
        float,
        None,
        "softplus sharpness s: softplus(s x)/s (in [0.1, 1e6]; default 10; only with --activation softplus)",
    ),
    ("--classifier", str, "learned", "learned (default) or fixed (a simplex ETF, randomly embedded in R^d1 by --seed)"),
    (
        "--m",
        float,
        None,
        "ETF multiplier of the fixed classifier (in [1e-2, 1e2]; default 1; only with --classifier fixed)",
    ),
    ("--mu", float, 1e-2, "weight decay of the free features (in [1e-6, 1e6])"),
    (
        "--mu-v",
        float,
        1e-2,
        "weight decay of the layer (and of a learned classifier) (in [1e-6, 1e6]; mu / mu_v in [1e-4, 1e4])",
    ),
    ("--alpha", float, 1.0, "mixup lam ~ Beta(alpha, alpha) (in [1e-6, 1e6])"),
    ("--lambdas", int, 6, f"Gauss-Jacobi nodes for the expectation over lam (1 .. {MAX_NODES})"),
    ("--consistency", float, 1.0, "weight of the consistency loss (in [0, 10])"),
    ("--restarts", int, 8, "seeded random starts per rule (>= 1)"),
    ("--eval-lambdas", int, 99, "lam values per class pair at which NonLin is evaluated (>= 1)"),
    ("--seed", int, 0, "seed of the ETF embedding and of the random starts"),
)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mixup-deep")
    dests = {flag: field for field, flag in FLAGS.items()}
    for flag, kind, default, what in ARGUMENTS:
        group.add_argument(flag, type=kind, default=default, dest=dests.get(flag, flag[2:]), help=what)


def problem_from_args(ns) -> MixupDeepProblem:
    if ns.sharpness is not None and ns.activation != "softplus":
        raise InputError(
            "sharpness",
            "only used with --activation softplus (relu is reached by continuation "
            f"through s = {', '.join(f'{s:g}' for s in RELU_SHARPNESS)})",
        )
    if ns.m is not None and ns.classifier != "fixed":
        raise InputError("m", "only used with --classifier fixed (a learned classifier has no multiplier)")
    return from_namespace(MixupDeepProblem, ns, defaults=("sharpness", "m"))


def train(problem: MixupDeepProblem, rule: str, *, options: SolverOptions = SOLVER, progress: bool = False):
    """All restarts of one rule, through every stage of ``stages`` (``ufm.algorithms.continuation``), as steps
    (``ufm.algorithms.batched``: yields each stage's solver call; ``drive(train(...))`` runs it alone).

    Returns (solution of the last stage, with the compilation and solve times of all stages; best params, index
    of the best restart, data, per-stage records). The solution's statuses count restarts stalled at the rounding
    floor of a degenerate minimum as converged (``accept_rounding_floor``); each record's ``floor`` maps them to
    (predicted decrease, f's window).
    """
    data = rule_data(problem, rule)
    loss = smooth_loss("softplus" if problem.activation == "relu" else problem.activation)
    best_params = lambda sol: {k: v[best_element(sol)] for k, v in sol.params.items()}
    sol, history = yield from continuation_steps(
        loss,
        initial_params(problem),
        data,
        stages(problem),
        # the sharpness is data: every stage calls the same objective on arrays of the same shapes, so the solve
        # compiled for the first stage serves the others
        lambda d, s: d._replace(sharpness=jnp.asarray(s, dtype=jnp.float64)),
        dataclasses.replace(options, progress=progress),
        label=rule,
        accept=lambda sol, stage_data: accept_rounding_floor(sol, loss, stage_data, options.damping),
        record=lambda s, sol, _, floor: checks.stage_record(problem, s, sol, best_element(sol), floor, data),
    )
    return sol, best_params(sol), best_element(sol), data, history


def steps(problem: MixupDeepProblem, options: SolverOptions):
    """The family's solve as steps: every rule's restarts (``train``), one rule after another, as one solution of
    ``len(RULES) x restarts`` elements in rule order (the driver's best over all of them is not used: each rule is
    graded at its own best restart)."""
    trained = {}
    for rule in RULES:
        trained[rule] = yield from train(problem, rule, options=options, progress=options.progress)
    return concatenate([t[0] for t in trained.values()]), trained


def assess(problem: MixupDeepProblem, _, __, trained: dict, options: SolverOptions) -> Assessment:
    result, table, conv, numbers, arrays = [], {}, {}, {}, {}
    for rule, (sol, params, best, data, history) in trained.items():
        table[rule] = history[-1]["nonlin"]
        result += checks.rule_checks(problem, rule, sol, best, data, history, params, options.rtol)
        conv[rule] = {**sol.report(), "converged_at_rounding_floor": len(history[-1]["floor"])}
        numbers[rule] = dict(loss=float(sol.loss[best]), losses=sol.loss.tolist(), nonlin=table[rule], stages=history)
        arrays.update({f"{rule}_{k}": np.asarray(v) for k, v in params.items()})
        arrays[f"{rule}_losses"] = sol.loss
    verdicts, tol = checks.seed_finding(table, result)
    numbers["seed_finding"] = verdicts
    convergence = checks.convergence_record(conv)
    headline = checks.headline(problem, table, {rule: numbers[rule]["loss"] for rule in RULES}, verdicts, tol)
    return Assessment(headline, result, numbers, arrays, convergence=convergence)


FAMILY = Family(
    name=lambda problem: NAME,
    solver_options=lambda problem: SOLVER,
    solve=None,  # from steps
    steps=steps,
    assess=assess,
    arrays_name="params.npz",
)


def run(problem: MixupDeepProblem, *, progress: bool = True, max_memory_bytes: int | None = None) -> Report:
    return driver.run(FAMILY, problem, progress=progress, max_memory_bytes=max_memory_bytes)
