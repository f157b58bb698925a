"""Checks of Theorem 3.1 (Fisher, Meng, Papyan, ICLR 2024) and the properties of its optimum (``ufm.theory.mixup``).

Each function takes solver output (numpy) and returns one :class:`ufm.checks.Check`.

Tolerance: every graded comparison of the solver's features (or of what is computed from them) uses
``tol = feature_tolerance(kappa) = max(1e-10, 100 eps (1 + kappa))``, passed in by the family. At the solver's
rounding floor the error is about ``cond(Hessian) * eps`` with ``cond <= 1 + kappa`` (Hessian
``W^T (diag p - p p^T) W + mu I``, ``||W||^2 = gamma = kappa mu``; the square-loss contrast has
``W^T W + mu I``, cond = 1 + kappa exactly): for kappa <= 4e5 the tolerance is the fixed 1e-10 (met with a margin
of 100x or more at kappa <= 1e3); beyond, float64 itself cannot deliver 1e-10 and the tolerance follows the
conditioning. Any genuine deviation of a closed form (a wrong constant, a missing term) shows up at 1e-3 or
larger. A check that is undefined at a configuration (C = 2 has no direction outside span{w_c, w_c'}; no
lam = 1/2 on an even grid) is VOID with its reason.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.checks.nonlinearity import (
    nonlinearity_defined,
    square_normalised_floor,
    undefined_note,
)
from ufm.metrics import nonlinearity
from ufm.theory import mixup as theory

FEATURE_TOL = 1e-10


def feature_tolerance(kappa: float) -> float:
    """Relative tolerance for solver-vs-theory comparisons: 1e-10, or the conditioning floor if larger."""
    return max(FEATURE_TOL, 100 * np.finfo(float).eps * (1 + kappa))


def relative_errors(h: np.ndarray, h_theory: np.ndarray, scale: float) -> np.ndarray:
    """``||h - h_theory|| / max(||h_theory||, scale)``, ``scale`` the same-class (vertex) norm.

    Why not relative to ``||h_theory||`` alone: near the uniform target (C = 2 at lam = 1/2; many-point mixes of
    nearly equal weights) the optimum is small, ``r`` times the vertex norm, and float64 computes it from the
    cancelling difference ``y - softmax(z)``, so its relative error grows like eps / r (seen: 1.3e-10 at r ~ 1e-6,
    kappa = 1e-12); the solver's error is of the vertex norm's order, which is what the tolerance bounds. Where the
    optimum is exactly 0 this is the error relative to the vertex norm.
    """
    norm = np.linalg.norm(h_theory, axis=-1)
    return np.linalg.norm(h - h_theory, axis=-1) / np.maximum(norm, scale)


def feature_error(rel_err: np.ndarray, c, c_prime, lam, tol: float = FEATURE_TOL) -> Check:
    i = int(np.argmax(rel_err))
    return Check(
        "feature = Theorem 3.1 closed form (max rel err)",
        float(rel_err[i]),
        tol,
        f"worst at c={c[i]}, c'={c_prime[i]}, lam={lam[i]:.4g}",
    )


def same_class_lambda_independence(h, c, c_prime, tol: float = FEATURE_TOL) -> Check:
    """Same-class features do not move with lambda: max over c of max_lam ||h(lam) - mean_lam h|| / ||mean||."""
    worst = 0.0
    for k in np.unique(c):
        hk = h[(c == k) & (c_prime == k)]
        mean = hk.mean(axis=0)
        worst = max(worst, float(np.max(np.linalg.norm(hk - mean, axis=-1)) / np.linalg.norm(mean)))
    return Check("same-class feature independent of lambda (rel spread)", worst, tol)


def alignment_tolerance(tol: float) -> float:
    """Tolerance of ``1 - cos``: a feature within ``tol`` (relative) of a multiple of w_c has ``1 - cos <= tol^2``
    (to first order ``theta^2/2``, ``theta <= tol``); never below 1e-12 (cos itself is computed to a few eps)."""
    return max(1e-12, tol * tol)


def same_class_alignment(W, h, c, c_prime, tol: float = FEATURE_TOL) -> Check:
    """``1 - cos(h_cc, w_c)`` (Theorem 3.1: h_cc is a positive multiple of w_c); tolerance
    :func:`alignment_tolerance` of the feature tolerance ``tol``."""
    same = c == c_prime
    hs, ws = h[same], W[c[same]]
    cos = np.sum(hs * ws, axis=-1) / (np.linalg.norm(hs, axis=-1) * np.linalg.norm(ws, axis=-1))
    return Check("same-class feature along w_c (1 - cos)", float(np.max(1.0 - cos)), alignment_tolerance(tol))


def span_basis(rows: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d x rank) of the span of ``rows`` (k x d), rank-revealing: ETF rows are linearly
    dependent (they sum to 0; for C = 2, w_1 = -w_0), where a QR factor would add a spurious rounding direction."""
    U, sv, _ = np.linalg.svd(np.asarray(rows, dtype=float).T, full_matrices=False)
    return U[:, sv > 1e-10 * sv[0]]


