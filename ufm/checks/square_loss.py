"""Checks for the square loss with weight decay (Rangamani and Banburski, ICASSP 2022).

Tolerances: objectives 1e-12 relative (both sides are float64 evaluations at the rounding floor of a gradient
~1e-13; a wrong constant moves the objective by >= 1e-4); geometry (eps, Gram matrices, norms, NC metrics) 1e-8
relative: a joint nonconvex solve stopped at relative gradient g places factors within ~g/curvature of the
optimum manifold, and the smallest nonzero curvature here can be ~1e-4 x the largest.
Identities (I1)-(I3) hold at ANY critical point, so they are checked to 1e-9 at every solution (ReLU included).

Float64 floors. A quantity of size ``size`` formed by cancelling terms of size ``scale`` carries a relative
rounding error ~ eps_machine x scale / size; where that exceeds the tolerance above, the tolerance is that floor
(``ROUNDING x scale / size``, :func:`cancellation_floor`) and the check's value is compared with it. This is the
case at small weight decays: the optimum's residual R = Y - F and eps = 1 - (true-class output) are ~ K n^(1/m)
lambda, formed from outputs ~1 (at lambda = 1e-9, eps ~ 2e-8, relative floor ~ 1e-7 x 64). Every check built on R
or eps (the identities, eps, the R-B relations) gets the floor of its inputs; the central path's ridge inverse
gets its Gram matrix's condition number.

A run's check list, in its order: :func:`convergence_checks` (the best element converged; not every element at a
saddle), :func:`solution_checks` (identities, closed form, NC1-NC4, :func:`rb_checks`, central path), where a
closed form is known :func:`closed_form_point_checks`, and :func:`restarts_at_best`; :func:`relu_kinks` and
:func:`relu_dead_units` count a ReLU point's nonsmooth and dead places for their details.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from ufm import metrics
from ufm.checks import Check
from ufm.objectives.square_loss import (
    SquareLossData,
    SquareLossSolution,
    forward,
    objective_data,
    square_loss,
    zero_candidate,
)
from ufm.problems.square_loss import SquareLossProblem
from ufm.solver import SADDLE, STATUS_MESSAGES
from ufm.theory import square_loss as theory

OBJECTIVE_TOL = 1e-12
GEOMETRY_TOL = 1e-8
IDENTITY_TOL = 1e-9
# A sum's rounding, as the solver models it: 64 eps (rounding of O(N) terms grows ~ sqrt(N) eps).
ROUNDING = 64 * float(np.finfo(np.float64).eps)
# W = H = 0 when the product F - b 1^T is below ZERO_TOL ||Y||: a zero minimum is reached to within the solver's
# step tolerance (1e-9 in the factors; at the degenerate threshold rho = 1 the factors end ~1e-8, their product
# ~1e-16), while a nonzero optimum's product is >= ~1e-4 ||Y|| unless rho is within 1e-4 of its threshold.
ZERO_TOL = 1e-8


def rel(a, b) -> float:
    """``||a - b|| / max(||b||, 1e-300)``, Frobenius; for scalars ``|a - b| / |b|``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def cancellation_floor(scale: float, size: float) -> float:
    """Relative float64 floor of a quantity of magnitude ``size`` formed by cancelling terms of magnitude
    ``scale``: ``ROUNDING scale / size`` (infinite for size 0)."""
    size = abs(float(size))
    return ROUNDING * abs(float(scale)) / size if size > 0 else float("inf")


def floored(tol: float | None, floor: float) -> float | None:
    """``max(tol, floor)``; None (reported only) stays None."""
    return None if tol is None else float(max(tol, floor))


