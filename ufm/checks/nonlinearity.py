"""NonLin, the non-linearity measure of Chaudhry et al.'s eq. (3), on mixup optima with a fixed simplex ETF
(docs/local_linearity.md): where it is defined, its means over mixes with the floor of an exactly linear map
(``ufm.theory.mixup.linear_map_nonlinearity``), its closed-form sweep over kappa, and the graded square-loss
statement (NonLin equals that floor; tolerance the feature tolerance of ``ufm.checks.mixup``, see
:func:`square_normalised_floor`). The size of NonLin for CE is reported only: the theory does not fix it.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.metrics import nonlinearity
from ufm.theory import mixup as theory


def unit_rows(h: np.ndarray) -> np.ndarray:
    """``h / ||h||`` row by row, with the zero vector (no direction) mapped to 0."""
    norm = np.linalg.norm(h, axis=-1, keepdims=True)
    return np.divide(h, norm, out=np.zeros_like(h), where=norm > 0)


def square_normalised_floor(h_square_mix, h_square_points, lam, r, tol: float) -> Check:
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
    return Check(
        "square loss: normalised NonLin = floor 1 - r(q) (r-weighted abs)",
        err,
        tol,
        mean + "(eq. 3 is positive for an exactly linear map)" + (f"; {zero} zero feature(s)" if zero else ""),
    )


# Below this norm of the linear mix of unit vertices (r, ``theory.linear_map_norm``) the optimum's direction is not
# determined by float64 (the exact optimum is 0 at the uniform target; what the solver returns there is rounding
# noise): eq. (3), which normalises it, is undefined and left out of the reported (ungraded) CE means.
NONLIN_UNDEFINED_R = 1e-8
KAPPA_SWEEP = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4)


def nonlinearity_defined(h_mix: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Mixes where the normalised NonLin is defined: a nonzero mixed feature whose target is not (to rounding)
    uniform."""
    return (r > NONLIN_UNDEFINED_R) & (np.linalg.norm(h_mix, axis=-1) > 0)


def undefined_note(defined: np.ndarray) -> str:
    """The detail's note on the mixes left out of a NonLin mean (empty if none)."""
    left = int(np.sum(~defined))
    return f"; {left} mix(es) at the uniform target left out (zero optimum: eq. (3) undefined)" if left else ""


def nonlinearity_summary(h_mix, h_vertex, classes, lam, y, C: int) -> dict:
    """Mean NonLin over the mixes: normalised (eq. 3), the linear-map floor and the excess over it (over the mixes
    where eq. (3) is defined, see :func:`nonlinearity_defined`; ``undefined`` counts the others), and the
    unnormalised distance relative to the vertex norm (over all mixes)."""
    defined = nonlinearity_defined(h_mix, theory.linear_map_norm(C, y))
    points = h_vertex[classes[defined]]
    nl = nonlinearity(h_mix[defined], points, lam[defined])
    floor = theory.linear_map_nonlinearity(C, y[defined])
    raw = nonlinearity(h_mix, h_vertex[classes], lam, normalise=False) / np.mean(np.linalg.norm(h_vertex, axis=-1))
    mean = (lambda a: float(np.mean(a))) if np.any(defined) else (lambda a: float("nan"))  # none defined: NaN
    return {
        "nonlin": mean(nl),
        "floor": mean(floor),
        "excess": mean(nl - floor),
        "unnormalised_rel": float(np.mean(raw)),
        "undefined": int(np.sum(~defined)),
    }


def nonlinearity_vs_kappa(problem, W, classes, lam, y, kappas=KAPPA_SWEEP) -> list[dict]:
    """Closed-form NonLin of the CE optimum at the same mixes for a sweep of kappa (mu varied, m fixed)."""
    rows = []
    C, m = problem.C, problem.m
    vertex_classes = np.repeat(np.arange(C)[:, None], problem.points, axis=1)
    for kap in kappas:
        mu = C * m**2 / ((C - 1) * kap)
        h_mix = theory.mixed_optimal_features(W, m, mu, classes, lam)
        h_vertex = theory.mixed_optimal_features(W, m, mu, vertex_classes, np.full(vertex_classes.shape, 1.0))
        rows.append({"kappa": kap, **nonlinearity_summary(h_mix, h_vertex, classes, lam, y, C)})
    return rows
