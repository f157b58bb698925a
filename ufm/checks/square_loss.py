"""Checks for the square loss with weight decay (seed 003; shared/theory/square_loss_wd.md).

Tolerances: objectives 1e-12 relative (both sides are float64 evaluations at the rounding floor of a gradient
~1e-13; a wrong constant moves the objective by >= 1e-4); geometry (eps, Gram matrices, norms, NC metrics) 1e-8
relative: a joint nonconvex solve stopped at relative gradient g places factors within ~g/curvature of the
optimum manifold, and the smallest nonzero curvature here can be ~1e-4 x the largest.
Identities (I1)-(I3) hold at ANY critical point, so they are checked to 1e-9 at every solution (ReLU included).
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check

OBJECTIVE_TOL = 1e-12
GEOMETRY_TOL = 1e-8
IDENTITY_TOL = 1e-9


def rel(a, b) -> float:
    """``||a - b|| / max(||b||, 1e-300)``, Frobenius; for scalars ``|a - b| / |b|``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def identity_last_layer(lambda_L, W_L, residual, features) -> Check:
    """(I1) ``lambda_L W_L = (1/N) sum_i r_i h_i^T`` (r = Y - F, h = input of the last layer)."""
    N = residual.shape[1]
    rhs = residual @ features.T / N
    return Check("(I1) lambda_L W_L = R h^T / N", rel(lambda_L * W_L, rhs) if np.linalg.norm(rhs) > 0 else
                 float(np.linalg.norm(lambda_L * W_L)), IDENTITY_TOL)


def identity_factors(energies: list[float], residual, F, b) -> Check:
    """(I2) every factor: ``lambda_k ||theta_k||_F^2 = (1/N) sum_i <r_i, f_i - b>`` (Euler's identity)."""
    N = residual.shape[1]
    target = float(np.sum(residual * (F - b[:, None])) / N)
    worst = max(abs(e - target) for e in energies) / max(abs(target), 1e-300) if target != 0 else max(energies)
    return Check("(I2) lambda_k ||theta_k||^2 = <R, F - b>/N, every factor", float(worst), IDENTITY_TOL,
                 f"{len(energies)} factors, common value {target:.6g}")


def identity_bias(lambda_b, b, residual) -> Check:
    """(I3) ``lambda_b b = (1/N) sum_i r_i`` (lambda_b = 0 for a free bias: residuals sum to zero); relative to the
    root-mean-square residual norm, the natural scale of both sides."""
    mean_residual = residual.mean(axis=1)
    scale = max(np.linalg.norm(residual) / np.sqrt(residual.shape[1]), 1e-300)
    return Check("(I3) lambda_b b = mean residual", float(np.linalg.norm(lambda_b * b - mean_residual) / scale),
                 IDENTITY_TOL)


def close(name: str, value, expected, tol: float, detail: str = "") -> Check:
    """Relative agreement of a solver quantity with its closed form (absolute where the closed form is 0)."""
    value, expected = np.asarray(value, dtype=float), np.asarray(expected, dtype=float)
    denom = np.linalg.norm(expected)
    err = float(np.linalg.norm(value - expected) / denom) if denom > 0 else float(np.linalg.norm(value))
    return Check(name, err, tol, detail)
