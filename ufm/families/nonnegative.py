"""Nonnegative features, CE and label smoothing (Nguyen et al., ICLR 2023): ``nonneg-lpm`` (Model 1) and
``nonneg-ufm`` (Model 2).

W and H are optimised jointly (nothing of the closed form is assumed) from seeded restarts batched on the solver's
leading axis; H >= 0 and Model 1's budgets hold exactly at every iterate by reparametrisation (see
``ufm.objectives.nonnegative``). Restarts that end at spurious points (e.g. a dead class with h = 0) are counted
and reported with their loss.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ufm import driver
from ufm.algorithms.loss_scaling import solve_relative_to_loss
from ufm.algorithms.restarts import with_zero_start
from ufm.algorithms.rounding_floor import accept_gradient_floor
from ufm.checks import Check
from ufm.checks import nonnegative as checks
from ufm.checks.nonnegative import GEOMETRY_NAMES
from ufm.family import Assessment, Family
from ufm.objectives.nonnegative import (
    BOUNDS,
    EVALUATE,
    LOSSES,
    SCALED,
    factor_gradients,
    model2_loss,
    objective_data,
    random_params,
)
from ufm.objectives.nonnegative import scaled_model2_loss as _scaled_model2_loss
from ufm.problems.nonnegative import NonnegProblem
from ufm.report import Report
from ufm.solver import SolverOptions, best_element, minimise, peak_bytes
from ufm.theory.nonnegative import optimum_for as theory_for

__all__ = [
    "BOUNDS",
    "GEOMETRY_NAMES",
    "_scaled_model2_loss",
    "best_element",
    "minimise",
    "model2_loss",
    "objective_data",
    "random_params",
    "theory_for",
]
NAME = "nonneg"
DESCRIPTION = (
    "nonnegative features with CE / label smoothing: Model 1 (budgets), Model 2 (weight decay) (Nguyen et al.)"
)
VARIANTS = {"nonneg-lpm": "lpm", "nonneg-ufm": "ufm"}
FLAGS = {"alpha": "--ls-alpha", "E_W": "--E-W", "E_H": "--E-H", "lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
SOLVER = SolverOptions(
    rtol=1e-12,
    linear_solver="eigh",
    damping=1.0,
    quasi_newton_steps=3000,
    quasi_newton_rtol=1e-9,
    max_steps=300,
    label="nonneg",
)
# Passes of the solve on L / s (ufm.algorithms.loss_scaling): a gradient test relative to the loss where it is tiny.
MAX_PASSES, PASS_MARGIN = 8, 8.0
# Flags of this family that a variant does not read (the CLI refuses them when given explicitly).
UNUSED_FLAGS = {"nonneg-lpm": {"lambda_W", "lambda_H"}, "nonneg-ufm": {"E_W", "E_H"}}
# Stalls at a degenerate minimum's rounding floor (ufm.algorithms.rounding_floor): H = G*G makes every off-support
# entry of G with a zero multiplier (an unused feature coordinate, d > K) a null direction of the Hessian (Model 1,
# K = 3, n = 1, d = 5, M_max = 50: a restart STALLED at relative gradient ~1e-11, its geometry right to 2e-14; K = 4,
# alpha = 0.996, M_max = 50 = 3200 m*: stalled at 3.1e-9, the objective right to 1e-12, KKT within 1e-8). Accepted
# by the gradient test up to FLOOR_RTOL; the closed-form checks grade it like any other point.
FLOOR_RTOL = 1e-8


def _peak_bytes(K: int, n: int, d: int, batch: int) -> int:
    """Peak bytes of one solve (the passes run one after another) and the report's arrays, from sizes only.

    Variables per start ``K d + d N`` (N = K n); the dense Hessian (``ufm.solver.peak_bytes``) and the forward-mode
    intermediates of forming it, one set per variable (matrix-free: a few sets): the K x N logits and their ~7
    elementwise companions in the
    cross-entropy, and H = G*G with its products (3 d x N). Measured: the default nonneg-ufm run (K = 10, n = 4,
    d = 20, 6 restarts) peaks at 465 MB resident above the interpreter with jax loaded; this gives 463 MB."""
    N = K * n
    n_vars = K * d + d * N
    tangent = (8 * K * N + 3 * d * N) * 8
    data = (2 * K * N + d * N) * 8
    report = 2 * batch * n_vars * 8  # restart_W, restart_H and the per-start (W, H) copies
    return peak_bytes(n_vars, batch, SOLVER, data, tangent) + report


def memory_estimate(problem: NonnegProblem) -> tuple[int, str]:
    """Estimated peak bytes of ``run(problem)`` and the field that drives it: the size field (C, n, d, restarts)
    whose reduction to its minimum (2, 1, C, 1) would shrink the estimate most. Allocates nothing."""
    K, n, d, R = problem.C, problem.n, problem.d, problem.restarts
    zero = int(zero_start(problem))
    total = _peak_bytes(K, n, d, R + zero)
    at_minimum = {
        "C": _peak_bytes(2, n, d, R + zero),
        "n": _peak_bytes(K, 1, d, R + zero),
        "d": _peak_bytes(K, n, K, R + zero),
        "restarts": _peak_bytes(K, n, d, 1 + zero),
    }
    return total, min(at_minimum, key=at_minimum.get)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("nonnegative features (nonneg-lpm, nonneg-ufm)")
    group.add_argument("--C", type=int, default=10, help="classes K (>= 2)")
    group.add_argument("--n", type=int, default=4, help="samples per class (>= 1)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= K; default 2K)")
    group.add_argument("--ls-alpha", type=float, default=0.0, dest="alpha", help="label smoothing alpha in [0, 1)")
    group.add_argument("--E-W", type=float, default=1.0, dest="E_W", help="Model 1 classifier budget (> 0)")
    group.add_argument("--E-H", type=float, default=1.0, dest="E_H", help="Model 1 feature budget (> 0)")
    group.add_argument("--lambda-W", type=float, default=5e-3, dest="lambda_W", help="Model 2 weight decay of W (> 0)")
    group.add_argument("--lambda-H", type=float, default=5e-3, dest="lambda_H", help="Model 2 weight decay of H (> 0)")
    group.add_argument("--restarts", type=int, default=6, help="seeded random restarts (>= 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the restarts")


def problem_from_args(ns) -> NonnegProblem:
    return NonnegProblem(
        C=ns.C,
        n=ns.n,
        d=ns.d,
        model=VARIANTS[ns.loss],
        alpha=ns.alpha,
        E_W=ns.E_W,
        E_H=ns.E_H,
        lambda_W=ns.lambda_W,
        lambda_H=ns.lambda_H,
        restarts=ns.restarts,
        seed=ns.seed,
    )


def zero_start(problem: NonnegProblem) -> bool:
    """Whether W = 0, H = 0 is added to the starts: where the theory says it is the optimum (Model 2 with
    gamma_alpha >= (K-1)/K); elsewhere it is a saddle, and random restarts suffice."""
    return problem.model == "ufm" and bool(theory_for(problem)["zero"])


def batch_size(problem: NonnegProblem) -> int:
    """Starts solved: the restarts, plus the zero start where it applies."""
    return problem.restarts + int(zero_start(problem))


def accept_rounding_floor(sol, fun, args, args_of=None) -> tuple:
    """``ufm.algorithms.rounding_floor.accept_gradient_floor`` with this family's SOLVER and FLOOR_RTOL."""
    return accept_gradient_floor(sol, fun, args, args_of, options=SOLVER, rtol=FLOOR_RTOL)


