"""Certificates for the cross-entropy UFM with weight decay (``ufm.theory.ce``).

Objective (:func:`ufm.objectives.ce.ce_loss`, samples x features): ``(1/N) sum_{k,i} CE(W h_{k,i} + b, y_k) +
(lambda_W/2)||W||_F^2 + (lambda_H/2)||H||_F^2 (+ (lambda_b/2)||b||^2)``, K classes, n per class, d >= K - 1.
Theorem 3.1 of Zhu, Ding, Zhou, Li, You, Sulam, Qu (NeurIPS 2021) gives the optimum's structure (NC1, simplex ETF,
``w_k = sqrt(n lambda_H/lambda_W) h_k``, b = 0); ``ufm.theory.ce`` reduces its scale to ``min_t g(t)``,
``g(t) = log(1 + (K-1) exp(-K t/(K-1))) + rho t``, rho = K sqrt(n lambda_W lambda_H), with the explicit root
``t* = (K-1)/K log1p((1 - rho)/(rho/K))`` for rho < 1 and t* = 0 (W = H = 0) for rho >= 1.

Certificates:

- :func:`optimality`: the closed-form POINT (``ufm.theory.ce.optimal_point``) evaluated by the JAX objective, no
  solver: gradient (relative to the CE and decay parts that cancel), objective = formula, Hessian PSD with exactly
  as many near-zero eigenvalues as the dimension of the rotation orbit ``(W, H) -> (W Q, H Q)``, strictly positive
  on its complement (a nondegenerate minimum up to rotations); W = H = 0 is a saddle for rho < 1 and a strict
  minimum for rho > 1;
- :func:`scalar_reduction`: the reduction's steps, numerically: the matrix objective at the balanced ETF point of
  product t equals g(t); the AM-GM balance (Brent on the penalty at fixed t); g' and g'' against finite
  differences; g'' > 0 (convexity); the explicit root against Brent's root of g' and against a grid; the threshold
  g'(0) = rho - 1 on both sides of rho = 1 and the continuity of f* there;
- :func:`restarts_never_below`: seeded restarts of ``ufm.solver.minimise`` (the family's starts, balanced
  coordinates) never end below the closed form.

Each certificate takes its inputs as keyword arguments with defaults, so a test can plant a wrong formula.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy import optimize

from ufm.objectives.ce import SOLVER, CEData, ce_loss, objective_data, starts
from ufm.precision import float64
from ufm.problems.ce import CEProblem
from ufm.proofs_check.certificate import EPS, Certificate, worst
from ufm.proofs_check.orbit import STRICT_TOL, orbit_checks, second_order
from ufm.solver import CONVERGED, minimise
from ufm.theory import ce as theory

FAMILY = "ce"
DESCRIPTION = "cross-entropy UFM with weight decay: closed form, scalar reduction, threshold, restarts"
SOURCE = (
    "Zhu, Ding, Zhou, Li, You, Sulam, Qu, 'A Geometric Analysis of Neural Collapse with Unconstrained "
    "Features', NeurIPS 2021, Theorem 3.1; reduction and threshold: ufm.theory.ce"
)

GRAD_TOL = 64 * EPS  # ||grad|| / (||grad CE|| + ||grad decays|| + 1/sqrt(N)): cancellation of the two parts
OBJECTIVE_TOL = 64 * EPS  # |f(point) - formula| / max(1, |f|): a mean of N rounded log1p terms
BALANCE_TOL = 1e-7  # Brent locates a minimiser to ~sqrt(eps) relative
FD_TOL = 1e-8  # central differences of step h = 1e-5: truncation ~h^2 |g'''| + rounding ~eps |g| / h, both ~1e-10
ROOT_TOL = 64 * EPS  # g' at / between the roots, relative to the terms that cancel in g' (rho and K q)

RATIO = 4.0  # lambda_H / lambda_W: unbalanced decays exercise the NC3 ratio
SIZES = ((2, 3), (3, 2), (10, 1))  # (K, n)
RHOS = (0.01, 0.5, 0.95, 1.5)  # threshold rho = 1
BIASES = ("none", 0.5)


def problem_at(K: int, n: int, d: int, bias, rho: float, ratio: float = RATIO, restarts: int = 1) -> CEProblem:
    """The problem with ``K sqrt(n lambda_W lambda_H) = rho`` and ``lambda_H / lambda_W = ratio``."""
    s = rho / (K * math.sqrt(n))
    return CEProblem(
        C=K, n=n, d=d, lambda_W=s / math.sqrt(ratio), lambda_H=s * math.sqrt(ratio), bias=bias, restarts=restarts
    )


GRID = tuple(
    problem_at(K, n, d, bias, rho) for K, n in SIZES for d in (K - 1, K + 1) for bias in BIASES for rho in RHOS
)


def _record(problem: CEProblem) -> dict:
    return {
        "K": problem.C,
        "n": problem.n,
        "d": problem.d,
        "bias": problem.bias,
        "lambda_W": problem.lambda_W,
        "lambda_H": problem.lambda_H,
        "rho": theory.rho(problem.C, problem.n, problem.lambda_W, problem.lambda_H),
    }


@jax.jit
def _derivatives(params, data: CEData):
    """Objective, gradient, gradient of the CE part alone, Hessian (flattened parameters)."""
    x, unravel = ravel_pytree(params)
    loss = lambda x, data: ce_loss(unravel(x), data)
    fit = data._replace(lambda_W=jnp.zeros(()), lambda_H=jnp.zeros(()), lambda_b=jnp.zeros(()))
    f, g = jax.value_and_grad(loss)(x, data)
    return f, g, jax.grad(loss)(x, fit), jax.hessian(loss)(x, data)


def _params(problem: CEProblem, W, H) -> dict:
    out = {"W": jnp.asarray(W), "H": jnp.asarray(H)}
    if problem.bias != "none":
        out["b"] = jnp.zeros(problem.C)
    return out


def rotation_tangents(params: dict) -> np.ndarray:
    """Rows: tangents ``(W A, H A, 0)`` of the orbit ``(W Q, H Q)`` for the basis skew matrices A (d x d)."""
    W, H = np.asarray(params["W"]), np.asarray(params["H"])
    d = W.shape[1]
    rows = []
    for a in range(d):
        for c in range(a + 1, d):
            A = np.zeros((d, d))
            A[a, c], A[c, a] = 1.0, -1.0
            tree = {"W": W @ A, "H": H @ A, **({"b": np.zeros(W.shape[0])} if "b" in params else {})}
            rows.append(np.asarray(ravel_pytree(tree)[0]))
    return np.array(rows)


@float64
def optimality(*, problems=GRID, optimum=theory.optimum, point=theory.optimal_point) -> Certificate:
    """The closed-form point is a critical point with the formula's objective and a nondegenerate minimum up to
    rotations; the zero point is a saddle below the threshold and a strict minimum past it."""
    t0 = time.perf_counter()
    ids, instances = [], []
    rel_grad: list[float] = []
    obj_err: list[float] = []
    spectra: list[dict] = []
    saddle: list[float] = []
    past: list[float] = []
    saddle_ids: list[dict] = []
    past_ids: list[dict] = []
    for problem in problems:
        K, n, d = problem.C, problem.n, problem.d
        t = optimum(K, n, problem.lambda_W, problem.lambda_H)
        W, H, _ = point(K, n, d, problem.lambda_W, problem.lambda_H, 0)
        data = objective_data(problem)
        params = _params(problem, W, H)
        f, g, g_fit, hess = (np.asarray(a) for a in _derivatives(params, data))
        so = second_order(hess, rotation_tangents(params))
        zero = jax.tree.map(jnp.zeros_like, params)
        eig0 = np.linalg.eigvalsh(np.asarray(_derivatives(zero, data)[3]))
        record = _record(problem)
        scale = float(np.linalg.norm(g_fit) + np.linalg.norm(g - g_fit)) + 1.0 / math.sqrt(problem.N)
        record["numbers"] = {
            "objective_point": float(f),
            "objective_formula": t["objective"],
            "rel_grad": float(np.linalg.norm(g)) / scale,
            **so,
            "zero_min_eig": float(eig0[0]),
        }
        instances.append(record)
        ids.append({k: record[k] for k in ("K", "n", "d", "bias", "rho")})
        rel_grad.append(record["numbers"]["rel_grad"])
        obj_err.append(abs(float(f) - t["objective"]) / max(1.0, abs(float(f))))
        spectra.append(so)
        (saddle if record["rho"] < 1 else past).append(eig0[0] / max(float(np.max(np.abs(eig0))), 1e-300))
        (saddle_ids if record["rho"] < 1 else past_ids).append(ids[-1])
    measurements = [
        worst(
            rel_grad,
            ids,
            "first order: ||grad f|| / (||grad CE|| + ||grad decays|| + 1/sqrt(N)) at the point",
            GRAD_TOL,
            note="JAX gradient of ufm.objectives.ce.ce_loss at ufm.theory.ce.optimal_point, no solver",
        ),
        worst(obj_err, ids, "objective at the point = closed-form objective, |diff| / max(1, |f|)", OBJECTIVE_TOL),
        *orbit_checks(spectra, ids, orbit="rotation orbit", symmetry="the rotations (W, H) -> (W Q, H Q)"),
        worst([p.d - p.C + 1 for p in problems], ids, "hypothesis: d - (K - 1) >= 0", 0, sense=">="),
    ]
    if saddle:
        measurements.append(
            worst(saddle, saddle_ids, "rho < 1: W = H = 0 is a saddle (largest min eig / max |eig|)", -STRICT_TOL)
        )
    if past:
        measurements.append(
            worst(
                past, past_ids, "rho > 1: W = H = 0 is a strict minimum (min eig / max |eig|)", STRICT_TOL, sense=">="
            )
        )
    return Certificate(
        FAMILY,
        "Thm 3.1 closed-form optimum (CE)",
        SOURCE,
        "the simplex-ETF point with t* = argmin g, w_k = sqrt(n lambda_H/lambda_W) h_k, b = 0, is a "
        "nondegenerate minimum up to rotations with objective g(t*); W = H = 0 iff rho >= 1",
        "closed-form point evaluated, no solver: JAX gradient and Hessian in float64, rotation "
        "tangents at the point, eigenvalues on their complement ('min Hess eig')",
        measurements,
        instances,
        min_hessian_eig=float(min(r["numbers"]["min_eig_complement"] for r in instances)),
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------------------------
# The scalar reduction and the threshold
# --------------------------------------------------------------------------------------------------------------

SCALAR_K = (2, 3, 5, 10, 100)
SCALAR_N = (1, 4)
SCALAR_RHOS = (1e-6, 1e-3, 0.1, 0.5, 0.9, 0.99, 1 - 1e-6)


def matrix_objective(W, H, labels, lambda_W: float, lambda_H: float) -> float:
    """The objective from its definition (numpy, no bias): mean of ``log sum_j exp(z_j) - z_y`` plus the decays."""
    Z = H @ W.T
    m = Z.max(axis=1)
    ce = np.log(np.exp(Z - m[:, None]).sum(axis=1)) + m - Z[np.arange(Z.shape[0]), labels]
    return float(ce.mean() + 0.5 * lambda_W * np.sum(W * W) + 0.5 * lambda_H * np.sum(H * H))


def _etf_point(K: int, n: int, t: float, ratio: float):
    """Simplex ETF W with ||w_k|| = a, H rows w_k/ratio, a c = t, a/c = ratio (built here from the ETF definition:
    centred standard basis vectors, scaled)."""
    E = np.eye(K) - np.ones((K, K)) / K
    a = math.sqrt(t * ratio)
    W = a * E / np.linalg.norm(E, axis=1, keepdims=True)
    return W, np.repeat(W / ratio, n, axis=0)


def _scalar_facts(K: int, n: int, rho: float, g, dg, d2g, root, optimum) -> dict:
    """The residuals of the reduction's steps at one (K, n, rho) (see :func:`scalar_reduction`)."""
    s = rho / (K * math.sqrt(n))
    lW, lH = s / math.sqrt(RATIO), s * math.sqrt(RATIO)
    ratio = math.sqrt(n * lH / lW)
    ts = root(K, rho)
    labels = np.repeat(np.arange(K), n)
    out = {"identity": 0.0}
    for t in (0.0, 0.5 * ts, ts, 2 * ts + 0.1, 5.0):
        W, H = _etf_point(K, n, t, ratio)
        f = matrix_objective(W, H, labels, lW, lH)
        out["identity"] = max(out["identity"], abs(f - float(g(t, K, rho))) / max(1.0, abs(f)))
    t = max(ts, 0.5)

    def penalty(log_a):  # (lambda_W/2) K a^2 + (lambda_H/2) N c^2 at a c = t
        return 0.5 * lW * K * math.exp(2 * log_a) + 0.5 * lH * K * n * t * t * math.exp(-2 * log_a)

    centre = math.log(math.sqrt(t * ratio))
    res = optimize.minimize_scalar(penalty, bracket=(centre - 1, centre + 1), tol=1e-12)
    out["balance"] = abs(math.exp(2 * res.x) / t - ratio) / ratio  # a^2 / t = a / c
    out["balance_value"] = abs(penalty(centre) - rho * t) / (rho * t)
    grid = np.concatenate([[0.0], np.geomspace(1e-6, 60.0, 400)])
    h = 1e-5  # g is defined for t < 0 too, so the differences are central at t = 0 as well
    out["fd1"] = float(np.max(np.abs((g(grid + h, K, rho) - g(grid - h, K, rho)) / (2 * h) - dg(grid, K, rho))))
    out["fd2"] = float(np.max(np.abs((dg(grid + h, K, rho) - dg(grid - h, K, rho)) / (2 * h) - d2g(grid, K, rho))))
    out["convex"] = float(np.min(d2g(grid, K, rho)))
    brent = optimize.brentq(lambda x: float(dg(x, K, rho)), 0.0, 200.0, xtol=1e-300, rtol=4 * EPS)
    # in units of g': the error |g''(t*) (t* - t_brent)| it implies, against the terms rho and K q(t) that cancel
    # in g' (near the threshold a root error of 1e-10 relative is an eps-level difference of g')
    out["root"] = abs(float(d2g(ts, K, rho)) * (ts - brent)) / rho
    out["root_residual"] = abs(float(dg(ts, K, rho))) / rho
    fine = np.linspace(0.0, 3 * ts + 1, 20001)
    gs = float(g(ts, K, rho))
    out["grid"] = (gs - float(np.min(g(fine, K, rho)))) / max(1.0, gs)
    out["formula"] = abs(optimum(K, n, lW, lH)["objective"] - gs) / gs
    return out


