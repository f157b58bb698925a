"""Certificates for nonnegative features with CE / label smoothing (Nguyen et al., ICLR 2023;
models stated in :mod:`ufm.theory.nonnegative`).

Model 2 (weight decay): ``min_{W, H >= 0} (1/N) sum_i CE_q(W h_i) + (lambda_W/2)||W||^2 + (lambda_H/2)||H||^2``.
Model 1 (budgets): ``min (1/N) sum_i CE_q(W h_i)`` s.t. ``(1/K)||W||^2 <= E_W``, ``(1/N)||H||^2 <= E_H``, H >= 0.
Targets ``q = (1 - alpha) e_k + (alpha/K) 1`` (alpha = 0: CE). Closed forms: :mod:`ufm.theory.nonnegative`.

The closed-form POINT is built here from the theory's numbers: class means ``h_k = |h| e_k`` (orthonormal,
nonnegative, disjoint supports: the standard basis of the first K coordinates of R^d), every sample at its class
mean, and the classifier the simplex ETF of the centred means. It is evaluated in the (W, H) variables, not the
solver's reparametrisation H = G*G, with the objective's JAX gradient and Hessian in float64, no solver.

First order is KKT with multipliers: for H >= 0, ``Lambda = grad_H f`` must vanish on the support of H and be >= 0
off it (``strongly active``: Lambda > 0; ``weakly active``: Lambda = 0); Model 1's budget multipliers
``nu = -<grad, X>/||X||^2`` must be >= 0 (inequality constraints).

Second order on the critical cone: the free variables are W and the support of H (tangent to the active budget
spheres for Model 1); strongly active coordinates are fixed at 0; weakly active ones may only grow. The reduced
Hessian (of the Lagrangian) on the free variables must be positive definite ("min Hess eig" in the table). Where
weakly active coordinates exist (d > K: the padding coordinates; the zero solution: all of H), the Schur complement
``S`` of the free block must be COPOSITIVE (``w^T S w >= 0`` for w >= 0); this is checked by projected power
iteration from many starts (numerical evidence, not a proof). At d > K its minimum is 0, attained along the
rotations of a class mean into an unused coordinate: minimisers ``h_k = |h| v_k`` with any disjoint-support
nonnegative unit v_k form a continuum, as the theory says.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from ufm.checks import nonnegative as nonneg_checks
from ufm.families import nonnegative as family
from ufm.objectives.nonnegative import cross_entropy, model1_loss, model2_loss, objective_data
from ufm.precision import float64
from ufm.problems.nonnegative import NonnegProblem
from ufm.proofs_check.certificate import EPS, Certificate, worst
from ufm.theory import nonnegative as theory

FAMILY = "nonnegative"
DESCRIPTION = "nonnegative features, CE / label smoothing: Model 2 (weight decay), Model 1 (budgets) (Nguyen et al.)"
SOURCE = "Nguyen et al., ICLR 2023, Memorization-Dilation; stated in ufm/theory/nonnegative.py"

# Tolerances, and why.
KKT_TOL = 64 * EPS  # stationarity / dual infeasibility relative to the size of the terms that cancel
OBJECTIVE_TOL = 64 * EPS  # |f(point) - closed-form value| / max(1, |f|): a sum of O(K N) rounded terms
STRICT_TOL = 1e-8  # smallest reduced-Hessian eigenvalue / largest >= this: positive definite beyond rounding
COPOSITIVE_TOL = 1e-10  # min over the cone of w^T S w / ||S|| >= -this: its exact minimum is 0 at d > K, and S, a
#                         Schur complement, carries rounding ~ eps x cond(reduced Hessian) (observed <= 2.3e-13)
WEAK_TOL = 1e-10  # multipliers below this x the gradient scale count as weakly active (exact zeros at the points)
ROUNDING = 64 * EPS  # restarts: (f(closed form) - f(end)) / max(1, |f|) <= this
RATIO = 4.0  # lambda_H / lambda_W: unbalanced decays
SIZES = ((2, 3), (3, 2), (10, 1))  # (K, n)


def model2_problem(K: int, n: int, d: int, alpha: float, ratio_to_threshold: float) -> NonnegProblem:
    """Model 2 with ``gamma_alpha = ratio_to_threshold * (K-1)/K`` (>= 1: past the threshold, W = H = 0) and
    lambda_H / lambda_W = RATIO."""
    gamma = (ratio_to_threshold - alpha) * (K - 1) / K
    s = gamma / math.sqrt(n * K * (K - 1))  # sqrt(lambda_W lambda_H)
    return NonnegProblem(
        C=K,
        n=n,
        d=d,
        model="ufm",
        alpha=alpha,
        lambda_W=s / math.sqrt(RATIO),
        lambda_H=s * math.sqrt(RATIO),
        restarts=1,
    )


def model1_problem(K: int, n: int, d: int, alpha: float, M_max: float, E_H: float = 2.0) -> NonnegProblem:
    """Model 1 with budgets giving the largest common margin ``M_max = sqrt(K E_W E_H/(K-1))``."""
    return NonnegProblem(
        C=K, n=n, d=d, model="lpm", alpha=alpha, E_W=M_max**2 * (K - 1) / (K * E_H), E_H=E_H, restarts=1
    )


MODEL2_GRID = tuple(
    model2_problem(K, n, d, alpha, r)
    for K, n in SIZES
    for d in (K, K + 2)
    for alpha in (0.0, 0.1)
    for r in (0.3, 0.9, 1.5)
)
MODEL1_CE_GRID = tuple(model1_problem(K, n, d, 0.0, M) for K, n in SIZES for d in (K, K + 2) for M in (0.5, 2.0, 8.0))
LS_MARGIN_RATIOS = (0.5, 0.9, 1.5, 4.0)  # M_max / m*_alpha: the budget condition holds for the first two only
MODEL1_LS_GRID = tuple(
    model1_problem(K, n, K + 2, alpha, r * theory.smoothing_margin(K, alpha))
    for K, n in SIZES
    for alpha in (0.1, 0.3)
    for r in LS_MARGIN_RATIOS
)


# --------------------------------------------------------------------------------------------------------------
# The closed-form point, the objectives in (W, H), derivatives
# --------------------------------------------------------------------------------------------------------------


def collapsed_point(problem: NonnegProblem, mean_norm: float, classifier_scale: float):
    """``H``: every sample of class k at ``mean_norm * e_k``; ``W = classifier_scale (V - vbar)``, V = [e_k]."""
    assert problem.d is not None  # the problem sets d = C when it is not given
    V = np.eye(problem.d)[: problem.C]
    H = mean_norm * V[problem.labels].T
    W = classifier_scale * (V - V.mean(axis=0))
    return W, H


def model2_point(problem: NonnegProblem, t: dict):
    """Model 2 closed form: ``||h_k||^2 = t["mean_norm_sq"]``, ``w_k = a (v_k - vbar)``, ``a = t["classifier_scale"]``
    (both 0 past the threshold)."""
    return collapsed_point(problem, math.sqrt(t["mean_norm_sq"]), t["classifier_scale"])


def model1_point(problem: NonnegProblem, t: dict):
    """Model 1 closed form: ``h_k = sqrt(E_H) e_k``, ``w_k = sqrt(E_W/E_H) sqrt(K/(K-1)) (h_k - hbar)`` on the
    budgets. Where the theory says the minimiser is not unique (LS with M_max > m*), one minimiser: the same
    geometry scaled down, inside the budgets, until every margin is ``m*``."""
    s = 1.0 if t["unique"] else math.sqrt(t["margin"] / t["M_max"])
    return collapsed_point(problem, s * math.sqrt(problem.E_H), s * t["classifier_scale"] * math.sqrt(problem.E_H))


def _f2(W, H, data):
    """Model 2 in (W, H): ``cross_entropy(W H, Q) + (lambda_W/2)||W||^2 + (lambda_H/2)||H||^2``."""
    return cross_entropy(W @ H, data.Q) + 0.5 * data.lambda_W * jnp.sum(W**2) + 0.5 * data.lambda_H * jnp.sum(H**2)


def _f1(W, H, data):
    """Model 1's loss in (W, H) (the budgets are constraints, handled by multipliers)."""
    return cross_entropy(W @ H, data.Q)