def outside_pair_span(W, h, c, c_prime, scale: float, tol: float = FEATURE_TOL) -> Check:
    """Norm of the component of a different-class feature outside span{w_c, w_c'}, relative to the larger of the
    feature's norm and ``scale`` (the same-class norm): the feature vanishes at C = 2, lam = 1/2, where its own norm
    is no scale. For C = 2 the span is the line of w_c (w_c' = -w_c), i.e. the row space."""
    diff = c != c_prime
    worst = 0.0
    for i in np.flatnonzero(diff):
        Q = span_basis(W[[c[i], c_prime[i]]])
        resid = h[i] - Q @ (Q.T @ h[i])
        worst = max(worst, float(np.linalg.norm(resid) / max(np.linalg.norm(h[i]), scale)))
    return Check("different-class feature in span{w_c, w_c'} (rel residual)", worst, tol)


def boundary_distance_odd(W, h, c, c_prime, lam, n_lambdas: int, tol: float = FEATURE_TOL) -> Check:
    """Signed distance s(lam) to the c/c' boundary is odd about 1/2: ``|s(lam) + s(1-lam)| / max|s|``.

    Uses the grid's symmetry: lam_i + lam_{n-1-i} = 1 (to rounding, for ``np.linspace(0, 1, n)``).
    """
    diff = c != c_prime
    s = theory.boundary_distance(W, c[diff], c_prime[diff], h[diff]).reshape(-1, n_lambdas)
    odd = np.max(np.abs(s + s[:, ::-1])) / np.max(np.abs(s))
    return Check("boundary distance odd about lam = 1/2 (rel)", float(odd), tol)


def half_mix_bulge(h, c, c_prime, lam, C: int, kappa: float, tol: float = FEATURE_TOL) -> Check:
    """At lam = 1/2, ``||h_cc'|| / ||(h_cc + h_c'c')/2||`` against the closed form ``2 s/(C|K|)`` (C >= 3)."""
    name = "lam = 1/2 bulge ratio (solver vs closed form)"
    half = np.isclose(lam, 0.5, rtol=0, atol=1e-15)
    if C < 3 or not np.any(half & (c != c_prime)):
        why = "C = 2: both vectors are 0" if C < 3 else "lam = 1/2 not on the grid (use an odd grid size)"
        return Check.undefined(name, why)
    expected = theory.half_mix_bulge_ratio(C, kappa)
    same = {int(k): h[(c == k) & (c_prime == k)].mean(axis=0) for k in np.unique(c)}
    ratios = [
        np.linalg.norm(h[i]) / np.linalg.norm((same[int(c[i])] + same[int(c_prime[i])]) / 2)
        for i in np.flatnonzero(half & (c != c_prime))
    ]
    err = float(np.max(np.abs(np.array(ratios) - expected)) / expected)
    return Check(name, err, tol, f"ratio {np.mean(ratios):.12g}, closed form {expected:.12g}")


def dimension_independence(
    z: np.ndarray, z_other: np.ndarray, d: int, d_other: int, scale: float, tol: float = FEATURE_TOL
) -> Check:
    """Optimal logits ``W h`` are the same for two feature dimensions (and two random ETF embeddings): max abs
    difference relative to the larger of ``max |z|`` and ``scale`` (the same-class logit ``(C-1)|K|``; the logits of
    mixes at the uniform target are 0)."""
    err = float(np.max(np.abs(z - z_other)) / max(float(np.max(np.abs(z))), scale))
    return Check(f"independent of d (logits, d={d} vs d={d_other})", err, tol)


def square_loss_linearity(h_square, c, c_prime, n_lambdas: int, tol: float = FEATURE_TOL) -> Check:
    """With the square loss the optimum is linear in lam: ``h(lam) = lam h(1) + (1-lam) h(0)``."""
    diff = c != c_prime
    hs = h_square[diff].reshape(-1, n_lambdas, h_square.shape[-1])
    lam = np.linspace(0.0, 1.0, n_lambdas)[None, :, None]
    linear = lam * hs[:, -1:, :] + (1 - lam) * hs[:, :1, :]
    err = float(np.max(np.linalg.norm(hs - linear, axis=-1)) / np.max(np.linalg.norm(hs, axis=-1)))
    return Check("square loss: optimum linear in lambda (rel)", err, tol)


def calibration_gap(W, h, c, c_prime, lam) -> Check:
    """Reported only: max |max softmax(W h) - max(lam, 1-lam)| (-> 0 as kappa -> infinity)."""
    z = h @ W.T
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    target = np.where(c == c_prime, 1.0, np.maximum(lam, 1 - lam))
    gap = np.abs(p.max(axis=-1) - target)
    return Check(
        "calibration gap |confidence - max(lam, 1-lam)|",
        float(np.max(gap)),
        None,
        "under-confidence on mixed points; tends to 0 as kappa grows",
    )


