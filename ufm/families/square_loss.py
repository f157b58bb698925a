"""Square loss with weight decay (Rangamani & Banburski, ICASSP 2022): UFM (``mse``), deep UFM (``mse-deep``),
network (``mse-net``).

Joint nonconvex problems over all factors: seeded restarts batched on the solver's leading axis, L-BFGS then
saddle-free Newton polish. Where a closed form exists (linear models with bias none/free, the one-layer UFM with a
decayed bias, networks on orthonormal inputs) the closed-form POINT is also built and evaluated (objective and
gradient norm), so the comparison does not depend on the luck of random starts near a threshold.

How a run is solved (:func:`solve`):

- ``--restarts R`` seeded random starts, plus one candidate start at the known critical point W = H = 0 (every
  factor and the bias zero; see :func:`zero_candidate` for where it is added), R + 1 batch elements in all. The
  solver classifies the candidate: a minimum for deep models and past the threshold, a saddle (left by the escape
  step) below it; so a restart stuck at a nonzero local minimum is never returned when W = H = 0 is lower.
- Balanced coordinates: factor i is solved as ``theta_i sqrt(lambda_i / Lambda)`` (Lambda the geometric mean of
  the factor decays), which turns every factor decay into Lambda and leaves the product, hence the data term,
  unchanged (the scales multiply to 1; ReLU is positively homogeneous). Unequal decays then cost no conditioning
  (lambda_W = 1e-9, lambda_H = 100 put W's and H's curvatures 1e11 apart). A decayed bias is solved as
  ``b sqrt(1 + lambda_b)`` (curvature 1, like the outputs).
- Small decays: the objective handed to the solver is ``f / s`` with ``s = beta / 4`` where ``beta = K n^(1/m)
  Lambda < 1e-3`` (m factors; see :func:`objective_scale`), a lower bound of the linear optimum's objective up to
  a small factor: the solver's rounding window and relative gradient are relative to ``max(1, |f|)``, so for an
  objective of 1e-8 (decays 1e-9) they would be absolute and the Newton polish could not tell its steps apart
  (all restarts STALLED at relative gradient 1e-9 before this scaling).
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from ufm import metrics
from ufm.checks import Check
from ufm.checks import square_loss as checks
from ufm.objectives.square_loss import (
    SOLVER,
    SquareLossData,
    SquareLossSolution,
    balanced_decay,
    closed_form_point,
    evaluate,
    forward,
    objective_data,
    solve,
    square_loss,
    zero_candidate,
)
from ufm.problems import InputError
from ufm.problems import square_loss as problems
from ufm.problems.square_loss import SquareLossProblem
from ufm.report import Report
from ufm.solver import (
    SADDLE,
    STATUS_MESSAGES,
)
from ufm.theory import square_loss as theory
from ufm.theory.square_loss import closed_form

NAME = "mse"
DESCRIPTION = "square loss with weight decay: UFM, deep UFM, homogeneous network (Rangamani & Banburski 2022)"
VARIANTS = {
    "mse": {"model": "ufm", "layers": 1, "C": 10},
    "mse-deep": {"model": "ufm", "layers": 3, "C": 10},
    "mse-net": {"model": "net", "layers": 2, "C": 3},
}
FLAGS = {"lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
# Flags (argparse dests) that do not apply to a variant; the CLI refuses them when given. mse is the one-layer
# UFM: its layer count is 1 by definition, it has no hidden layer for an activation, and its features are free
# (no inputs). mse-deep has free features too. mse-net has fixed inputs instead of features, so no lambda_H.
UNUSED_FLAGS = {"mse": {"layers", "act", "inputs"}, "mse-deep": {"inputs"}, "mse-net": {"lambda_H"}}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("square loss (mse, mse-deep, mse-net)")
    group.add_argument("--C", type=int, default=None, help="classes (>= 2; default 10, mse-net 3)")
    group.add_argument("--n", type=int, default=5, help="samples per class (>= 1)")
    group.add_argument(
        "--layers", type=int, default=None, help="weight layers L (>= 1; default mse-deep 3, mse-net 2; mse has 1)"
    )
    group.add_argument("--act", default="linear", help="activation between layers: linear or relu (layers >= 2)")
    group.add_argument("--bias", default="none", help="none, free, or a bias weight decay lambda_b in [1e-9, 1e3]")
    group.add_argument(
        "--lambda-W", type=float, default=5e-3, dest="lambda_W", help="weight decay of every layer (in [1e-9, 1e6])"
    )
    group.add_argument(
        "--lambda-H", type=float, default=5e-3, dest="lambda_H", help="feature weight decay (in [1e-9, 1e6]; UFMs only)"
    )
    group.add_argument("--d", type=int, default=None, help="width / feature dimension (>= C; default C)")
    group.add_argument("--inputs", default="orthonormal", help="mse-net inputs: orthonormal or gaussian")
    group.add_argument(
        "--restarts",
        type=int,
        default=4,
        help="seeded random restarts (>= 1); a candidate start at W = H = 0 is added to them",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of restarts and inputs")


def problem_from_args(ns) -> SquareLossProblem:
    variant = VARIANTS[ns.loss]
    layers = ns.layers if ns.layers is not None else variant["layers"]
    if variant["model"] == "net" and layers == 1 and ns.d is not None:
        raise InputError("d", "a one-layer network has no hidden layer, so no width to set")
    return SquareLossProblem(
        C=ns.C if ns.C is not None else variant["C"],
        n=ns.n,
        layers=layers,
        model=variant["model"],
        act=ns.act,
        bias=ns.bias,
        lambda_W=ns.lambda_W,
        lambda_H=ns.lambda_H,
        d=ns.d,
        inputs=ns.inputs,
        restarts=ns.restarts,
        seed=ns.seed,
    )


def memory_estimate(problem: SquareLossProblem) -> tuple[int, str]:
    """Estimated peak bytes of :func:`run` and the field that drives it (``ufm.problems.square_loss``)."""
    return problems.memory_estimate(problem, SOLVER)


# --------------------------------------------------------------------------------------------------------------
# Checks at a solution
# --------------------------------------------------------------------------------------------------------------


def _zero_checks(problem: SquareLossProblem, F_W: np.ndarray, t: dict | None) -> tuple[bool, str, list]:
    """Is the solution W = H = 0? Decided by the closed form (the theory's product is exactly 0) and by the
    solver's point (its product ``F - b 1^T`` below ``ZERO_TOL ||Y||``). Returns (zero, reason, checks): when
    either says zero the geometry is undefined (VOID with ``reason``, which says who decided); a disagreement of the
    two is a graded failing check."""
    Y = problem.targets()
    size = float(np.linalg.norm(F_W) / np.linalg.norm(Y))
    solver_zero = size <= checks.ZERO_TOL
    cf_zero = t is not None and bool(t["zero"])
    if not (solver_zero or cf_zero):
        return False, "", []
    reason = "W = H = 0 " + (
        "(closed form and solver)" if solver_zero and cf_zero else "(closed form)" if cf_zero else "(solver's point)"
    )
    out = []
    if t is not None:
        cf_size = float(np.linalg.norm(t["Z"]) / np.linalg.norm(Y))
        # graded where the closed form is the optimum (linear models); for ReLU it is a known critical point only
        out.append(
            Check(
                "zero solution: solver's product = closed form's (||F - b 1^T|| / ||Y||, abs)",
                abs(size - cf_size),
                checks.ZERO_TOL if t["asserted"] else None,
                f"solver {size:.3g}, closed form {cf_size:.3g} ({'zero' if cf_zero else 'nonzero'})",
            )
        )
    return True, reason, out


def decayed_bias_tolerance(problem: SquareLossProblem, t: dict, gradient: float) -> float:
    """Tolerance of the decayed-bias check, ``b = (1 - g)/(K (1 + lambda_b)) 1`` (A3): GEOMETRY_TOL, or the float64
    floor ``ROUNDING / (1 - g)`` of the closed form's cancellation 1 - g (~ 2 rho at small decays), plus the
    point's own error ``2 ||grad f|| / (mu ||b||)``: mu is the smallest curvature along the bias in its balanced
    scale b sqrt(1 + lambda_b), 1 while the product's all-ones mode is off (g = 0), ~ lambda_b / (1 + lambda_b)
    while it is on (g > 0: output mass moves between the bias and that mode at the cost of the decays only).
    Found by the property tests: C = 2, n = 1, decays 1e-9, lambda_b = 1e-3: bias error 2.7e-8, b ~ 1e-6."""
    lambda_b = float(problem.bias)
    g, _ = theory.ufm_decayed_bias(problem.C, problem.n, problem.lambda_W, problem.lambda_H, lambda_b)
    size = float(np.linalg.norm(t["b"]))
    mu = lambda_b / (1.0 + lambda_b) if g > 0 else 1.0
    point = 2.0 * gradient / (mu * np.sqrt(1.0 + lambda_b) * size) if size > 0 else 0.0
    return float(max(checks.GEOMETRY_TOL, checks.cancellation_floor(1.0, 1.0 - g) + point))


def solution_checks(
    problem: SquareLossProblem,
    params: dict,
    data: SquareLossData,
    t: dict | None,
    converged: bool = True,
    gradient: float = 0.0,
) -> tuple[list, dict]:
    """Checks at one solution: identities, objective and geometry vs theory, NC1-NC4, R-B relations, central path.

    The identities are first-order conditions: they are reported but not graded at an unconverged point that
    sits on ReLU kinks (where the objective has no gradient). At a zero solution (W = H = 0, see
    :func:`_zero_checks`) the identities of the factors, the geometry and the R-B relations are VOID; the
    objective, eps, bias and closed-form checks stay graded. Tolerances have float64 floors where the compared
    quantity is formed by cancellation (see :mod:`ufm.checks.square_loss`); ``gradient`` (||grad f|| at the point,
    balanced coordinates) bounds the point's own error where a direction is weakly curved (the decayed bias)."""
    F, h = (np.asarray(a) for a in forward(params, data))
    Y, labels, K, lam = problem.targets(), problem.labels, problem.C, problem.lambda_W
    R = Y - F
    b = np.asarray(params["b"]) if "b" in params else np.zeros(K)
    lambda_b = float(data.lambda_b)
    W_L = np.asarray(params["layers"][-1])
    energies = [problem.lambda_W * float(np.sum(np.asarray(W) ** 2)) for W in params["layers"]]
    if "H" in params:
        energies.append(problem.lambda_H * float(np.sum(np.asarray(params["H"]) ** 2)))
    objective = float(square_loss(params, data))
    eps = 1.0 - float(np.mean(F[labels, np.arange(problem.N)]))
    magnitude = np.abs(F) + np.abs(Y)  # of the terms that cancel in R = Y - F (the floors of the identities)
    zero, zero_reason, out = _zero_checks(problem, F - b[:, None], t)
    identities = [
        checks.identity_last_layer(lam, W_L, R, h, magnitude),
        checks.identity_factors(energies, R, F, b, magnitude),
    ]
    if zero:  # both sides vanish: their ratio is rounding noise
        identities = [
            Check.undefined(c.name, f"{zero_reason}: both sides vanish, their ratio is rounding noise")
            for c in identities
        ]
    if problem.bias != "none":
        identities.append(checks.identity_bias(lambda_b, b, R, magnitude))
    kinks = relu_kinks(problem, params, data)
    if not converged:  # first-order conditions of a critical point: the convergence check fails the run
        why = (
            f"nonsmooth point: {kinks} ReLU pre-activations at 0"
            if kinks
            else "not a converged point: reported, not graded"
        )
        identities = [c if c.void else dataclasses.replace(c, tol=None, detail=why) for c in identities]
    out = identities + out
    numbers = {"objective": objective, "eps": eps, "factor_energies": energies, "zero_solution": zero}
    asserted = t is not None and t["asserted"]
    if t is not None:
        tol = checks.OBJECTIVE_TOL if asserted else None
        out.append(
            checks.close(
                "objective = closed form (rel)",
                objective,
                t["objective"],
                tol,
                f"solver {objective:.15g}, closed form {t['objective']:.15g}",
            )
        )
        gtol = checks.GEOMETRY_TOL if asserted else None
        eps_tol = checks.floored(gtol, checks.cancellation_floor(1.0, t["eps"]))
        out.append(checks.close("eps = closed form (rel)", eps, t["eps"], eps_tol, f"eps = {eps:.12g}"))
        if "WWt" in t:
            out.append(checks.close("W W^T = closed form (rel)", W_L @ W_L.T, t["WWt"], gtol))
        if t.get("factor_energy") is not None:
            out.append(
                checks.close(
                    "every factor's lambda ||theta||^2 = closed form",
                    energies,
                    [t["factor_energy"]] * len(energies),
                    gtol,
                )
            )
        if problem.bias not in ("none", "free"):
            out.append(checks.close("bias = closed form", b, t["b"], decayed_bias_tolerance(problem, t, gradient)))
        elif problem.bias == "free":
            out.append(checks.close("bias = closed form", b, t["b"], gtol))
    graded = asserted and problem.bias in ("none", "free")
    g = checks.GEOMETRY_TOL if graded else None
    names = [
        "NC1 tr(S_W S_B^+)/K",
        "NC2 equinorm of centred means",
        "NC2 equiangularity of classifier rows",
        "classifier cosine = closed form" + (" (abs)" if graded else ""),
        "NC3 = its limit (abs)",
        "NC4 share disagreeing with nearest mean",
    ]
    if zero:
        void = f"{zero_reason}: the geometry of a zero product is undefined"
        out += [Check.undefined(name, void) for name in names + rb_check_names(problem)]
        if problem.bias == "free" and problem.layers == 1 and problem.model == "ufm":
            out.append(Check.undefined(CENTRAL_PATH, void))
        return out, numbers
    means = metrics.class_means(h.T, labels, K)
    nc = {
        "NC1": metrics.nc1(h.T, labels, K),
        "NC2_means": metrics.nc2(h.T, labels, K),
        "NC2_classifier": metrics.frame_geometry(W_L),
        "NC3": metrics.nc3(W_L, h.T, labels, K),
        "NC4": metrics.nc4(W_L, b, h.T, labels, K),
    }
    numbers["nc"] = nc
    cosine = nc["NC2_classifier"]["mean_cosine"]
    out += [
        Check(names[0], nc["NC1"], 1e-10 if graded else None),
        Check(names[1], nc["NC2_means"]["equinorm"], g),
        Check(names[2], nc["NC2_classifier"]["equiangular"], g),
        Check(names[3], abs(cosine - theory.rb_cosine(K, problem.bias)), g)
        if graded
        else checks.close(
            names[3], cosine, theory.rb_cosine(K, problem.bias if problem.bias == "free" else "none"), None
        ),
        Check(
            names[4],
            abs(nc["NC3"] - theory.nc3_limit(K, problem.bias)) if problem.bias in ("none", "free") else nc["NC3"],
            g,
            f"NC3 = {nc['NC3']:.6g}"
            + (f", limit {theory.nc3_limit(K, problem.bias):.6g}" if problem.bias in ("none", "free") else ""),
        ),
        Check(names[5], nc["NC4"], 0.0 if graded else None),
    ]
    out += rb_checks(problem, W_L, means, eps, graded)
    if problem.bias == "free" and problem.layers == 1 and problem.model == "ufm":
        Hc = h - h.mean(axis=1, keepdims=True)
        gram = Hc @ Hc.T + problem.N * lam * np.eye(h.shape[0])
        ridge = (Y - Y.mean(axis=1, keepdims=True)) @ Hc.T @ np.linalg.inv(gram)
        # the ridge inverse loses digits with the Gram matrix's condition (~ ||H||^2 / (N lambda_W))
        out.append(
            checks.close(
                CENTRAL_PATH,
                W_L,
                ridge,
                checks.floored(checks.GEOMETRY_TOL, checks.ROUNDING * np.linalg.cond(gram)),
                f"Gram condition {np.linalg.cond(gram):.3g}",
            )
        )
    return out, numbers


CENTRAL_PATH = "central path: W = ridge LS classifier of its features"


def _relu_pre_activations(problem: SquareLossProblem, params: dict, data: SquareLossData):
    """Every hidden layer's pre-activations (numpy, units x samples) of a ReLU network; none for another
    activation."""
    if problem.act != "relu":
        return
    h = params["H"] if "H" in params else data.X
    for W in params["layers"][:-1]:
        z = W @ h
        yield np.asarray(z)
        h = jnp.maximum(z, 0.0)


def relu_kinks(problem: SquareLossProblem, params: dict, data: SquareLossData, tol: float = 1e-7) -> int:
    """Number of ReLU pre-activations within ``tol`` (relative to the largest) of the kink at 0, exact zeros
    included: a sample whose features are all dead upstream has pre-activations exactly 0, a kink in the upstream
    factors (restarts of a 3-layer ReLU network stalled with 12 - 18 of them and no other kink)."""
    return sum(int(np.sum(np.abs(z) <= tol * np.abs(z).max())) for z in _relu_pre_activations(problem, params, data))


def relu_dead_units(problem: SquareLossProblem, params: dict, data: SquareLossData) -> int:
    """Number of hidden ReLU units whose pre-activation is < 0 on every sample (dead: no gradient reaches them)."""
    return sum(int(np.sum(np.all(z < 0, axis=1))) for z in _relu_pre_activations(problem, params, data))


RB_NAMES = {
    "free": ["R-B: W_L^c = eps (mu_c - mu_G)/(lam (K-1))", "R-B: ||W_L^c||^2 = (eps - K eps^2/(K-1))/(K lam)"],
    "none": [
        "R-B W_L formula fails bias-free (needs rel err >= 1e-3; value 1e-3/err)",
        "corrected bias-free: W_L^c = eps mu_c/(K lam)",
        "corrected bias-free: ||W_L^c||^2 = eps(1-eps)/(K lam)",
    ],
    "decayed": ["R-B W_L formula with a decayed bias (rel err)"],
}


def rb_check_names(problem: SquareLossProblem) -> list[str]:
    return RB_NAMES[problem.bias if problem.bias in ("none", "free") else "decayed"]


def rb_checks(problem, W_L, means, eps, graded) -> list[Check]:
    """The R-B relations (stated for a free bias) and their bias-free correction, at a nonzero solution.

    Tolerances have the float64 floor of their inputs: eps = 1 - (true-class output) is formed by cancellation
    against 1 (relative floor ~ eps_machine / eps), and the norm formulas' second factor ``1 - eps`` (bias-free) or
    ``1 - K eps/(K-1)`` (free bias), small near the threshold, by cancellation too."""
    K, lam = problem.C, problem.lambda_W
    seed_W = theory.rb_classifier(K, eps, lam, means, "free")
    fixed_W = theory.rb_classifier(K, eps, lam, means, "none")
    seed_norm = theory.rb_classifier_norm_sq(K, eps, lam, "free")
    fixed_norm = theory.rb_classifier_norm_sq(K, eps, lam, "none")
    norms = np.sum(W_L**2, axis=1)
    err_seed = checks.rel(W_L, seed_W)
    names = rb_check_names(problem)
    g = checks.GEOMETRY_TOL if graded else None
    eps_floor = checks.cancellation_floor(1.0, eps)
    out = []
    if problem.bias == "free":
        fit = 1.0 - K * eps / (K - 1)
        out.append(Check(names[0], err_seed, checks.floored(g, eps_floor)))
        out.append(
            checks.close(
                names[1],
                norms,
                np.full(K, seed_norm),
                checks.floored(g, eps_floor + checks.cancellation_floor(1.0, fit)),
            )
        )
    elif problem.bias == "none":
        ratio = float(np.sqrt(np.mean(norms) / seed_norm)) if seed_norm > 0 else float("nan")
        out.append(
            Check(
                names[0],
                1e-3 / max(err_seed, 1e-300),
                1.0 if graded else None,
                f"rel err {err_seed:.3g}; ||W_L^c|| / R-B's = {ratio:.6g}",
            )
        )
        out.append(Check(names[1], checks.rel(W_L, fixed_W), checks.floored(g, eps_floor)))
        out.append(
            checks.close(
                names[2],
                norms,
                np.full(K, fixed_norm),
                checks.floored(g, eps_floor + checks.cancellation_floor(1.0, 1.0 - eps)),
            )
        )
    else:
        out.append(
            Check(names[0], err_seed, None, "the decayed bias forces the bias-free contradiction; reported only")
        )
    return out


CONVERGED_NAME = "solver converged at the best restart"
BEST_NOT_ABOVE = "best restart not above the closed-form point (rel; ReLU: a known critical point)"


def _convergence_checks(problem: SquareLossProblem, found: SquareLossSolution, kinks: int) -> list[Check]:
    """The best element ended CONVERGED (value 0, else 1: a status, kept finite; the relative gradient and the
    status are in the detail); not every element ended at a saddle (value: how many did)."""
    sol, best = found.solution, found.best
    ok = bool(sol.converged[best])
    status = int(sol.status[best])
    detail = (
        f"element {best} ({found.labels[best]}): rel grad {sol.rel_grad_norm[best]:.2e} (rtol "
        f"{found.options.rtol:.0e}; of f/s, s = {found.scale:.3g}, balanced coordinates)"
    )
    if kinks:
        detail += (
            f"; {kinks} ReLU pre-activations at the kink"
            if ok
            else f"; stopped on {kinks} ReLU kinks (nonsmooth point)"
        )
    dead = relu_dead_units(problem, found.params, objective_data(problem))
    if dead:
        detail += f"; {dead} dead ReLU units"
    if not ok:
        why = (
            "no element converged"
            if not np.any(sol.converged)
            else "the lowest point found did not converge (lower than every converged one beyond rounding)"
        )
        detail = f"{why}: {STATUS_MESSAGES[status]}; {detail}"
    saddles = [i for i, st in enumerate(sol.status) if st == SADDLE]
    return [
        Check(CONVERGED_NAME, 0.0 if ok else 1.0, 0.0, detail),
        Check(
            "not every restart ended at a saddle (restarts ending SADDLE)",
            float(len(saddles)),
            float(sol.status.size - 1),
            f"of {sol.status.size} (the candidate W = 0 included where it applies); SADDLE at "
            f"{[found.labels[i] for i in saddles]}"
            if saddles
            else f"none of {sol.status.size}",
        ),
    ]


def run(problem: SquareLossProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    data = objective_data(problem)
    found = solve(problem, progress=progress)
    t = closed_form(problem)
    best_ok = bool(found.solution.converged[found.best])
    sol = found.solution
    f_scaled = abs(float(sol.loss[found.best]))
    gradient = float(sol.rel_grad_norm[found.best]) * max(1.0, f_scaled) * found.scale  # ||grad f||, balanced
    result_checks, numbers = solution_checks(problem, found.params, data, t, best_ok, gradient)
    conv = found.solution.report()
    saddles = [i for i, st in enumerate(found.restart_status) if st == SADDLE]
    conv.update(
        {
            "elements": found.labels,
            "saddle_restarts": saddles,
            "saddle_starts": [found.labels[i] for i in saddles],
            "objective_scale": found.scale,
            "balanced_decay": balanced_decay(problem),
            "note": "gradients are of f / objective_scale in balanced coordinates; --restarts random "
            "restarts plus the candidate W = H = 0 where it applies",
        }
    )
    kinks = relu_kinks(problem, found.params, data)
    result_checks[:0] = _convergence_checks(problem, found, kinks)
    headline = [
        f"ufm {problem.model} square loss: C={problem.C} n={problem.n} L={problem.layers} d={problem.d} "
        f"act={problem.act} bias={problem.bias} lambda_W={problem.lambda_W:g}"
        + (f" lambda_H={problem.lambda_H:g}" if problem.model == "ufm" else f" inputs={problem.inputs}")
    ]
    if t is not None:
        point = closed_form_point(problem, t["Z"], t["b"])
        f_point, g_point = evaluate(point, data)
        numbers["closed_form"] = {k: v for k, v in t.items() if k not in ("Z", "outputs", "WWt")}
        numbers["closed_form_point"] = {"objective": f_point, "rel_grad_norm": g_point}
        gtol = 1e-10 if t["asserted"] else None
        result_checks.append(Check("closed-form point is critical (rel grad at it)", g_point, gtol))
        result_checks.append(
            checks.close("closed-form point's objective = formula", f_point, t["objective"], checks.OBJECTIVE_TOL)
        )
        lowest = float(np.min(found.restart_losses))
        result_checks.append(
            Check(
                "no restart below the closed form (rel)",
                max(0.0, (t["objective"] - lowest) / t["objective"]),
                checks.OBJECTIVE_TOL if t["asserted"] else None,
                f"lowest restart {lowest:.15g}",
            )
        )
        if not t["asserted"]:  # ReLU: the closed-form point is a known critical point, so the best is not above it
            dead = relu_dead_units(problem, found.params, data)
            result_checks.append(
                Check(
                    BEST_NOT_ABOVE,
                    max(0.0, (numbers["objective"] - f_point) / f_point),
                    checks.OBJECTIVE_TOL,
                    f"best {numbers['objective']:.15g}, closed-form point {f_point:.15g}"
                    + (f"; best point has {dead} dead ReLU units" if dead else "")
                    + (f", {kinks} ReLU pre-activations at the kink" if kinks else ""),
                )
            )
        headline.append(
            f"closed form: objective {t['objective']:.15g}  eps {t['eps']:.12g}"
            + (
                f"  x* {t['x']:.12g}  beta {t['beta']:.6g} (threshold {t['beta_c']:.6g})"
                if "x" in t
                else f"  rho {t['rho']:.6g}"
            )
            + ("  (W = H = 0)" if t["zero"] else "")
        )
    else:
        headline.append("closed form: none known for this configuration (identities and NC metrics only)")
    losses = found.restart_losses
    at_best = np.sum(np.abs(losses - losses[found.best]) <= 1e-10 * abs(losses[found.best]))
    result_checks.append(
        Check(
            "restarts ending at the best objective",
            float(at_best),
            None,
            f"of {losses.size} ({problem.restarts} random"
            + (f" + the {found.labels[-1]}" if zero_candidate(problem) else "")
            + f"); end objectives {np.array2string(losses, precision=10)};"
            f" factor ranks {found.restart_ranks}",
        )
    )
    headline.append(
        f"best restart {found.best} ({found.labels[found.best]}): objective {numbers['objective']:.15g}, "
        f"eps {numbers['eps']:.12g}"
    )
    numbers.update(
        {
            "restart_losses": losses,
            "restart_ranks": found.restart_ranks,
            "restart_status": found.restart_status,
            "restart_starts": found.labels,
            "seconds": time.perf_counter() - t0,
        }
    )
    config = {
        "loss": {"ufm": "mse" if problem.layers == 1 else "mse-deep", "net": "mse-net"}[problem.model],
        **dataclasses.asdict(problem),
        "solver": dataclasses.asdict(found.options),
    }
    arrays = {f"W{i + 1}": np.asarray(W) for i, W in enumerate(found.params["layers"])}
    if "H" in found.params:
        arrays["H"] = np.asarray(found.params["H"])
    if "b" in found.params:
        arrays["b"] = np.asarray(found.params["b"])
    F, h = forward(found.params, data)
    arrays.update({"F": np.asarray(F), "features": np.asarray(h), "labels": problem.labels, "restart_losses": losses})
    return Report(config["loss"], config, headline, result_checks, conv, numbers, arrays, "solution.npz")