def _make_derivatives(f):
    @jax.jit
    def derivatives(W, H, data):
        """f, gradient of f, gradient of its CE part alone, and Hessian, in x = (W.ravel(), H.ravel())."""
        size = W.size
        flat = lambda x, data: f(x[:size].reshape(W.shape), x[size:].reshape(H.shape), data)
        x = jnp.concatenate([W.ravel(), H.ravel()])
        ce = lambda x: _f1(x[:size].reshape(W.shape), x[size:].reshape(H.shape), data)
        value, g = jax.value_and_grad(flat)(x, data)
        return value, g, jax.grad(ce)(x), jax.hessian(flat)(x, data)

    return derivatives


_derivatives2 = _make_derivatives(_f2)
_derivatives1 = _make_derivatives(_f1)


def copositive_minimum(S: np.ndarray, starts: np.ndarray, iterations: int = 500) -> float:
    """Smallest ``w^T S w`` found over ``{w >= 0, ||w|| = 1}`` by projected power iteration on ``c I - S``
    (c >= the largest eigenvalue, so the iteration ascends ``w^T (cI - S) w``) from each start (rows)."""
    if S.size == 0:
        return math.inf
    c = float(np.max(np.linalg.eigvalsh(S))) + 1e-12 * max(1.0, float(np.max(np.abs(S))))
    M = c * np.eye(S.shape[0]) - S
    best = math.inf
    for w in starts:
        w = np.maximum(w, 0.0)
        w = w / np.linalg.norm(w)
        for _ in range(iterations):
            v = np.maximum(M @ w, 0.0)
            nv = np.linalg.norm(v)
            if nv == 0:
                break
            w_new = v / nv
            if np.linalg.norm(w_new - w) < 1e-15:
                w = w_new
                break
            w = w_new
        best = min(best, float(w @ S @ w))
    return best


def _cone_starts(problem: NonnegProblem, weak: np.ndarray, rng) -> np.ndarray:
    """Starts for the copositivity search on the weakly active coordinates of H (a d x N mask): each class's
    samples on each weak row (the analytic extremal directions: one class, one coordinate), and random ones."""
    idx = np.flatnonzero(weak.ravel())
    starts = []
    for k in range(problem.C):
        for row in range(weak.shape[0]):
            mask = np.zeros_like(weak)
            mask[row, problem.labels == k] = True
            w = mask.ravel()[idx].astype(float)
            if w.any():
                starts.append(w)
    starts += list(rng.uniform(0, 1, (16, idx.size)))
    return np.array(starts)


def _support(H: np.ndarray) -> np.ndarray:
    return H > 0  # exact: the closed-form point has exact zeros off its support