def identity_last_layer(lambda_L, W_L, residual, features, magnitude=None) -> Check:
    """(I1) ``lambda_L W_L = (1/N) sum_i r_i h_i^T`` (r = Y - F, h = input of the last layer).

    Tolerance: IDENTITY_TOL, or the float64 floor of the right side: each entry of R = Y - F carries ~eps x
    ``magnitude`` (= |F| + |Y|, entrywise) of absolute error, so R h^T / N carries ``ROUNDING || magnitude |h|^T ||
    / N`` against its norm."""
    N = residual.shape[1]
    rhs = residual @ features.T / N
    size = float(np.linalg.norm(rhs))
    floor = 0.0
    if magnitude is not None and size > 0:
        floor = cancellation_floor(np.linalg.norm(magnitude @ np.abs(features).T) / N, size)
    tol = floored(IDENTITY_TOL, floor)
    return Check(
        "(I1) lambda_L W_L = R h^T / N",
        rel(lambda_L * W_L, rhs) if size > 0 else float(np.linalg.norm(lambda_L * W_L)),
        tol,
        f"float64 floor {floor:.2g} (small residual)" if tol is not None and tol > IDENTITY_TOL else "",
    )


def identity_factors(energies: list[float], residual, F, b, magnitude=None) -> Check:
    """(I2) every factor: ``lambda_k ||theta_k||_F^2 = (1/N) sum_i <r_i, f_i - b>`` (Euler's identity).

    Tolerance: IDENTITY_TOL, or the floor of the right side, ``ROUNDING sum(magnitude |F - b|) / N`` against it."""
    N = residual.shape[1]
    target = float(np.sum(residual * (F - b[:, None])) / N)
    worst = max(abs(e - target) for e in energies) / max(abs(target), 1e-300) if target != 0 else max(energies)
    floor = 0.0
    if magnitude is not None and target != 0:
        floor = cancellation_floor(np.sum(magnitude * np.abs(F - b[:, None])) / N, target)
    tol = floored(IDENTITY_TOL, floor)
    return Check(
        "(I2) lambda_k ||theta_k||^2 = <R, F - b>/N, every factor",
        float(worst),
        tol,
        f"{len(energies)} factors, common value {target:.6g}"
        + (f"; float64 floor {floor:.2g} (small residual)" if tol is not None and tol > IDENTITY_TOL else ""),
    )


def identity_bias(lambda_b, b, residual, magnitude=None) -> Check:
    """(I3) ``lambda_b b = (1/N) sum_i r_i`` (lambda_b = 0 for a free bias: residuals sum to zero); relative to the
    root-mean-square residual norm, the natural scale of both sides (floor: ``ROUNDING ||magnitude|| / ||R||``)."""
    mean_residual = residual.mean(axis=1)
    size = float(np.linalg.norm(residual))
    scale = max(size / np.sqrt(residual.shape[1]), 1e-300)
    floor = cancellation_floor(float(np.linalg.norm(magnitude)), size) if magnitude is not None and size > 0 else 0.0
    tol = floored(IDENTITY_TOL, floor)
    return Check(
        "(I3) lambda_b b = mean residual",
        float(np.linalg.norm(lambda_b * b - mean_residual) / scale),
        tol,
        f"float64 floor {floor:.2g} (small residual)" if tol is not None and tol > IDENTITY_TOL else "",
    )


def close(name: str, value, expected, tol: float | None, detail: str = "") -> Check:
    """Relative agreement of a solver quantity with its closed form (absolute where the closed form is 0)."""
    value, expected = np.asarray(value, dtype=float), np.asarray(expected, dtype=float)
    denom = np.linalg.norm(expected)
    err = float(np.linalg.norm(value - expected) / denom) if denom > 0 else float(np.linalg.norm(value))
    return Check(name, err, tol, detail)


