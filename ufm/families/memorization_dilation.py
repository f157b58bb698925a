"""Model 3, memorization-dilation (after Nguyen et al., ICLR 2023; our formalisation): ``md``.

Model 2 (nonnegative UFM with weight decay) on noisy labels with the hard coupling ``c_k = M_k - r D_k <= 0``
(limited expressivity), solved in (W, H) by the augmented-Lagrangian outer loop
``ufm.algorithms.augmented_lagrangian`` around the shared solver, whose inner solves keep H >= 0 as a bound
(projected Newton, as Model 2; objective, data and settings: ``ufm.objectives.memorization_dilation``): it stops
when every restart's inner solve converged and its constraint residual

    V_k = max(c_k, -nu_k / rho)        (nu the multipliers the inner problem used)

is below ``AL_TOL`` relative to ``r D_k``; ``|V_k|`` is zero exactly when ``c_k <= 0``, ``nu_k >= 0`` and
``nu_k c_k = 0`` (feasibility and complementarity).

The end point is certified in (W, H) (``ufm.checks.memorization_dilation``). Where the theory proves W = H = 0
optimal (``ufm.theory.nonnegative.model3_zero_solution_optimal``), that known critical point is the candidate:
the coupling is not differentiable at H = 0 (D and M are norms), so it is evaluated, not a solver start, and the
restarts must not end below it. One point runs through the shared driver (``ufm.driver.run``); ``--sweep r`` is a
grid of such solves on identical data, reported as one curve.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ufm import driver
from ufm.algorithms.augmented_lagrangian import constraint_residual  # noqa: F401 (read by the tests)
from ufm.algorithms.batched import drive, drive_together
from ufm.checks import memorization_dilation as checks
from ufm.checks.memorization_dilation import CONVERGED_NAME, KKT, measures, solution_checks  # noqa: F401 (tests)
from ufm.cli import add_problem_arguments, problem_flags
from ufm.family import Assessment, Family
from ufm.objectives.memorization_dilation import (  # noqa: F401 (RHO_MAX, next_penalty: read by the tests)
    RHO_MAX,
    SOLVER,
    extra_config,
    memory_estimate,
    next_penalty,
    solve,
    solve_steps,
)
from ufm.precision import float64
from ufm.problems import InputError, from_namespace
from ufm.problems.nonnegative import MemorizationDilationProblem
from ufm.report import Report, progress_bar
from ufm.solver import SolverOptions
from ufm.sweeps import default_joint_batch

NAME = "md"
DESCRIPTION = "memorization-dilation: nonnegative UFM, label noise, coupling M_k <= r D_k (Model 3)"
FLAGS = problem_flags(MemorizationDilationProblem)
UNUSED_FLAGS: dict[str, set[str]] = {"md": set()}  # --r and --ls-alpha with --sweep r: refused in problem_from_args
SWEEP_R = (0.25, 0.5, 1.0, 2.0, 4.0)
SWEEP_ALPHAS = (0.0, 0.1, 0.3)


def add_arguments(parser) -> None:
    # --r and --ls-alpha unset (None) unless typed: refused with --sweep r, which sets them
    group = add_problem_arguments(
        parser, MemorizationDilationProblem, "memorization-dilation (md)", defaults={"r": None, "alpha": None}
    )
    group.add_argument(
        "--sweep",
        choices=["r"],
        default=None,
        help=f"sweep r over {SWEEP_R} for CE and LS alphas {SWEEP_ALPHAS[1:]} on the same data",
    )


def problem_from_args(ns) -> MemorizationDilationProblem:
    if ns.sweep == "r":
        for field, value in (("r", ns.r), ("alpha", ns.alpha)):
            if value is not None:
                raise InputError(
                    field,
                    f"not used with --sweep r (the sweep sets r to {list(SWEEP_R)} and alpha to {list(SWEEP_ALPHAS)})",
                )
    return from_namespace(MemorizationDilationProblem, ns, defaults=("r", "alpha"))  # --r, --ls-alpha: 1, 0


def run_options(ns) -> dict:
    # only where they change what ``run`` does: a sweep's configurations without them may share batched solves
    return {"sweep_r": True} if ns.sweep == "r" else {}


def sweep(
    problem: MemorizationDilationProblem,
    *,
    r_values=SWEEP_R,
    alphas=SWEEP_ALPHAS,
    progress: bool = True,
    options: SolverOptions | None = None,
):
    """Dilation vs memorization over r for CE (alpha = 0) and LS alphas, on identical data (same seed): the curve
    (``ufm.checks.memorization_dilation.SWEEP_COLUMNS``), the failed checks, one line each, and the solver's
    ``(compile, solve)`` seconds over all points; ``options``: the solver's (None: ``SOLVER``)."""
    grid = [(alpha, r) for alpha in alphas for r in r_values]
    step = progress_bar("md sweep", len(grid), quiet=not progress)
    points = [dataclasses.replace(problem, r=float(r), alpha=float(alpha)) for alpha, r in grid]
    # on an accelerator every point's inner solves, round by round, in one batched solve (they share their
    # shapes); on the CPU one point after another, measured faster there (ufm.sweeps.default_joint_batch)
    steps = [solve_steps(p, options=options) for p in points]
    joint = default_joint_batch() > 1
    outs = drive_together(steps)[0] if joint else [drive(s) for s in steps]
    # each point's Solution carries the seconds of the solves it took part in: its own one after another (summed
    # over the points); joined, those of every joint solve of its rounds, and the point with the most rounds was
    # in all of them (its seconds are the total)
    total = max if joint else sum
    seconds = tuple(total(getattr(out["solution"], f"{kind}_seconds") for out in outs) for kind in ("compile", "solve"))
    rows, failures = [], []
    for (alpha, r), p, out in zip(grid, points, outs):
        result, meas = solution_checks(p, out)
        failures += [f"alpha={alpha:g} r={r:g}: {c.name} ({c.detail})" for c in result if not c.passed]
        rows.append(checks.sweep_row(alpha, r, out, meas))
        step()
    arr = np.array(rows, dtype=float)
    return {name: arr[:, i] for i, name in enumerate(checks.SWEEP_COLUMNS)}, failures, seconds