def grid_checks(problem, main, alt, square, y, tol: float) -> tuple[list[Check], dict]:
    """The pair grid's checks after the convergence check, in report order, and the values the report states.

    Args:
        problem: the ``MixupProblem`` (points = 2).
        main, alt, square: the ``ufm.objectives.mixup.MixupSolution`` of the main solve, of the d-independence
            problem (``ufm.objectives.mixup.other_dimension``) and of the square-loss contrast.
        y: the grid's soft targets (n, C).
        tol: :func:`feature_tolerance` of the problem's kappa.

    Returns:
        ``(checks, values)``: values holds K (root and as the solver sees it), the same-class norm, the relative
        errors, the closed-form features, and the CE NonLin over the grid with its linear-map floor.
    """
    W, c, c_prime, lam, h = main.W, main.c, main.c_prime, main.lam, main.h
    h_theory = theory.optimal_features(W, problem.m, problem.mu, c, c_prime, lam)
    K = theory.same_class_root(problem.C, problem.kappa)
    same_norm = (problem.C - 1) * abs(K) / problem.m
    rel_err = relative_errors(h, h_theory, same_norm)
    # K as the solver sees it: the centred non-target logit of a same-class optimum (Theorem 3.1).
    z = h @ W.T
    same = c == c_prime
    z_same = z[same] - z[same].mean(axis=-1, keepdims=True)
    K_solver = float(np.mean(z_same[np.arange(z_same.shape[0]), (c[same] + 1) % problem.C]))
    result = [
        feature_error(rel_err, c, c_prime, lam, tol),
        Check("K: solver's non-target logit vs root (rel)", abs(K_solver - K) / abs(K), tol),
        same_class_lambda_independence(h, c, c_prime, tol),
        same_class_alignment(W, h, c, c_prime, tol),
        outside_pair_span(W, h, c, c_prime, same_norm, tol),
        boundary_distance_odd(W, h, c, c_prime, lam, problem.n_lambdas, tol),
        half_mix_bulge(h, c, c_prime, lam, problem.C, problem.kappa, tol),
        dimension_independence(z, alt.h @ alt.W.T, problem.d, alt.h.shape[-1], (problem.C - 1) * abs(K), tol),
        square_loss_linearity(square.h, c, c_prime, problem.n_lambdas, tol),
        calibration_gap(W, h, c, c_prime, lam),
    ]
    # Eq. (3) of Chaudhry et al. on the pair grid: vertices are the same-class optima (lambda-independent).
    vertex = np.stack([h[(c == k) & (c_prime == k)].mean(axis=0) for k in range(problem.C)])
    vertex_sq = np.stack([square.h[(c == k) & (c_prime == k)].mean(axis=0) for k in range(problem.C)])
    pair_lam = np.stack([lam, 1 - lam], axis=-1)
    r = theory.linear_map_norm(problem.C, y)
    defined = nonlinearity_defined(h, r)
    nl = nonlinearity(h[defined], vertex[np.stack([c, c_prime], -1)][defined], pair_lam[defined])
    floor = 1.0 - r[defined]
    result += [
        square_normalised_floor(square.h, vertex_sq[np.stack([c, c_prime], -1)], pair_lam, r, tol),
        Check(
            "NonLin eq. (3), CE, mean over the grid",
            float(np.mean(nl)),
            None,
            f"linear-map floor {np.mean(floor):.6g}; excess {np.mean(nl - floor):.3e}" + undefined_note(defined),
        ),
    ]
    values = {
        "K": K,
        "K_solver": K_solver,
        "same_norm": same_norm,
        "rel_err": rel_err,
        "h_theory": h_theory,
        "nonlin": float(np.mean(nl)),
        "nonlin_floor": float(np.mean(floor)),
    }
    return result, values


def grid_report(problem, main, sol, v: dict) -> tuple[list[str], dict, dict]:
    """The pair grid's headline, numbers and arrays (``main``: the main solve's ``MixupSolution``, ``sol`` its
    Solution, ``v`` :func:`grid_checks`' values)."""
    bulge = theory.half_mix_bulge_ratio(problem.C, problem.kappa)
    headline = [
        f"ufm mixup: C={problem.C} d={problem.d} m={problem.m:g} mu={problem.mu:g} kappa={problem.kappa:.6g}  "
        f"{problem.n_lambdas} lambdas x {problem.C**2} ordered pairs = {main.c.size} subproblems",
        f"K (root < 0 of K(C-1+e^(-CK)) + kappa = 0) = {v['K']:.15g}   solver: {v['K_solver']:.15g}",
        f"same-class norm (C-1)|K|/m = {v['same_norm']:.12g}   lam=1/2 bulge ratio = {bulge:.12g}",
    ]
    numbers = {
        "kappa": problem.kappa,
        "K": v["K"],
        "K_solver": v["K_solver"],
        "same_class_norm": v["same_norm"],
        "half_mix_bulge_ratio": bulge,
        "max_rel_error": float(np.max(v["rel_err"])),
        "nonlin": v["nonlin"],
        "nonlin_floor": v["nonlin_floor"],
    }
    arrays = {
        "W": main.W,
        "c": main.c,
        "c_prime": main.c_prime,
        "lam": main.lam,
        "h": main.h,
        "h_theory": v["h_theory"],
        "rel_error": v["rel_err"],
        "loss": sol.loss,
        "grad_norm": sol.grad_norm,
        "steps": sol.steps,
        "converged": sol.converged,
    }
    return headline, numbers, arrays
