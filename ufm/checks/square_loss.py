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
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check

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


def close(name: str, value, expected, tol: float, detail: str = "") -> Check:
    """Relative agreement of a solver quantity with its closed form (absolute where the closed form is 0)."""
    value, expected = np.asarray(value, dtype=float), np.asarray(expected, dtype=float)
    denom = np.linalg.norm(expected)
    err = float(np.linalg.norm(value - expected) / denom) if denom > 0 else float(np.linalg.norm(value))
    return Check(name, err, tol, detail)