def second_order(
    problem: NonnegProblem,
    W: np.ndarray,
    H: np.ndarray,
    multipliers: np.ndarray,
    scale: float,
    hess: np.ndarray,
    normals: list[np.ndarray],
    seed: int,
) -> dict:
    """Reduced Hessian on the free variables (W, support of H), minus the active budget normals; copositivity of
    its Schur complement on the weakly active coordinates."""
    hess = (hess + hess.T) / 2
    support = _support(H)
    weak = ~support & (multipliers <= WEAK_TOL * scale)
    strong = ~support & ~weak
    nW = W.size
    free = np.concatenate([np.arange(nW), nW + np.flatnonzero(support.ravel())])
    weak_idx = nW + np.flatnonzero(weak.ravel())
    P = np.eye(hess.shape[0])[:, free]  # basis of the free coordinates
    if normals:
        Nm = np.array([n[free] for n in normals]).T
        Q, _ = np.linalg.qr(Nm)
        # orthonormal basis of the free coordinates orthogonal to the active constraint normals
        _, _, vt = np.linalg.svd(np.eye(free.size) - Q @ Q.T)
        B = vt[: free.size - Q.shape[1]].T
        P = P @ B
    reduced = P.T @ hess @ P
    eig = np.linalg.eigvalsh(reduced)
    norm = max(float(np.max(np.abs(np.linalg.eigvalsh(hess)))), 1e-300)
    out: dict[str, object] = {
        "free": int(P.shape[1]),
        "strongly_active": int(strong.sum()),
        "weakly_active": int(weak.sum()),
        "reduced_min_eig": float(eig[0]),
        "reduced_min_eig_rel": float(eig[0]) / norm,
        "hessian_norm": norm,
        "reduced_near_zero": int(np.sum(np.abs(eig) <= 1e-9 * norm)),
        "copositive_min_rel": None,
    }
    if weak.any() and eig[0] > 0:
        E = np.eye(hess.shape[0])[:, weak_idx]
        Hww, Hwf = E.T @ hess @ E, E.T @ hess @ P
        S = Hww - Hwf @ np.linalg.solve(reduced, Hwf.T)
        S = (S + S.T) / 2
        starts = _cone_starts(problem, weak, np.random.default_rng(seed))
        copositive_min = copositive_minimum(S, starts)
        out["copositive_min"] = copositive_min
        out["copositive_min_rel"] = copositive_min / max(float(np.max(np.abs(np.linalg.eigvalsh(S)))), 1e-300)
        out["copositive_starts"] = int(len(starts))
    return out


def _instance(problem: NonnegProblem, t: dict) -> dict:
    K, d = problem.C, problem.d
    record: dict[str, object] = {"K": K, "n": problem.n, "d": d, "alpha": problem.alpha}
    exercises = [
        "d = K: no unused coordinate, isolated minimiser"
        if d == K
        else "d > K: unused coordinates (weakly active; a continuum of disjoint-support minimisers)"
    ]
    exercises.append("CE (alpha = 0)" if problem.alpha == 0 else "label smoothing (alpha > 0)")
    if problem.model == "ufm":
        record.update(
            {
                "lambda_W": problem.lambda_W,
                "lambda_H": problem.lambda_H,
                "gamma": t["gamma"],
                "gamma_alpha_over_threshold": t["gamma_alpha"] / ((K - 1) / K),
            }
        )
        exercises.append(
            "gamma_alpha >= (K-1)/K: past the threshold, W = H = 0 (all of H weakly active)"
            if t["zero"]
            else "gamma_alpha < (K-1)/K: collapsed, orthogonal means"
        )
    else:
        record.update({"E_W": problem.E_W, "E_H": problem.E_H, "M_max": t["M_max"], "m_star": t["m_star"]})
        if problem.alpha > 0:
            exercises.append(
                "M_max <= m*_alpha: the budget condition holds"
                if t["unique"]
                else "M_max > m*_alpha: the budget condition fails (value = H(q), not unique)"
            )
    if K == 2:
        exercises.append("K = 2")
    if problem.n == 1:
        exercises.append("n = 1")
    record["exercises"] = exercises
    return record


def _ids(record: dict) -> dict:
    keys = ("K", "n", "d", "alpha", "lambda_W", "lambda_H", "E_W", "E_H")
    return {k: record[k] for k in keys if k in record}


# --------------------------------------------------------------------------------------------------------------
# Model 2
# --------------------------------------------------------------------------------------------------------------


def _kkt_bounds(g: np.ndarray, g_ce: np.ndarray, W: np.ndarray, H: np.ndarray, nu: tuple[float, float]) -> dict:
    """KKT residual of ``min f`` s.t. H >= 0 (and budget multipliers ``nu``, added as ``nu X`` to the gradient).

    Returns the stationarity residual (W and the support of H), the dual infeasibility (negative multipliers off
    the support), the multipliers, and the scale: the larger of the two terms that cancel at a KKT point (CE
    gradient, and the decay or budget term), entrywise max."""
    nW = W.size
    gW, gH = g[:nW].reshape(W.shape) + nu[0] * W, g[nW:].reshape(H.shape) + nu[1] * H
    ceW, ceH = g_ce[:nW].reshape(W.shape), g_ce[nW:].reshape(H.shape)
    support = _support(H)
    stationarity = max(float(np.max(np.abs(gW))), float(np.max(np.abs(gH[support]), initial=0.0)))
    dual = float(np.max(np.maximum(0.0, -gH[~support]), initial=0.0))
    # floor: one sample's share of the CE gradient, (max|W| + max|H|)/N (entries of p - q are at most 1), for
    # points where the CE gradient itself vanishes (LS at p = q inside Model 1's budgets)
    scale = max(
        float(np.max(np.abs(ceW))) + float(np.max(np.abs(gW - ceW))),
        float(np.max(np.abs(ceH))) + float(np.max(np.abs(gH - ceH))),
        (float(np.max(np.abs(W))) + float(np.max(np.abs(H)))) / H.shape[1],
    )
    rel = lambda v: v / scale if scale > 0 else v
    multipliers = np.where(support, 0.0, gH)
    strong = multipliers[(~support) & (multipliers > WEAK_TOL * scale)]
    return {
        "stationarity_rel": rel(stationarity),
        "dual_infeasibility_rel": rel(dual),
        "scale": scale,
        "multipliers": multipliers,
        "min_strong_multiplier_rel": rel(float(np.min(strong, initial=np.inf))),
        "support": int(support.sum()),
    }