def zero_checks(problem: SquareLossProblem, F_W: np.ndarray, t: dict | None) -> tuple[bool, str, list]:
    """Is the solution W = H = 0? Decided by the closed form (the theory's product is exactly 0) and by the
    solver's point (its product ``F - b 1^T`` below ``ZERO_TOL ||Y||``). Returns (zero, reason, checks): when
    either says zero the geometry is undefined (VOID with ``reason``, which says who decided); a disagreement of the
    two is a graded failing check."""
    Y = problem.targets()
    size = float(np.linalg.norm(F_W) / np.linalg.norm(Y))
    solver_zero = size <= ZERO_TOL
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
                ZERO_TOL if t["asserted"] else None,
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
    return float(max(GEOMETRY_TOL, cancellation_floor(1.0, 1.0 - g) + point))


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
    :func:`zero_checks`) the identities of the factors, the geometry and the R-B relations are VOID; the
    objective, eps, bias and closed-form checks stay graded. Tolerances have float64 floors where the compared
    quantity is formed by cancellation (see the module docstring); ``gradient`` (||grad f|| at the point,
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
    zero, zero_reason, out = zero_checks(problem, F - b[:, None], t)
    identities = [
        identity_last_layer(lam, W_L, R, h, magnitude),
        identity_factors(energies, R, F, b, magnitude),
    ]
    if zero:  # both sides vanish: their ratio is rounding noise
        identities = [
            Check.undefined(c.name, f"{zero_reason}: both sides vanish, their ratio is rounding noise")
            for c in identities
        ]
    if problem.bias != "none":
        identities.append(identity_bias(lambda_b, b, R, magnitude))
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
        tol = OBJECTIVE_TOL if asserted else None
        out.append(
            close(
                "objective = closed form (rel)",
                objective,
                t["objective"],
                tol,
                f"solver {objective:.15g}, closed form {t['objective']:.15g}",
            )
        )
        gtol = GEOMETRY_TOL if asserted else None
        eps_tol = floored(gtol, cancellation_floor(1.0, t["eps"]))
        out.append(close("eps = closed form (rel)", eps, t["eps"], eps_tol, f"eps = {eps:.12g}"))
        if "WWt" in t:
            out.append(close("W W^T = closed form (rel)", W_L @ W_L.T, t["WWt"], gtol))
        if t.get("factor_energy") is not None:
            out.append(
                close(
                    "every factor's lambda ||theta||^2 = closed form",
                    energies,
                    [t["factor_energy"]] * len(energies),
                    gtol,
                )
            )
        if problem.bias not in ("none", "free"):
            out.append(close("bias = closed form", b, t["b"], decayed_bias_tolerance(problem, t, gradient)))
        elif problem.bias == "free":
            out.append(close("bias = closed form", b, t["b"], gtol))
    graded = asserted and problem.bias in ("none", "free")
    g = GEOMETRY_TOL if graded else None
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
    nc: dict[str, Any] = {
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
        Check(names[3], abs(cosine - theory.rb_cosine(K, str(problem.bias))), g)
        if graded
        else close(names[3], cosine, theory.rb_cosine(K, problem.bias if problem.bias == "free" else "none"), None),
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
            close(
                CENTRAL_PATH,
                W_L,
                ridge,
                floored(GEOMETRY_TOL, ROUNDING * np.linalg.cond(gram)),
                f"Gram condition {np.linalg.cond(gram):.3g}",
            )
        )
    return out, numbers


CENTRAL_PATH = "central path: W = ridge LS classifier of its features"


def _relu_pre_activations(problem: SquareLossProblem, params: dict, data: SquareLossData):
    """Every hidden layer's pre-activations (numpy, units x samples) of a ReLU network; none for another
    activation."""
    if problem.activation != "relu":
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
        "R-B W_L formula fails bias-free (its rel err must be >= 1e-3)",
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
    err_seed = rel(W_L, seed_W)
    names = rb_check_names(problem)
    g = GEOMETRY_TOL if graded else None
    eps_floor = cancellation_floor(1.0, eps)
    out = []
    if problem.bias == "free":
        fit = 1.0 - K * eps / (K - 1)
        out.append(Check(names[0], err_seed, floored(g, eps_floor)))
        out.append(
            close(
                names[1],
                norms,
                np.full(K, seed_norm),
                floored(g, eps_floor + cancellation_floor(1.0, fit)),
            )
        )
    elif problem.bias == "none":
        ratio = float(np.sqrt(np.mean(norms) / seed_norm)) if seed_norm > 0 else float("nan")
        out.append(
            Check(
                names[0],
                err_seed,
                1e-3 if graded else None,
                f"rel err {err_seed:.3g}; ||W_L^c|| / R-B's = {ratio:.6g}",
                sense=">=",
            )
        )
        out.append(Check(names[1], rel(W_L, fixed_W), floored(g, eps_floor)))
        out.append(
            close(
                names[2],
                norms,
                np.full(K, fixed_norm),
                floored(g, eps_floor + cancellation_floor(1.0, 1.0 - eps)),
            )
        )
    else:
        out.append(
            Check(names[0], err_seed, None, "the decayed bias forces the bias-free contradiction; reported only")
        )
    return out


CONVERGED_NAME = "solver converged at the best restart"
BEST_NOT_ABOVE = "best restart not above the closed-form point (rel; ReLU: a known critical point)"


def convergence_checks(problem: SquareLossProblem, found: SquareLossSolution, kinks: int) -> list[Check]:
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


def closed_form_point_checks(
    problem: SquareLossProblem,
    found: SquareLossSolution,
    t: dict,
    point: tuple[float, float],
    objective: float,
    kinks: int,
) -> list[Check]:
    """Checks of the closed form's own point and of the restarts against it.

    Args:
        problem: the problem.
        found: the solve (every element's end objective, the best point).
        t: the closed form (``ufm.theory.square_loss.closed_form``; ``asserted``: the optimum, else a known
            critical point, ReLU).
        point: ``(objective, relative gradient norm)`` evaluated at the closed form's point
            (``ufm.objectives.square_loss.closed_form_point``).
        objective: the best element's objective.
        kinks: the best point's ReLU pre-activations at the kink (reported).

    Returns:
        The point is critical (graded 1e-10 where asserted); its objective equals the formula (OBJECTIVE_TOL); no
        restart ends below it (graded where asserted); for ReLU, the best restart is not above it (a known
        critical point: a best above it is a restart stuck higher).
    """
    f_point, g_point = point
    lowest = float(np.min(found.restart_losses))
    out = [
        Check("closed-form point is critical (rel grad at it)", g_point, 1e-10 if t["asserted"] else None),
        close("closed-form point's objective = formula", f_point, t["objective"], OBJECTIVE_TOL),
        Check(
            "no restart below the closed form (rel)",
            max(0.0, (t["objective"] - lowest) / t["objective"]),
            OBJECTIVE_TOL if t["asserted"] else None,
            f"lowest restart {lowest:.15g}",
        ),
    ]
    if not t["asserted"]:  # ReLU: the closed-form point is a known critical point, so the best is not above it
        dead = relu_dead_units(problem, found.params, objective_data(problem))
        out.append(
            Check(
                BEST_NOT_ABOVE,
                max(0.0, (objective - f_point) / f_point),
                OBJECTIVE_TOL,
                f"best {objective:.15g}, closed-form point {f_point:.15g}"
                + (f"; best point has {dead} dead ReLU units" if dead else "")
                + (f", {kinks} ReLU pre-activations at the kink" if kinks else ""),
            )
        )
    return out


def restarts_at_best(problem: SquareLossProblem, found: SquareLossSolution) -> Check:
    """Reported: how many elements ended at the best objective (relative 1e-10), with every element's end
    objective and factor ranks."""
    losses = found.restart_losses
    at_best = np.sum(np.abs(losses - losses[found.best]) <= 1e-10 * abs(losses[found.best]))
    return Check(
        "restarts ending at the best objective",
        float(at_best),
        None,
        f"of {losses.size} ({problem.restarts} random"
        + (f" + the {found.labels[-1]}" if zero_candidate(problem) else "")
        + f"); end objectives {np.array2string(losses, precision=10)};"
        f" factor ranks {found.restart_ranks}",
    )
