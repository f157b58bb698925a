"""Checks of several-point (Dirichlet) mixup with a fixed simplex ETF (Chaudhry et al.; docs/local_linearity.md).

Tolerances as in ``ufm.checks.mixup``: every graded check takes ``tol = feature_tolerance(kappa)`` =
``max(1e-10, 100 eps (1 + kappa))`` from the family (the rounding floor of the solver's features is
``cond(Hessian) eps`` with ``cond <= 1 + kappa``); each check's docstring says how its value relates to the feature
error. Quantities that the theory does not fix (the size of NonLin for CE) are reported only.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.checks.mixup import FEATURE_TOL, relative_errors, span_basis
from ufm.metrics import nonlinearity
from ufm.theory import mixup as theory


def feature_error(h, h_theory, scale: float, tol: float = FEATURE_TOL) -> Check:
    """Max ``||h - h*|| / max(||h*||, scale)`` against the k-point closed form, ``scale`` the vertex norm (see
    ``ufm.checks.mixup.relative_errors``: near the uniform target h* is small and computed by cancellation)."""
    err = relative_errors(h, h_theory, scale)
    i = int(np.argmax(err))
    return Check("feature = k-point closed form (max rel err)", float(err[i]), tol, f"worst at mix #{i}")


def gap_system_residual(W, h, classes, lam, kappa: float, tol: float = FEATURE_TOL) -> Check:
    """The solver's own logits satisfy the k x k system: ``g_j = kappa (q_j - p_j + p_o)`` with g read off W h.

    g_j = z_{s_j} - z_o, z_o the mean logit of the unmixed classes (all equal at the optimum: their spread is
    part of the residual); for s = C the level is the centring ``z_o = 0`` (the logits are centred). Residual
    relative to ``max(1, max |g|)``. Independent of the closed-form solver: only the solver's h is used.
    Tolerance ``tol``: the residual is kappa times the reduced gradient ``p - q + Q g / kappa``, which float64
    evaluates to ~eps at best, so its floor is ~eps (1 + kappa), the feature tolerance's own floor.
    """
    C = W.shape[0]
    z = h @ W.T
    z = z - z.mean(axis=-1, keepdims=True)
    worst = 0.0
    for zi, (uniq, q) in zip(z, theory.distinct_weights(classes, lam)):
        others = np.setdiff1d(np.arange(C), uniq)
        z_o = zi[others].mean() if others.size else 0.0
        spread = float(np.max(np.abs(zi[others] - z_o))) if others.size else 0.0
        g = zi[uniq] - z_o
        res = float(theory.mixed_gap_residual(C, kappa, q[None], g[None])[0])
        worst = max(worst, (res + spread) / max(1.0, float(np.max(np.abs(g)))))
    return Check("solver logits solve the k x k gap system (rel residual)", worst, tol)


def outside_mixed_span(W, h, classes, scale: float, tol: float = FEATURE_TOL) -> Check:
    """Norm of the component of h outside span{w_c : c in the mix}, relative to the larger of ``||h||`` and
    ``scale`` (the vertex norm; h vanishes at the uniform mix). A mix naming C-1 or more classes spans the row
    space: then this is the component off the row space."""
    worst = 0.0
    for hi, cl in zip(h, np.atleast_2d(classes)):
        Q = span_basis(W[np.unique(cl)])
        resid = hi - Q @ (Q.T @ hi)
        worst = max(worst, float(np.linalg.norm(resid) / max(np.linalg.norm(hi), scale)))
    return Check("feature in span of the mixed rows (rel residual)", worst, tol)


def barycentre_bulge(h_bary, h_vertex_mean, C: int, kappa: float, k: int, tol: float = FEATURE_TOL) -> Check:
    """``||h(barycentre)|| / ||mean of the k vertices||`` against ``k s/(C|K|)`` (s: scalar root, brentq)."""
    name = "barycentre bulge ratio (solver vs scalar root)"
    if k >= C:
        return Check.undefined(name, "k >= C: both vectors vanish")
    expected = theory.barycentre_bulge_ratio(C, kappa, k)
    ratios = np.linalg.norm(h_bary, axis=-1) / np.linalg.norm(h_vertex_mean, axis=-1)
    err = float(np.max(np.abs(ratios - expected)) / expected)
    return Check(name, err, tol, f"ratio {np.mean(ratios):.12g}, closed form {expected:.12g}")


def square_linear(h_square_mix, h_square_points, lam, tol: float = FEATURE_TOL) -> Check:
    """Square loss: the optimum is exactly linear in the mix (unnormalised NonLin / feature scale = 0)."""
    err = nonlinearity(h_square_mix, h_square_points, lam, normalise=False)
    scale = np.max(np.linalg.norm(h_square_points, axis=-1))
    return Check("square loss: unnormalised NonLin = 0 (rel)", float(np.max(err) / scale), tol)


def unit_rows(h: np.ndarray) -> np.ndarray:
    """``h / ||h||`` row by row, with the zero vector (no direction) mapped to 0."""
    norm = np.linalg.norm(h, axis=-1, keepdims=True)
    return np.divide(h, norm, out=np.zeros_like(h), where=norm > 0)


def square_normalised_floor(h_square_mix, h_square_points, lam, r, tol: float = FEATURE_TOL) -> Check:
    """Square loss: the normalised NonLin (eq. 3) equals the linear-map floor ``1 - r`` (NOT zero), compared as
    ``max r |NonLin - (1 - r)|``; ``r`` (n,) is ``theory.linear_map_norm`` of each mix's target.

    Why weighted by r: the exactly linear optimum has norm ``r`` times the vertex norm, so a feature error delta
    (relative to the vertex norm) moves its direction, and NonLin, by ~delta / r. At the uniform target (C = 2,
    lam = 1/2) r = 0 and the feature is 0: eq. (3) normalises a zero vector and is undefined. The weighted
    difference is at most ~2 delta at every r (also where the direction is rounding noise, r <~ delta, since
    |NonLin - floor| <= 2 there), so it is graded against the feature tolerance. A feature that is exactly 0 has no
    direction: its term is r (0 at the uniform target, where 0 is the optimum; a failure where r > tol).
    """
    h_square_mix = np.asarray(h_square_mix, dtype=float)
    unit_mix = unit_rows(h_square_mix)
    pts = np.asarray(h_square_points, dtype=float)
    unit_pts = unit_rows(pts.reshape(-1, pts.shape[-1])).reshape(pts.shape)
    nl = np.linalg.norm(unit_mix - np.einsum("nk,nkd->nd", np.asarray(lam, dtype=float), unit_pts), axis=-1)
    r = np.asarray(r, dtype=float)
    is_zero = np.linalg.norm(h_square_mix, axis=-1) == 0
    err = float(np.max(np.where(is_zero, r, r * np.abs(nl - (1.0 - r)))))
    zero = int(np.sum(is_zero))
    mean = f"mean {np.mean(nl[r > 0]):.6g} over the mixes with r > 0 " if np.any(r > 0) else ""
    return Check("square loss: normalised NonLin = floor 1 - r(q) (r-weighted abs)", err, tol,
                 mean + "(eq. 3 is positive for an exactly linear map)" + (f"; {zero} zero feature(s)" if zero else ""))