def balance(problem: NonnegProblem) -> float:
    """Model 2's exact rescaling symmetry: with ``t = (lambda_H/lambda_W)^(1/4)``, ``(W, H) = (t W', H'/t)`` maps
    the problem with both weight decays ``sqrt(lambda_W lambda_H)`` onto the given one, value for value. The solve
    works on the balanced problem, whose factors are of one scale (at lambda_W/lambda_H = 1e15 the unbalanced one
    ran out of steps, 1.6 % above its optimum). Model 1: 1 (its budgets enter through normalisation only)."""
    return (problem.lambda_H / problem.lambda_W) ** 0.25 if problem.model == "ufm" else 1.0


def solve_with_floor(problem: NonnegProblem, options: SolverOptions | None = None, *, progress: bool = False):
    """Solve from the seeded restarts (plus W = H = 0 where :func:`zero_start`) on the balanced problem, by passes
    relative to the loss (``ufm.algorithms.loss_scaling``), stalls at the rounding floor accepted. Returns the
    Solution (``loss`` the model's objective, statuses after the floor test), each start's (W, H), the objective
    data and the accepted floors."""
    options = options or dataclasses.replace(SOLVER, progress=progress)
    data, solved, t = objective_data(problem), objective_data(problem), balance(problem)
    if problem.model == "ufm":  # the balanced problem: both weight decays sqrt(lambda_W lambda_H)
        both = jnp.sqrt(data.lambda_W * data.lambda_H)
        solved = data._replace(lambda_W=both, lambda_H=both)
    fun, evaluate = SCALED[problem.model], EVALUATE[problem.model]
    params = with_zero_start(random_params(problem, problem.model), zero_start(problem))
    sol, scale = solve_relative_to_loss(
        fun,
        params,
        solved,
        evaluate,
        options=options,
        nonnegative=BOUNDS[problem.model],
        max_passes=MAX_PASSES,
        margin=PASS_MARGIN,
    )
    sol, floor = accept_rounding_floor(sol, fun, (solved, jnp.asarray(scale)))
    sol = dataclasses.replace(sol, loss=np.asarray(evaluate(sol.params, solved)))
    factors = LOSSES[problem.model][1]
    WH = [
        tuple(np.asarray(a) for a in factors(jax.tree.map(lambda x, i=i: x[i], sol.params), solved))
        for i in range(sol.loss.size)
    ]
    return sol, [(t * W, H / t) for W, H in WH], data, floor


