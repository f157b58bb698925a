"""Nonnegative features, CE and label smoothing (Nguyen et al., ICLR 2023): ``nonneg-lpm`` (Model 1) and
``nonneg-ufm`` (Model 2).

W and H are optimised jointly (nothing of the closed form is assumed) from seeded restarts batched on the solver's
leading axis; H >= 0 and Model 1's budgets hold exactly at every iterate by reparametrisation (see
``ufm.objectives.nonnegative``). Restarts that end at spurious points (e.g. a dead class with h = 0) are counted
and reported with their loss.
"""

from __future__ import annotations

import numpy as np

from ufm import driver
from ufm.checks import nonnegative as checks
from ufm.checks.nonnegative import GEOMETRY_NAMES
from ufm.cli import add_problem_arguments, problem_flags
from ufm.family import Assessment, Family
from ufm.objectives.nonnegative import (
    BOUNDS,
    FLOOR_RTOL,
    MAX_PASSES,
    PASS_MARGIN,
    SOLVER,
    accept_rounding_floor,
    balance,
    batch_size,
    floor_steps,
    memory_estimate,
    model2_loss,
    objective_data,
    random_params,
    solve_with_floor,
    solver_options,
    zero_start,
)
from ufm.objectives.nonnegative import scaled_model2_loss as _scaled_model2_loss
from ufm.problems import from_namespace
from ufm.problems.nonnegative import NonnegProblem
from ufm.report import Report
from ufm.solver import SolverOptions, best_element, minimise
from ufm.theory.nonnegative import optimum_for as theory_for

__all__ = [  # names read from this module by the tests, benchmarks, figures and certificates
    "BOUNDS",
    "FLOOR_RTOL",
    "GEOMETRY_NAMES",
    "MAX_PASSES",
    "PASS_MARGIN",
    "SOLVER",
    "_scaled_model2_loss",
    "accept_rounding_floor",
    "balance",
    "batch_size",
    "best_element",
    "memory_estimate",
    "minimise",
    "model2_loss",
    "objective_data",
    "random_params",
    "solve_with_floor",
    "solver_options",
    "theory_for",
    "zero_start",
]
NAME = "nonneg"
DESCRIPTION = (
    "nonnegative features with CE / label smoothing: Model 1 (budgets), Model 2 (weight decay) (Nguyen et al.)"
)
VARIANTS = {"nonneg-lpm": "lpm", "nonneg-ufm": "ufm"}
FLAGS = problem_flags(NonnegProblem)
# Flags of this family that a variant does not read (the CLI refuses them when given explicitly).
UNUSED_FLAGS = {"nonneg-lpm": {"lambda_W", "lambda_H"}, "nonneg-ufm": {"E_W", "E_H"}}


def add_arguments(parser) -> None:
    add_problem_arguments(parser, NonnegProblem, "nonnegative features (nonneg-lpm, nonneg-ufm)", exclude=("model",))


def problem_from_args(ns) -> NonnegProblem:
    return from_namespace(NonnegProblem, ns, model=VARIANTS[ns.loss])


def solve(problem: NonnegProblem, *, progress: bool = False):
    """``(solution, [(W, H) per start], objective data)``: see ``ufm.objectives.nonnegative.solve_with_floor``."""
    return solve_with_floor(problem, progress=progress)[:3]


def assess(problem: NonnegProblem, sol, best: int, context, options: SolverOptions) -> Assessment:
    WH, data, floor = context
    result, numbers = checks.solution_checks(problem, sol, best, WH, data, floor, options.rtol)
    config = {
        "zero_start": zero_start(problem),
        "feasibility": (
            "H = G*G elementwise; W, H scaled onto the budget spheres"
            if problem.model == "lpm"
            else "H >= 0 as a bound (projected Newton)"
        ),
    }
    failures = dict(sol.report()["failures"])
    if floor:  # reported beside the failures: converged, but only to f's rounding floor
        failures["stalled at f's rounding floor of a degenerate minimum (accepted as converged)"] = len(floor)
    W, H = WH[best]
    arrays = {
        "W": W,
        "H": H,
        "labels": problem.labels,
        "restart_losses": sol.loss,
        "restart_W": np.stack([w for w, _ in WH]),
        "restart_H": np.stack([h for _, h in WH]),
    }
    return Assessment(checks.headline(problem), result, numbers, arrays, config, {"failures": failures})


def steps(problem: NonnegProblem, options: SolverOptions):
    """The family's solve as steps (``ufm.algorithms.batched``): ``(solution, (per-start (W, H), data, floor))``."""
    solution, *context = yield from floor_steps(problem, options)
    return solution, tuple(context)


FAMILY = Family(
    name=lambda problem: {"lpm": "nonneg-lpm", "ufm": "nonneg-ufm"}[problem.model],
    solver_options=solver_options,
    arrays_name="solution.npz",
    assess=assess,
    solve=None,  # from steps
    steps=steps,
)


def run(problem: NonnegProblem, *, progress: bool = True, max_memory_bytes: int | None = None) -> Report:
    return driver.run(FAMILY, problem, progress=progress, max_memory_bytes=max_memory_bytes)