@float64
def scalar_reduction(
    *,
    g=theory.scalar_objective,
    dg=theory.scalar_derivative,
    d2g=theory.scalar_second_derivative,
    root=theory.optimal_product,
    optimum=theory.optimum,
) -> Certificate:
    """The reduction f(ETF point) = g(t), the AM-GM balance, the derivatives, convexity, the root and the
    threshold, on K in SCALAR_K, n in SCALAR_N, rho in SCALAR_RHOS (lambda_H = RATIO lambda_W)."""
    t0 = time.perf_counter()
    ids: list[dict] = []
    rows: dict[str, list] = {}
    for K in SCALAR_K:
        for n in SCALAR_N:
            for rho in SCALAR_RHOS:
                ids.append({"K": K, "n": n, "rho": rho, "t_star": root(K, rho)})
                for key, value in _scalar_facts(K, n, rho, g, dg, d2g, root, optimum).items():
                    rows.setdefault(key, []).append(value)
    thr_ids, thr_sign, thr_zero, thr_cont = [], [], [], []
    for K in SCALAR_K:
        for n in SCALAR_N:
            lam = 1.0 / (K * math.sqrt(n))
            thr_ids.append({"K": K, "n": n})
            below, above = (optimum(K, n, lam * (1 - e), lam * (1 - e)) for e in (1e-9, -1e-9))
            thr_sign.append(min(-float(dg(0.0, K, below["rho"])), float(dg(0.0, K, above["rho"]))))
            thr_zero.append(float(below["zero"] or not above["zero"] or root(K, 10.0) != 0.0))
            thr_cont.append(abs(below["objective"] - math.log(K)) / math.log(K))
    measurements = [
        worst(
            rows["identity"],
            ids,
            "matrix objective at the balanced ETF point of product t = g(t), rel",
            1e3 * EPS,
            note="t in {0, t*/2, t*, 2 t* + 0.1, 5}; a mean of N log-sum-exps (N <= 400)",
        ),
        worst(
            rows["balance"],
            ids,
            "AM-GM: Brent's minimiser of the penalty at fixed t has a/c = sqrt(n lH/lW)",
            BALANCE_TOL,
        ),
        worst(
            rows["balance_value"], ids, "AM-GM: the penalty at a/c = sqrt(n lH/lW) equals rho t (rel)", OBJECTIVE_TOL
        ),
        worst(rows["fd1"], ids, "g' = central differences of g on [0, 60] (abs)", FD_TOL),
        worst(rows["fd2"], ids, "g'' = central differences of g' on [0, 60] (abs)", FD_TOL),
        worst(
            rows["convex"],
            ids,
            "convexity: min g'' on [0, 60]",
            0.0,
            sense=">=",
            note="g'' = K^2/(K-1) e^{-s}/(1 + (K-1) e^{-s})^2 > 0, s = K t/(K-1)",
        ),
        worst(rows["root"], ids, "explicit root = Brent's root of g': |g''(t*) (t* - t_Brent)| / rho", ROOT_TOL),
        worst(rows["root_residual"], ids, "explicit root: |g'(t*)| / rho", ROOT_TOL),
        worst(rows["grid"], ids, "g(t*) <= min of g on a grid of [0, 3 t* + 1] (rel)", 4 * EPS),
        worst(rows["formula"], ids, "f* formula = g(t*) (rel)", OBJECTIVE_TOL),
        worst(
            thr_sign,
            thr_ids,
            "threshold: -g'(0) at rho = 1 - 1e-9 and g'(0) at 1 + 1e-9, the smaller",
            0.0,
            sense=">=",
            note="g'(0) = rho - 1 changes sign at rho = 1",
        ),
        worst(thr_zero, thr_ids, "threshold: t* > 0 at rho = 1 - 1e-9, t* = 0 at 1 + 1e-9 and at 10 (0 = yes)", 0.0),
        worst(thr_cont, thr_ids, "continuity: f* at rho = 1 - 1e-9 equals log K (rel)", 1e-12),
    ]
    return Certificate(
        FAMILY,
        "CE scalar reduction + threshold",
        SOURCE,
        "f at the balanced simplex-ETF point is g(t) = log(1 + (K-1) e^{-Kt/(K-1)}) + rho t, g is "
        "convex, t* = (K-1)/K log1p((1 - rho) K/rho) for rho < 1, else 0 (rho = K sqrt(n lW lH))",
        "numpy/scipy: the matrix objective from its definition, Brent, finite differences, grids",
        measurements,
        [{**i} for i in ids] + thr_ids,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------------------------
# Global evidence: restarts
# --------------------------------------------------------------------------------------------------------------

RESTART_GRID = tuple(problem_at(3, 2, 3, bias, rho, restarts=4) for bias in BIASES for rho in (0.05, 0.9, 1.3))
ROUNDING = 64 * EPS


@float64
def restarts_never_below(*, problems=RESTART_GRID, optimum=theory.optimum) -> Certificate:
    """Seeded restarts of the shared solver (the family's starts and settings, balanced coordinates; all instances
    of one shape in one batch) never end below the closed form beyond rounding."""
    t0 = time.perf_counter()
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault((p.C, p.n, p.d, p.bias == "none", p.restarts), []).append(i)
    ends = {}
    for idx in groups.values():
        group = [problems[i] for i in idx]
        R = group[0].restarts
        data = jax.tree.map(
            lambda *a, R=R: jnp.repeat(jnp.stack(a), R, axis=0), *[objective_data(p, balanced=True) for p in group]
        )
        initial = jax.tree.map(
            lambda *a: jnp.concatenate(a), *[starts(dataclasses.replace(p, seed=17 * i)) for i, p in zip(idx, group)]
        )
        sol = minimise(
            ce_loss,
            initial,
            data,
            args_axes=CEData(0, 0, 0, 0),  # type: ignore[arg-type]  # vmap axes, not data
            options=dataclasses.replace(SOLVER, progress=False, steps_per_report=20),
        )
        for k, i in enumerate(idx):
            ends[i] = (sol.loss[k * R : (k + 1) * R], sol.status[k * R : (k + 1) * R])
    ids, instances, below = [], [], []
    runs = converged = 0
    for i, problem in enumerate(problems):
        loss, status = ends[i]
        f = optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H)["objective"]
        record = _record(problem)
        record["numbers"] = {"closed_form": f, "ends": loss.tolist(), "status": status.tolist()}
        instances.append(record)
        ids.append({k: record[k] for k in ("K", "n", "d", "bias", "rho")})
        below.append(float(np.max((f - loss) / max(1.0, abs(f)))))
        runs += loss.size
        converged += int(np.sum(status == CONVERGED))
    measurements = [
        worst(
            below,
            ids,
            "restarts: (f* - f(end)) / max(1, |f*|) (> 0: a restart beat the closed form)",
            ROUNDING,
            note="every restart graded, converged or not",
        )
    ]
    return Certificate(
        FAMILY,
        "CE global evidence: restarts",
        SOURCE,
        "no point the solver reaches from random starts is below the closed form",
        "ufm.solver.minimise (saddle-free Newton, eigh) from ufm.objectives.ce.starts, batched",
        measurements,
        instances,
        restarts=runs,
        restarts_converged=converged,
        seconds=time.perf_counter() - t0,
    )


CERTIFICATES = [optimality, scalar_reduction, restarts_never_below]