def solve(problem: NonnegProblem, *, progress: bool = False):
    """``(solution, [(W, H) per start], objective data)``: see :func:`solve_with_floor`."""
    return solve_with_floor(problem, progress=progress)[:3]


def assess(problem: NonnegProblem, sol, best: int, context, options: SolverOptions) -> Assessment:
    WH, data, floor = context
    t, K, labels, R = theory_for(problem), problem.C, problem.labels, problem.restarts
    W, H = WH[best]
    geo = [checks.geometry(w, h, labels, K) for w, h in WH]
    gW, gH = factor_gradients(problem.model, W, H, data)
    k = checks.kkt_residual(np.asarray(gW), W, np.asarray(gH), H, budgets=problem.model == "lpm")
    at_optimum = np.abs(sol.loss - t["objective"]) <= 1e-10 * abs(t["objective"])
    names = [f"restart {i}" if i < R else "zero start" for i in range(sol.loss.size)]
    spurious = [
        (names[i], float(sol.loss[i]), geo[i]["dead_classes"]) for i in range(sol.loss.size) if not at_optimum[i]
    ]
    unique, zero, lpm = t.get("unique", True), t.get("zero", False), problem.model == "lpm"
    accepted = "; ".join(f"{names[i]} ({g:.1e}, {fl:.1e})" for i, (g, fl) in floor.items())
    result = [
        checks.converged(
            "solver converged at the best restart",
            sol.status,
            sol.rel_grad_norm,
            best,
            options.rtol,
            f"{R} restarts" + (" + the zero start" if zero_start(problem) else ""),
            "; last pass on L/s, s the smallest loss: ||grad L||/max(s, L) <= rtol"
            + (
                f"; {len(floor)} stalled at the rounding floor of a degenerate minimum, accepted "
                f"(grad norm, f-resolvable gradient): {accepted}"
                if floor
                else ""
            ),
        ),
        checks.relative(
            "objective = closed form (rel)",
            sol.loss[best],
            t["objective"],
            checks.OBJECTIVE_TOL,
            f"solver {sol.loss[best]:.15g}, closed form {t['objective']:.15g} ({names[best]})",
        ),
        Check(
            "KKT residual (W, H >= 0" + (", budgets)" if lpm else ")"),
            k["residual"],
            checks.KKT_TOL,
            f"support {k['support']} of {H.size} entries"
            + (f", nu_W {k['nu_W']:.6g}, nu_H {k['nu_H']:.6g}" if lpm else ""),
        ),
        Check("H >= 0 exactly (min entry)", float(max(0.0, -H.min())), 0.0),
    ]
    if zero:
        why = (
            f"undefined at the optimum W = H = 0 (gamma_alpha = {t['gamma_alpha']:.6g} >= (K-1)/K): directions, "
            "cosines and ratios of zero vectors"
        )
        result.append(
            Check(
                "zero solution: ||W|| + ||H||",
                float(np.linalg.norm(W) + np.linalg.norm(H)),
                checks.GEOMETRY_TOL,
                f"gamma_alpha = {t['gamma_alpha']:.6g} >= (K-1)/K",
            )
        )
        result += [Check.undefined(name, why) for name in GEOMETRY_NAMES + ((checks.BOUNDARY_NAME,) if K == 2 else ())]
    else:
        result += checks.geometry_checks(problem, W, H, geo[best], t, checks.GEOMETRY_TOL if unique else None)
    result += [] if unique else [checks.not_unique(geo, at_optimum)]
    result.append(
        Check(
            "restarts at spurious points",
            float(len(spurious)),
            None,
            "; ".join(f"{name}: loss {l:.10g}, {dc} dead class(es)" for name, l, dc in spurious) or "none",
        )
    )
    head = (
        f"ufm nonnegative {'Model 1 (budgets)' if lpm else 'Model 2 (weight decay)'}: "
        f"K={K} n={problem.n} d={problem.d} alpha={problem.alpha:g} "
        + (
            f"E_W={problem.E_W:g} E_H={problem.E_H:g}"
            if lpm
            else f"lambda_W={problem.lambda_W:g} lambda_H={problem.lambda_H:g}"
        )
    )
    if lpm:
        second = f"closed form: L* = {t['objective']:.15g}, M_max = {t['M_max']:.12g}, m*_alpha = {t['m_star']:.6g}" + (
            "" if unique else "  (M_max > m*: value = entropy of q, minimisers not unique)"
        )
    else:
        second = (
            f"closed form: objective = {t['objective']:.15g}, margin = {t['margin']:.12g}, "
            f"gamma = {t['gamma']:.6g}, gamma_alpha = {t['gamma_alpha']:.6g}" + ("  (zero solution)" if zero else "")
        )
    numbers = {
        "theory": t,
        "objective": float(sol.loss[best]),
        "best": best,
        "restart_losses": sol.loss,
        "restart_status": sol.status,
        "rounding_floor": floor,
        "dead_classes": [x["dead_classes"] for x in geo],
        "kkt": k,
    }
    config = {
        "zero_start": zero_start(problem),
        "feasibility": (
            "H = G*G elementwise; W, H scaled onto the budget spheres"
            if lpm
            else "H >= 0 as a bound (projected Newton)"
        ),
    }
    failures = dict(sol.report()["failures"])
    if floor:  # reported beside the failures: converged, but only to f's rounding floor
        failures["stalled at f's rounding floor of a degenerate minimum (accepted as converged)"] = len(floor)
    arrays = {
        "W": W,
        "H": H,
        "labels": labels,
        "restart_losses": sol.loss,
        "restart_W": np.stack([w for w, _ in WH]),
        "restart_H": np.stack([h for _, h in WH]),
    }
    return Assessment([head, second], result, numbers, arrays, config, {"failures": failures})


FAMILY = Family(
    name=lambda problem: {"lpm": "nonneg-lpm", "ufm": "nonneg-ufm"}[problem.model],
    solver_options=lambda problem: SOLVER,
    arrays_name="solution.npz",
    assess=assess,
    solve=lambda problem, options: (lambda s: (s[0], s[1:]))(solve_with_floor(problem, options)),
)


def run(problem: NonnegProblem, *, progress: bool = True) -> Report:
    return driver.run(FAMILY, problem, progress=progress)
