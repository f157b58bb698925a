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
from ufm.cli import add_problem_arguments, problem_flags
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
from ufm.problems.mixup_deep import RULES, MixupDeepProblem
from ufm.report import Report
from ufm.solver import SolverOptions, best_element

NAME = "mixup-deep"
DESCRIPTION = "two-layer UFM with input mixup: ERM vs mixup vs consistency loss, NonLin per layer (Chaudhry et al.)"
FLAGS = problem_flags(MixupDeepProblem)
# One variant; --sharpness (softplus only) and --m (fixed classifier only) depend on other flags and are refused
# by problem_from_args where they do not apply.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def add_arguments(parser) -> None:
    # --sharpness and --m unset (None) unless typed: refused where they do not apply
    add_problem_arguments(parser, MixupDeepProblem, "mixup-deep", defaults={"sharpness": None, "m": None})


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
