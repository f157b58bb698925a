"""Square loss with weight decay (Rangamani & Banburski, ICASSP 2022): UFM (``mse``), deep UFM (``mse-deep``),
network (``mse-net``), through the shared driver (``ufm.driver.run``).

Joint nonconvex problems over all factors: seeded restarts plus the candidate W = H = 0 in one batch, in balanced
coordinates on a scaled objective (``ufm.objectives.square_loss.solve``); where a closed form exists
(``ufm.theory.square_loss.closed_form``) its POINT is also built and evaluated, so the comparison does not depend
on the luck of random starts near a threshold. The checks are ``ufm.checks.square_loss``.
"""

from __future__ import annotations

import numpy as np

from ufm import driver
from ufm.checks import square_loss as checks
from ufm.cli import add_problem_arguments, problem_flags
from ufm.family import Assessment, Family
from ufm.objectives import square_loss as objective
from ufm.objectives.square_loss import SOLVER, SquareLossSolution, solve, solver_options
from ufm.problems import InputError, from_namespace
from ufm.problems import square_loss as problems
from ufm.problems.square_loss import SquareLossProblem
from ufm.report import Report
from ufm.solver import SADDLE, SolverOptions
from ufm.theory.square_loss import closed_form

__all__ = ["SOLVER", "memory_estimate", "run", "solve", "solver_options"]

NAME = "mse"
DESCRIPTION = "square loss with weight decay: UFM, deep UFM, homogeneous network (Rangamani & Banburski 2022)"
VARIANTS = {
    "mse": {"model": "ufm", "layers": 1, "C": 10},
    "mse-deep": {"model": "ufm", "layers": 3, "C": 10},
    "mse-net": {"model": "net", "layers": 2, "C": 3},
}
FLAGS = problem_flags(SquareLossProblem)
MODEL_NAMES = {"ufm": "UFM", "net": "network on fixed inputs"}
# Flags (argparse dests) that do not apply to a variant; the CLI refuses them when given. mse is the one-layer
# UFM: its layer count is 1 by definition, it has no hidden layer for an activation, and its features are free
# (no inputs). mse-deep has free features too. mse-net has fixed inputs instead of features, so no lambda_H.
UNUSED_FLAGS = {"mse": {"layers", "activation", "inputs"}, "mse-deep": {"inputs"}, "mse-net": {"lambda_H"}}


def add_arguments(parser) -> None:
    # C and layers unset (None) unless typed: their defaults are the variant's (problem_from_args)
    add_problem_arguments(
        parser,
        SquareLossProblem,
        "square loss (mse, mse-deep, mse-net)",
        exclude=("model",),
        defaults={"C": None, "layers": None},
    )


def problem_from_args(ns) -> SquareLossProblem:
    variant = VARIANTS[ns.loss]
    layers = ns.layers if ns.layers is not None else variant["layers"]
    if variant["model"] == "net" and layers == 1 and ns.d is not None:
        raise InputError("d", "a one-layer network has no hidden layer, so no width to set")
    C = ns.C if ns.C is not None else variant["C"]
    return from_namespace(SquareLossProblem, ns, C=C, layers=layers, model=variant["model"])


def memory_estimate(problem: SquareLossProblem) -> tuple[int, str]:
    """Estimated peak bytes of :func:`run` and the field that drives it (``ufm.problems.square_loss``)."""
    return problems.memory_estimate(problem, SOLVER)


def steps(problem: SquareLossProblem, options: SolverOptions):
    """The family's solve as steps (``ufm.algorithms.batched``): one solver call, then the result."""
    found = objective.solve_result(problem, options, (yield objective.solve_request(problem, options)))
    return found.solution, found


def assess(problem: SquareLossProblem, sol, best: int, found: SquareLossSolution, _) -> Assessment:
    data, t = objective.objective_data(problem), closed_form(problem)
    gradient = float(sol.rel_grad_norm[best]) * max(1.0, abs(float(sol.loss[best]))) * found.scale  # ||grad f||
    result, numbers = checks.solution_checks(problem, found.params, data, t, bool(sol.converged[best]), gradient)
    kinks = checks.relu_kinks(problem, found.params, data)
    result[:0] = checks.convergence_checks(problem, found, kinks)
    headline = [
        f"ufm square loss, {MODEL_NAMES[problem.model]}: C={problem.C} n={problem.n} L={problem.layers} d={problem.d} "
        f"activation={problem.activation} bias={problem.bias} lambda_W={problem.lambda_W:g}"
        + (f" lambda_H={problem.lambda_H:g}" if problem.model == "ufm" else f" inputs={problem.inputs}")
    ]
    if t is None:
        headline.append("closed form: none known for this configuration (identities and NC metrics only)")
    else:
        point = objective.evaluate(objective.closed_form_point(problem, t["Z"], t["b"]), data)
        numbers["closed_form"] = {k: v for k, v in t.items() if k not in ("Z", "outputs", "WWt")}
        numbers["closed_form_point"] = {"objective": point[0], "rel_grad_norm": point[1]}
        result += checks.closed_form_point_checks(problem, found, t, point, numbers["objective"], kinks)
        headline.append(
            f"closed form: objective {t['objective']:.15g}  eps {t['eps']:.12g}"
            + (
                f"  x* {t['x']:.12g}  beta {t['beta']:.6g} (threshold {t['beta_c']:.6g})"
                if "x" in t
                else f"  rho {t['rho']:.6g}"
            )
            + ("  (W = H = 0)" if t["zero"] else "")
        )
    result.append(checks.restarts_at_best(problem, found))
    headline.append(
        f"best restart {best} ({found.labels[best]}): objective {numbers['objective']:.15g}, eps {numbers['eps']:.12g}"
    )
    numbers.update({f"restart_{k}": getattr(found, f"restart_{k}") for k in ("losses", "ranks", "status")})
    numbers["restart_starts"] = found.labels
    saddles = [i for i, st in enumerate(found.restart_status) if st == SADDLE]
    convergence = {
        "elements": found.labels,
        "saddle_restarts": saddles,
        "saddle_starts": [found.labels[i] for i in saddles],
        "objective_scale": found.scale,
        "balanced_decay": objective.balanced_decay(problem),
        "note": "gradients are of f / objective_scale in balanced coordinates; --restarts random "
        "restarts plus the candidate W = H = 0 where it applies",
    }
    arrays = {f"W{i + 1}": np.asarray(W) for i, W in enumerate(found.params["layers"])}
    arrays.update({k: np.asarray(found.params[k]) for k in ("H", "b") if k in found.params})
    F, h = objective.forward(found.params, data)
    arrays.update({"F": np.asarray(F), "features": np.asarray(h), "labels": problem.labels})
    arrays["restart_losses"] = found.restart_losses
    return Assessment(headline, result, numbers, arrays, convergence=convergence)


FAMILY = Family(
    name=lambda p: {"ufm": "mse" if p.layers == 1 else "mse-deep", "net": "mse-net"}[p.model],
    solver_options=solver_options,
    solve=None,  # from steps
    assess=assess,
    arrays_name="solution.npz",
    steps=steps,
)


def run(problem: SquareLossProblem, *, progress: bool = True, max_memory_bytes: int | None = None) -> Report:
    """Solve every restart and the W = H = 0 candidate, and check the best against the closed form where one is
    known (identities and NC metrics everywhere), through the shared driver (``ufm.driver.run``)."""
    return driver.run(FAMILY, problem, progress=progress, max_memory_bytes=max_memory_bytes)