@float64
def model2_optimality(*, problems=MODEL2_GRID, optimum=theory.model2_optimum, seed: int = 0) -> Certificate:
    """Model 2: the closed form (collapse, orthogonal means, ETF classifier; W = H = 0 past gamma_alpha >= (K-1)/K)
    satisfies KKT with multipliers for H >= 0, the reduced Hessian on the support is positive definite, and the
    Schur complement on weakly active coordinates is copositive."""
    t0 = time.perf_counter()
    instances, ids = [], []
    stat, dual, obj, pkg, feas, strict, cop, strong = [], [], [], [], [], [], [], []
    cop_ids, min_eigs = [], []
    for problem in problems:
        t = optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H, problem.alpha)
        W, H = model2_point(problem, t)
        data = objective_data(problem)
        f, g, g_ce, hess = (np.asarray(a) for a in _derivatives2(jnp.asarray(W), jnp.asarray(H), data))
        kkt = _kkt_bounds(g, g_ce, W, H, (0.0, 0.0))
        so = second_order(problem, W, H, kkt.pop("multipliers"), kkt["scale"], hess, [], seed)
        f_pkg = float(model2_loss({"W": jnp.asarray(W), "H": jnp.asarray(H)}, data))
        record = _instance(problem, t)
        record["hypotheses"] = {"d_minus_K": problem.d - problem.C, "H_min_entry": float(H.min())}
        record["numbers"] = {
            "objective_point": float(f),
            "objective_closed_form": t["objective"],
            "margin": t["margin"],
            **kkt,
            **so,
        }
        if t["zero"]:  # analytic copositivity margin of the zero solution: lambda_H (1 - ((1-alpha)(K-1)/(K gamma))^2)
            K = problem.C
            record["numbers"]["copositive_min_analytic"] = problem.lambda_H * (
                1 - ((1 - problem.alpha) * (K - 1) / (K * t["gamma"])) ** 2
            )
        instances.append(record)
        ids.append(_ids(record))
        stat.append(kkt["stationarity_rel"])
        dual.append(kkt["dual_infeasibility_rel"])
        obj.append(abs(float(f) - t["objective"]) / max(1.0, abs(float(f))))
        pkg.append(abs(float(f) - f_pkg) / max(1.0, abs(float(f))))
        feas.append(float(H.min()))
        strict.append(so["reduced_min_eig_rel"])
        min_eigs.append(so["reduced_min_eig"])
        if so["copositive_min_rel"] is not None:
            cop.append(so["copositive_min_rel"])
            cop_ids.append(ids[-1])
        if math.isfinite(kkt["min_strong_multiplier_rel"]):
            strong.append(kkt["min_strong_multiplier_rel"])
    measurements = [
        worst(
            stat,
            ids,
            "KKT stationarity: |grad_W f|, |grad_H f| on supp H (max, rel to terms)",
            KKT_TOL,
            note="JAX gradient in (W, H), float64, at the closed-form point",
        ),
        worst(dual, ids, "KKT dual feasibility: max(0, -multiplier of H >= 0) (rel)", KKT_TOL),
        worst(feas, ids, "primal feasibility: min entry of H", 0.0, sense=">="),
        worst(obj, ids, "objective at the point = closed form (|diff| / max(1, |f|))", OBJECTIVE_TOL),
        worst(pkg, ids, "same objective as ufm.objectives.nonnegative.model2_loss", OBJECTIVE_TOL),
        worst(strict, ids, "second order: reduced Hessian on (W, supp H), min eig / ||Hess||", STRICT_TOL, sense=">="),
        worst(
            strong,
            [i for i, r in zip(ids, instances) if math.isfinite(r["numbers"]["min_strong_multiplier_rel"])],
            "strict complementarity off the padding: smallest strongly active multiplier (rel)",
            None,
        ),
    ]
    if cop:  # weakly active coordinates exist (d > K, or the zero solution)
        measurements.insert(
            6,
            worst(
                cop,
                cop_ids,
                "critical cone: min w^T S w / ||S|| over w >= 0 (weakly active coords)",
                -COPOSITIVE_TOL,
                sense=">=",
                note="projected power iteration, many starts (evidence); exactly 0 at d > K",
            ),
        )
    return Certificate(
        FAMILY,
        "Model 2 (weight decay) optimum",
        SOURCE,
        "collapse, orthogonal nonnegative class means with ||h_k||^2 = m* sqrt(lambda_W (K-1)/"
        "(lambda_H n K)), w_k = a (v_k - vbar), margin m* = log((K-1)(1-gamma_alpha)/gamma_alpha); "
        "W = H = 0 if gamma_alpha >= (K-1)/K",
        "closed-form point evaluated, no solver: KKT with "
        "multipliers for H >= 0; reduced Hessian on the support; copositivity on the critical cone",
        measurements,
        instances,
        min_hessian_eig=float(np.min(min_eigs)),
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------------------------
# Model 1 (budgets), and the LS budget condition
# --------------------------------------------------------------------------------------------------------------


def _model1_at(problem: NonnegProblem, t: dict, seed: int) -> dict:
    """KKT with budget and nonnegativity multipliers, and second order, at Model 1's closed-form point."""
    W, H = model1_point(problem, t)
    data = objective_data(problem)
    f, g, _, hess = (np.asarray(a) for a in _derivatives1(jnp.asarray(W), jnp.asarray(H), data))
    nW = W.size
    support = _support(H)
    gW, gH = g[:nW].reshape(W.shape), g[nW:].reshape(H.shape)
    nu_W = -float(np.sum(gW * W) / np.sum(W * W)) if np.any(W) else 0.0
    nu_H = -float(np.sum(gH[support] * H[support]) / np.sum(H * H)) if np.any(H) else 0.0
    kkt = _kkt_bounds(g, g, W, H, (nu_W, nu_H))
    active = [
        abs((W * W).sum() / problem.C - problem.E_W) <= 1e-12 * problem.E_W,
        abs((H * H).sum() / problem.N - problem.E_H) <= 1e-12 * problem.E_H,
    ]
    normals = [np.concatenate([W.ravel(), np.zeros(H.size)])] if active[0] else []
    normals += [np.concatenate([np.zeros(nW), H.ravel()])] if active[1] else []
    lagrangian = hess + np.diag(np.concatenate([np.full(nW, nu_W), np.full(H.size, nu_H)]))
    so = second_order(problem, W, H, kkt.pop("multipliers"), kkt["scale"], lagrangian, normals, seed)
    on_spheres = all(active)
    f_pkg = (
        float(model1_loss({"V": jnp.asarray(W), "G": jnp.asarray(np.sqrt(H))}, data)) if on_spheres else float("nan")
    )
    Z = W @ H
    true = Z[problem.labels, np.arange(problem.N)]
    margins = (true[None, :] - Z)[~np.eye(problem.C, dtype=bool)[:, problem.labels]]
    return {
        "W": W,
        "H": H,
        "f": float(f),
        "f_pkg": f_pkg,
        "nu_W": nu_W,
        "nu_H": nu_H,
        "budgets_active": active,
        "budget_W": float((W * W).sum() / problem.C),
        "budget_H": float((H * H).sum() / problem.N),
        "margins": (float(margins.min()), float(margins.max())),
        **kkt,
        **so,
    }


def _nonunique_witness(problem: NonnegProblem, W: np.ndarray, H: np.ndarray, seed: int) -> dict:
    """A second minimiser when M_max > m*: every feature moved along the all-ones direction of the first K
    coordinates by its own amount t_i >= 0 (margins unchanged: the classifier rows sum to 0 there), scaled to use
    the slack of the feature budget. Returns its loss, feasibility, and how far it is from collapse."""
    rng = np.random.default_rng(seed)
    K, N = problem.C, problem.N
    assert problem.d is not None  # the problem sets d = C when it is not given
    ones = np.zeros(problem.d)
    ones[:K] = 1.0
    shifts = rng.uniform(0.0, 1.0, N)
    slack = problem.E_H * N - float(np.sum(H * H))
    # ||H + ones t^T||^2 = ||H||^2 + 2 t^T (H^T ones) + K ||t||^2 <= N E_H: scale t to use half the slack
    a, b = K * float(shifts @ shifts), 2 * float(shifts @ (H.T @ ones))
    c = -0.5 * slack
    s = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    H2 = H + np.outer(ones, s * shifts)
    data = objective_data(problem)
    f2 = float(_f1(jnp.asarray(W), jnp.asarray(H2), data))
    means = np.stack([H2[:, problem.labels == k].mean(axis=1) for k in range(K)])
    spread = float(np.max(np.linalg.norm(H2 - means[problem.labels].T, axis=0)) / np.max(np.linalg.norm(means, axis=1)))
    cos = means @ means.T / np.outer(np.linalg.norm(means, axis=1), np.linalg.norm(means, axis=1))
    return {
        "loss": f2,
        "budget_H": float((H2 * H2).sum() / N),
        "H_min_entry": float(H2.min()),
        "within_class_spread": spread,
        "max_abs_cos_means": float(np.max(np.abs(cos[~np.eye(K, dtype=bool)]))),
        "distance_rel": float(np.linalg.norm(H2 - H) / np.linalg.norm(H)),
    }


def _model1(problems, optimum, theorem: str, statement: str, seed: int) -> Certificate:
    t0 = time.perf_counter()
    instances, ids, unique_ids, beyond_ids = [], [], [], []
    stat, dual, obj, pkg, feas, budgets, nus, strict, cop, cop_ids, min_eigs = ([] for _ in range(11))
    entropy_err, witness_err, witness_feas, witness_spread, nullity = [], [], [], [], []
    for problem in problems:
        t = optimum(problem.C, problem.E_W, problem.E_H, problem.alpha)
        at = _model1_at(problem, t, seed)
        record = _instance(problem, t)
        record["hypotheses"] = {"d_minus_K": problem.d - problem.C, "H_min_entry": float(at["H"].min())}
        record["numbers"] = {k: v for k, v in at.items() if k not in ("W", "H")}
        record["numbers"]["objective_closed_form"] = t["objective"]
        key = _ids(record)
        instances.append(record)
        ids.append(key)
        stat.append(at["stationarity_rel"])
        dual.append(at["dual_infeasibility_rel"])
        obj.append(abs(at["f"] - t["objective"]) / max(1.0, abs(at["f"])))
        feas.append(float(at["H"].min()))
        budgets.append(max(at["budget_W"] / problem.E_W, at["budget_H"] / problem.E_H) - 1.0)
        if t["unique"]:
            unique_ids.append(key)
            pkg.append(abs(at["f"] - at["f_pkg"]) / max(1.0, abs(at["f"])))
            nus.append(min(at["nu_W"], at["nu_H"]))
            strict.append(at["reduced_min_eig_rel"])
            min_eigs.append(at["reduced_min_eig"])
            if at["copositive_min_rel"] is not None:
                cop.append(at["copositive_min_rel"])
                cop_ids.append(key)
        else:
            beyond_ids.append(key)
            H_q = theory.target_entropy(problem.C, problem.alpha)
            entropy_err.append(abs(at["f"] - H_q) / H_q)
            w = _nonunique_witness(problem, at["W"], at["H"], seed)
            record["numbers"]["second_minimiser"] = w
            witness_err.append(abs(w["loss"] - H_q) / H_q)
            witness_feas.append(max(w["budget_H"] / problem.E_H - 1.0, -w["H_min_entry"]))
            witness_spread.append(max(w["within_class_spread"], w["max_abs_cos_means"]))
            nullity.append(at["reduced_near_zero"])
    measurements = [
        worst(
            stat,
            ids,
            "KKT stationarity with budget multipliers (W, supp H; rel to terms)",
            KKT_TOL,
            note="grad CE + nu X = 0 with nu = -<grad, X>/||X||^2; JAX, float64, no solver",
        ),
        worst(dual, ids, "KKT dual feasibility: max(0, -multiplier of H >= 0) (rel)", KKT_TOL),
        worst(feas, ids, "primal feasibility: min entry of H", 0.0, sense=">="),
        worst(budgets, ids, "primal feasibility: max budget use / budget - 1", 64 * EPS),
        worst(obj, ids, "objective at the point = closed form (|diff| / max(1, |f|))", OBJECTIVE_TOL),
    ]
    if unique_ids:
        measurements += [
            worst(nus, unique_ids, "budget multipliers nu_W, nu_H >= 0 (smallest)", 0.0, sense=">="),
            worst(
                pkg,
                unique_ids,
                "same objective as ufm.objectives.nonnegative.model1_loss at V = W, G = sqrt(H)",
                OBJECTIVE_TOL,
            ),
            worst(
                strict,
                unique_ids,
                "second order: reduced Lagrangian Hessian (tangent to the budget spheres, supp H), min eig / ||Hess||",
                STRICT_TOL,
                sense=">=",
            ),
        ]
        if cop:  # weakly active coordinates exist (d > K)
            measurements.append(
                worst(
                    cop,
                    cop_ids,
                    "critical cone: min w^T S w / ||S|| over w >= 0 (weakly active coords)",
                    -COPOSITIVE_TOL,
                    sense=">=",
                    note="projected power iteration (evidence); exactly 0 at d > K",
                )
            )
    condition = None
    if beyond_ids:
        measurements += [
            worst(
                entropy_err, beyond_ids, "M_max > m*: value at the margin-m* point = entropy of q (rel)", OBJECTIVE_TOL
            ),
            worst(
                witness_err,
                beyond_ids,
                "M_max > m*: a NON-collapsed feasible point has the same value (rel)",
                OBJECTIVE_TOL,
            ),
            worst(witness_feas, beyond_ids, "M_max > m*: that point is feasible (budget excess, -min H)", 64 * EPS),
            worst(
                witness_spread,
                beyond_ids,
                "M_max > m*: its geometry differs: max(within-class spread / ||mean||, "
                "max |cos(mu_k, mu_l)|) (smallest)",
                1e-2,
                sense=">=",
                note="neither collapse (n > 1) nor orthogonal means are forced: minimisers are not unique",
            ),
            worst(
                nullity,
                beyond_ids,
                "M_max > m*: near-zero eigenvalues of the reduced Hessian (fewest)",
                1,
                sense=">=",
                note="the margin-m* point is not a strict minimiser",
            ),
        ]
        worst_ratio = max(r["M_max"] / r["m_star"] for r in instances if r["M_max"] > r["m_star"])
        condition = (
            f"M_max <= m*_alpha (label smoothing): on {len(beyond_ids)} of {len(problems)} instances "
            f"M_max > m*_alpha (up to {worst_ratio:.3g} x) and there the optimal value is the entropy of q "
            "and the minimisers are not unique (a non-collapsed feasible point attains it): the unique "
            "collapsed, orthogonal-frame geometry holds only under the budget condition"
        )
    return Certificate(
        FAMILY,
        theorem,
        SOURCE,
        statement,
        "closed-form point evaluated, no solver: KKT with budget and nonnegativity multipliers; "
        "reduced Hessian of the Lagrangian; copositivity on the critical cone; beyond the budget "
        "condition, the value H(q) at two different feasible points",
        measurements,
        instances,
        min_hessian_eig=float(np.min(min_eigs)) if min_eigs else None,
        condition=condition,
        seconds=time.perf_counter() - t0,
    )


@float64
def model1_ce_optimality(*, problems=MODEL1_CE_GRID, optimum=theory.model1_optimum, seed: int = 0) -> Certificate:
    """Model 1 with CE: collapse, h_k = sqrt(E_H) v_k, w_k the ETF of the centred means, every margin M_max,
    value log(1 + (K-1) e^{-M_max}); both budgets active with positive multipliers."""
    return _model1(
        problems,
        optimum,
        "Model 1 (budgets) CE optimum",
        "h_k = sqrt(E_H) v_k (orthonormal, nonnegative), w_k = sqrt(E_W/E_H) sqrt(K/(K-1)) (h_k - hbar), "
        "every margin M_max = sqrt(K E_W E_H/(K-1)), value log(1 + (K-1) e^{-M_max})",
        seed,
    )


@float64
def model1_ls_budget_condition(*, problems=MODEL1_LS_GRID, optimum=theory.model1_optimum, seed: int = 0) -> Certificate:
    """Model 1 with label smoothing: the CE geometry and value ell_alpha(M_max) hold if M_max <= m*_alpha; beyond,
    the value is the entropy of q and the minimisers are not unique. CONDITIONAL when the grid crosses m*."""
    return _model1(
        problems,
        optimum,
        "Model 1 LS: budget condition",
        "with label smoothing, the collapsed orthogonal-frame geometry of CE is the unique minimiser, "
        "value ell_alpha(M_max), if M_max <= m*_alpha = log(1 + K(1-alpha)/alpha)",
        seed,
    )


# --------------------------------------------------------------------------------------------------------------
# Scalar facts: the LS margin m*_alpha, Model 2's margin equation and its continuous threshold
# --------------------------------------------------------------------------------------------------------------


def _ell_slope(K, alpha, m):
    return -(K - 1) * np.exp(-m) / (1 + (K - 1) * np.exp(-m)) + alpha * (K - 1) / K


def _ell_curvature(K, m):
    e = (K - 1) * np.exp(-m)
    return e / (1 + e) ** 2


@float64
def margin_facts(
    *, classes=(2, 3, 10), alphas=(0.05, 0.1, 0.3), margin=theory.smoothing_margin, optimum=theory.model2_optimum
) -> Certificate:
    """``m*_alpha``: softmax at equal margins m* equals q, ``ell_alpha(m*) = H(q)``, ell_alpha is strictly convex
    with its minimum at m* (so CE_q >= H(q) along equal margins, and m* is the unique margin where LS is satisfied).
    Model 2: its margin solves ``ell_alpha'(m) + gamma = 0`` (true-class probability 1 - gamma_alpha); the margin
    tends to 0 and the objective to log K as gamma_alpha -> (K-1)/K (a continuous threshold, unlike the deep
    square loss); positivity costs margin: the sign-free gamma (K-1) sqrt(lambda_W lambda_H n) is smaller."""
    t0 = time.perf_counter()
    instances, ids, soft, ent, slope, convex, grid_min, m2_slope, m2_cont, m2_value = ([] for _ in range(10))
    grid = np.linspace(0.0, 40.0, 400_001)
    for K in classes:
        for alpha in alphas:
            m = float(margin(K, alpha))
            p_true = 1.0 / (1.0 + (K - 1) * math.exp(-m))
            q_true = 1 - alpha + alpha / K
            H_q = theory.target_entropy(K, alpha)
            ell = theory.equal_margin_loss(K, alpha, grid)
            s = 0.5  # Model 2 at half the threshold: gamma_alpha = (K-1)/(2K)
            n, gamma = 2, (s - alpha) * (K - 1) / K
            lam = gamma / math.sqrt(n * K * (K - 1))
            t = optimum(K, n, lam, lam, alpha)
            near = optimum(K, n, *(2 * [(1 - 1e-9 - alpha) * (K - 1) / K / math.sqrt(n * K * (K - 1))]), alpha)
            record = {
                "K": K,
                "alpha": alpha,
                "m_star": m,
                "softmax_true": p_true,
                "q_true": q_true,
                "entropy_q": H_q,
                "model2_margin": t["margin"],
                "margin_near_threshold": near["margin"],
                "objective_near_threshold": near["objective"],
                "sign_free_gamma_over_gamma": t["sign_free_gamma"] / t["gamma"],
            }
            instances.append(record)
            ids.append({"K": K, "alpha": alpha})
            soft.append(abs(p_true - q_true) / q_true)
            ent.append(abs(float(theory.equal_margin_loss(K, alpha, m)) - H_q) / H_q)
            slope.append(abs(float(_ell_slope(K, alpha, m))))
            convex.append(float(np.min(_ell_curvature(K, grid))))
            grid_min.append(max(0.0, H_q - float(np.min(ell))) / H_q)
            m2_slope.append(abs(float(_ell_slope(K, alpha, t["margin"])) + t["gamma"]) / t["gamma"])
            m2_cont.append(near["margin"])
            m2_value.append(abs(near["objective"] - math.log(K)) / math.log(K))
    measurements = [
        worst(soft, ids, "softmax at equal margins m*_alpha = LS target (true class, rel)", 64 * EPS),
        worst(ent, ids, "ell_alpha(m*_alpha) = entropy of q (rel)", 64 * EPS),
        worst(slope, ids, "ell_alpha'(m*_alpha) = 0 (abs)", 64 * EPS),
        worst(
            convex,
            ids,
            "ell_alpha strictly convex: min ell'' on [0, 40] (> 0)",
            0.0,
            sense=">=",
            note="ell'' = (K-1)e^{-m}/(1+(K-1)e^{-m})^2 > 0: m* is the unique minimiser",
        ),
        worst(grid_min, ids, "no margin beats H(q): (H(q) - min_grid ell) / H(q)", 64 * EPS),
        worst(m2_slope, ids, "Model 2 margin solves ell'(m) + gamma = 0 (rel)", 1e-12),
        worst(m2_cont, ids, "Model 2 margin at gamma_alpha = (1 - 1e-9)(K-1)/K (-> 0: continuous)", 1e-6),
        worst(m2_value, ids, "Model 2 objective there = log K (zero solution's value; rel)", 1e-6),
        worst(
            [r["sign_free_gamma_over_gamma"] for r in instances],
            ids,
            "sign-free gamma / gamma = sqrt((K-1)/K) < 1 (positivity costs margin)",
            1.0 - 1e-3,
        ),
    ]
    return Certificate(
        FAMILY,
        "LS margin m*, Model 2 margin",
        SOURCE,
        "m*_alpha = log(1 + K(1-alpha)/alpha) is the unique margin where softmax = q, with value H(q); "
        "Model 2's margin solves ell'(m) + gamma = 0 and vanishes continuously at the threshold",
        "closed forms evaluated; fine grid of margins; analytic derivatives",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------------------------
# Global evidence: seeded restarts of the family's solver
# --------------------------------------------------------------------------------------------------------------

RESTART_GRID = (
    model2_problem(3, 2, 6, 0.0, 0.5),
    model2_problem(3, 2, 6, 0.1, 0.9),
    model2_problem(3, 2, 6, 0.0, 1.5),
    model1_problem(3, 2, 6, 0.0, 2.0),
    model1_problem(3, 2, 6, 0.1, 0.5 * theory.smoothing_margin(3, 0.1)),
    model1_problem(3, 2, 6, 0.1, 2.0 * theory.smoothing_margin(3, 0.1)),
)
RESTARTS = 3


def _closed_value(problem: NonnegProblem) -> float:
    if problem.model == "ufm":
        return theory.model2_optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H, problem.alpha)[
            "objective"
        ]
    return theory.model1_optimum(problem.C, problem.E_W, problem.E_H, problem.alpha)["objective"]


@float64
def restarts_never_below(
    *, problems=RESTART_GRID, closed_value=_closed_value, restarts: int = RESTARTS, seed: int = 0
) -> Certificate:
    """Global evidence: ``ufm.families.nonnegative.solve`` (exact feasibility at every iterate: Model 2 by the bound
    H >= 0 (L-BFGS on squares, then projected saddle-free Newton), Model 1 by reparametrisation) from seeded random
    starts never ends below the closed-form value by more than rounding.
    Restarts at spurious points (a dead class, h = 0) end above it and are counted."""
    t0 = time.perf_counter()
    instances, ids, below, above, dead = [], [], [], [], []
    n_runs = n_conv = 0
    for i, problem in enumerate(problems):
        problem = dataclasses.replace(problem, restarts=restarts, seed=seed + i)
        sol, WH, _ = family.solve(problem)
        f_star = float(closed_value(problem))
        rel = (f_star - sol.loss) / max(1.0, abs(f_star))
        geo = [nonneg_checks.geometry(w, h, problem.labels, problem.C) for w, h in WH]
        record = {
            "model": "Model 2" if problem.model == "ufm" else "Model 1",
            "K": problem.C,
            "n": problem.n,
            "d": problem.d,
            "alpha": problem.alpha,
        }
        if problem.model == "ufm":
            record.update({"lambda_W": problem.lambda_W, "lambda_H": problem.lambda_H})
        else:
            record.update({"E_W": problem.E_W, "E_H": problem.E_H})
        record["numbers"] = {
            "closed_form_objective": f_star,
            "restart_objectives": sol.loss.tolist(),
            "restart_status": sol.status.tolist(),
            "dead_classes": [g["dead_classes"] for g in geo],
            "at_closed_form": int(np.sum(np.abs(rel) <= 1e-10)),
            "max_below_rel": float(np.max(rel)),
        }
        instances.append(record)
        ids.append(_ids(record) | {"model": record["model"]})
        below.append(float(np.max(rel)))
        above.append(int(np.sum(rel < -1e-10)))
        dead.append(int(sum(g["dead_classes"] > 0 for g in geo)))
        n_runs += sol.loss.size
        n_conv += int(np.sum(sol.converged))
    measurements = [
        worst(
            below,
            ids,
            "restarts: (f(closed form) - f(end)) / max(1, |f|) (> 0: a restart beat it)",
            ROUNDING,
            note=f"{restarts} seeded restarts per instance of ufm.families.nonnegative.solve, converged or not",
        ),
        worst(above, ids, "restarts ending above the closed form (reported)", None),
        worst(dead, ids, "restarts with a dead class (reported)", None),
    ]
    return Certificate(
        FAMILY,
        "global evidence: restarts",
        SOURCE,
        "no restart of the family's solver ends below the closed-form value",
        "ufm.families.nonnegative.solve from seeded random starts (Model 2: H >= 0 as a bound; Model 1: H = G*G, "
        "budgets by rescaling)",
        measurements,
        instances,
        restarts=n_runs,
        restarts_converged=n_conv,
        seconds=time.perf_counter() - t0,
    )


CERTIFICATES = [model2_optimality, model1_ce_optimality, model1_ls_budget_condition, margin_facts, restarts_never_below]
