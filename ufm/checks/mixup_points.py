"""Checks of several-point (Dirichlet) mixup with a fixed simplex ETF (seed 001; docs/local_linearity.md).

Tolerances as in ``ufm.checks.mixup`` (1e-10 relative; the rounding floor is ``cond(Hessian) eps`` with
``cond <= 1 + kappa``). Quantities that the theory does not fix (the size of NonLin for CE) are reported only.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.checks.mixup import FEATURE_TOL
from ufm.metrics import nonlinearity
from ufm.theory import mixup as theory


def feature_error(h, h_theory, scale: float) -> Check:
    """Max ``||h - h*|| / ||h*||`` against the k-point closed form (relative to ``scale`` where h* = 0)."""
    norm = np.linalg.norm(h_theory, axis=-1)
    err = np.linalg.norm(h - h_theory, axis=-1) / np.where(norm > 0, norm, scale)
    i = int(np.argmax(err))
    return Check("feature = k-point closed form (max rel err)", float(err[i]), FEATURE_TOL, f"worst at mix #{i}")


def gap_system_residual(W, h, classes, lam, kappa: float) -> Check:
    """The solver's own logits satisfy the k x k system: ``g_j = kappa (q_j - p_j + p_o)`` with g read off W h.

    g_j = z_{s_j} - z_o, z_o the mean logit of the unmixed classes (all equal at the optimum: their spread is
    part of the residual); for s = C the level is the centring ``z_o = 0`` (the logits are centred). Residual
    relative to ``max(1, max |g|)``. Independent of the closed-form solver: only the solver's h is used.
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
    return Check("solver logits solve the k x k gap system (rel residual)", worst, FEATURE_TOL)


def outside_mixed_span(W, h, classes) -> Check:
    """Relative norm of the component of h outside span{w_c : c in the mix}."""
    worst = 0.0
    for hi, cl in zip(h, np.atleast_2d(classes)):
        rows = W[np.unique(cl)]
        if rows.shape[0] >= W.shape[0] - 1:  # the span is the whole row space
            continue
        Q, _ = np.linalg.qr(rows.T)
        resid = hi - Q @ (Q.T @ hi)
        worst = max(worst, float(np.linalg.norm(resid) / max(np.linalg.norm(hi), np.finfo(float).tiny)))
    return Check("feature in span of the mixed rows (rel residual)", worst, FEATURE_TOL)


def barycentre_bulge(h_bary, h_vertex_mean, C: int, kappa: float, k: int) -> Check:
    """``||h(barycentre)|| / ||mean of the k vertices||`` against ``k s/(C|K|)`` (s: scalar root, brentq)."""
    expected = theory.barycentre_bulge_ratio(C, kappa, k)
    if not np.isfinite(expected):
        return Check("barycentre bulge ratio (solver vs scalar root)", float("nan"), None, "k >= C: both vanish")
    ratios = np.linalg.norm(h_bary, axis=-1) / np.linalg.norm(h_vertex_mean, axis=-1)
    err = float(np.max(np.abs(ratios - expected)) / expected)
    return Check("barycentre bulge ratio (solver vs scalar root)", err, FEATURE_TOL,
                 f"ratio {np.mean(ratios):.12g}, closed form {expected:.12g}")


def square_linear(h_square_mix, h_square_points, lam) -> Check:
    """Square loss: the optimum is exactly linear in the mix (unnormalised NonLin / feature scale = 0)."""
    err = nonlinearity(h_square_mix, h_square_points, lam, normalise=False)
    scale = np.max(np.linalg.norm(h_square_points, axis=-1))
    return Check("square loss: unnormalised NonLin = 0 (rel)", float(np.max(err) / scale), FEATURE_TOL)


def square_normalised_floor(h_square_mix, h_square_points, lam, q_floor) -> Check:
    """Square loss: the normalised NonLin (eq. 3) equals the linear-map floor ``1 - r(q)`` (NOT zero)."""
    nl = nonlinearity(h_square_mix, h_square_points, lam, normalise=True)
    err = float(np.max(np.abs(nl - q_floor)))
    return Check("square loss: normalised NonLin = floor 1 - r(q) (abs)", err, FEATURE_TOL,
                 f"mean {np.mean(nl):.6g} (eq. 3 is positive for an exactly linear map)")