def steps(problem: MemorizationDilationProblem, options: SolverOptions):
    """The family's solve as steps (``ufm.algorithms.batched``): the augmented Lagrangian's inner solves."""
    out = yield from solve_steps(problem, progress=options.progress, options=options)
    return out["ranked"], out


def assess(problem: MemorizationDilationProblem, ranked, best: int, out: dict, options: SolverOptions) -> Assessment:
    result, meas = solution_checks(problem, out)
    arrays, numbers, failures = checks.solution_record(problem, out, meas)
    lines = checks.headline(problem, out, meas)
    return Assessment(lines, result, numbers, arrays, config=extra_config(), convergence={"failures": failures})


FAMILY = Family(
    name=lambda problem: NAME,
    solver_options=lambda problem: SOLVER,
    solve=None,  # from steps
    steps=steps,
    assess=assess,
    arrays_name="solution.npz",
)


@float64
def run(
    problem: MemorizationDilationProblem,
    *,
    progress: bool = True,
    sweep_r: bool = False,
    max_memory_bytes: int | None = None,
) -> Report:
    """One point through the shared driver, or (``sweep_r``) the r sweep for CE and the LS alphas (``max_memory_bytes``:
    the solver's memory budget, as in ``ufm.driver.run``)."""
    if not sweep_r:
        return driver.run(FAMILY, problem, progress=progress, max_memory_bytes=max_memory_bytes)
    options = driver.with_memory_budget(SOLVER, max_memory_bytes)
    t0 = time.perf_counter()
    config = {"loss": NAME, **dataclasses.asdict(problem), "solver": dataclasses.asdict(options), **extra_config()}
    curve, failures, seconds = sweep(problem, progress=progress, options=options)
    config["sweep"] = {"r": list(SWEEP_R), "alphas": list(SWEEP_ALPHAS)}
    result, verdict = checks.sweep_checks(curve, failures, SWEEP_ALPHAS)
    lines = checks.sweep_headline(problem, curve, SWEEP_R, SWEEP_ALPHAS)
    conv = checks.sweep_convergence(curve, failures, SOLVER.rtol, seconds)
    numbers = {"verdict": verdict, "seconds": time.perf_counter() - t0}
    return Report(NAME, config, lines, result, conv, numbers, curve, "curve.npz")
