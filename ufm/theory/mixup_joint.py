"""Mixup CE with the classifier learned jointly (Theorem 3.1 of Fisher et al. 2024 WITHOUT assuming an ETF classifier).

Objective (``ufm.objectives.mixup_joint``), class pairs (c, c') uniform over the C^2 ordered pairs and
lam ~ Beta(alpha, alpha) (alpha = 0: no mixup, lam in {0, 1} with probability 1/2 each, i.e. ERM):

    L(W, H) = E_pairs E_lam [ CE_soft(W h_{c c' lam}, lam e_c + (1-lam) e_c') + (mu/2) ||h_{c c' lam}||^2 ]
              + (lambda_W/2) ||W||_F^2.

The feature weight decay is weighted like the loss (inside the expectations), so in Theorem 3.1's notation
(``ufm.theory.mixup``) its mu is this mu, and ``kappa = C m^2 / ((C-1) mu)``. Statements and the hyper-parameter
map: docs/theory/mixup_joint.md.

One-dimensional reduction. If W is a simplex ETF with multiplier m (``||W||_F^2 = C m^2``), every feature solves its
own problem and takes Theorem 3.1's value, so ``L = F(m) = E_pairs E_lam f*(kappa(m), lam) + (lambda_W/2) C m^2``.
Since ``C m^2 = (C-1) mu kappa``, F depends on (lambda_W, mu) only through their product:
``F = E f*(kappa) + (C-1) lambda_W mu kappa / 2``, and ``dF/dkappa = (C-1) lambda_W mu / 2 -
E ||z*||^2 / (2 kappa^2)`` (envelope theorem, ``ufm.theory.mixup.optimal_objective``). F(0) = log C (W = 0).

Why the ETF assumption holds (argument checked numerically by the family, not assumed by it). With
``G = D^{1/2} H`` (D = diag of the sample weights pi_t), ``min_{H W^T = Z} (lambda_W/2)||W||^2 + (mu/2)
||D^{1/2} H||^2 = sigma ||D^{1/2} Z||_*`` with ``sigma = sqrt(lambda_W mu)`` (any d >= rank Z), so the
global minimum is that of the convex problem ``min_Z sum_t pi_t CE(z_t, y_t) + sigma ||D^{1/2} Z||_*``. At every
stationary point of L the rows of W sum to zero (the CE gradient's rows do), so Z is row-centred; on centred Z the
CE part is strictly convex, so the optimal Z is unique, hence equivariant under class permutations (they permute
the weighted target set onto itself). Stationarity also gives the balance ``lambda_W W^T W = mu G^T G``,
so ``W W^T = sqrt(mu/lambda_W) (Z^T D Z)^{1/2}``, a permutation-invariant centred matrix: a multiple of
``I - 11^T/C``, i.e. a simplex ETF (or W = 0). A first-order stationary point is a global minimiser iff
``||D^{1/2} (P - Y)||_op <= sigma`` (P, Y: softmax outputs and targets, one row per feature), the Burer-Monteiro
certificate of :func:`global_certificate`; it holds automatically when rank W = C-1.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

from ufm.theory import mixup


def beta_quadrature(alpha: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) integrating g(lam) against Beta(alpha, alpha) on [0, 1].

    Gauss-Jacobi with exponents (alpha-1, alpha-1) on [-1, 1] mapped by lam = (1 + x)/2: exact for polynomials of
    degree 2n-1, and the singular density (alpha < 1) is in the weight, not the integrand. Nodes are made exactly
    symmetric (lam_{n-1-k} = 1 - lam_k, in floating point too) so that mirrored pairs share a target.
    alpha = 0 means ERM: nodes (0, 1), weights (1/2, 1/2) (the alpha -> 0 limit of Beta(alpha, alpha)); n is
    then ignored.
    """
    if alpha == 0:
        return np.array([0.0, 1.0]), np.array([0.5, 0.5])
    if not (alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha must be 0 (ERM) or finite and > 0, got {alpha}")
    x, w = special.roots_jacobi(n, alpha - 1.0, alpha - 1.0)
    lam = (1.0 + x) / 2.0
    w = w / np.sum(w)
    half = n // 2
    lam[n - half :] = 1.0 - lam[:half][::-1]
    w = (w + w[::-1]) / 2
    if n % 2:
        lam[half] = 0.5
    return lam, w


def pair_average(C: int, kappa: float, nodes, weights) -> tuple[float, float]:
    """``(E_pairs E_lam f*, E_pairs E_lam ||z*||^2)`` for an ETF classifier: a fraction 1/C of the ordered pairs
    is same-class (f* is then the lam = 1 value, for every lam), the rest integrates the mixed optimum over lam."""
    f_same, z2_same = mixup.optimal_objective(C, kappa, np.array([1.0]))
    f_mix, z2_mix = mixup.optimal_objective(C, kappa, np.asarray(nodes))
    same = 1.0 / C
    return (
        float(same * f_same[0] + (1 - same) * np.dot(weights, f_mix)),
        float(same * z2_same[0] + (1 - same) * np.dot(weights, z2_mix)),
    )


def etf_objective(C: int, kappa: float, lambda_W: float, mu: float, nodes, weights) -> tuple[float, float]:
    """``F`` (see module docstring) at ``kappa`` and its derivative ``dF/dkappa``; F(0) = log C."""
    if kappa == 0:
        return float(np.log(C)), -np.inf
    f, z2 = pair_average(C, kappa, nodes, weights)
    s = (C - 1) * lambda_W * mu
    return f + s * kappa / 2, (s - z2 / kappa**2) / 2


def multiplier(C: int, kappa: float, mu: float) -> float:
    """The ETF multiplier m with ``kappa = C m^2 / ((C-1) mu)``."""
    return float(np.sqrt((C - 1) * mu * kappa / C))


def trivial_threshold(C: int, nodes, weights) -> float:
    """``E ||P y||^2 / (C-1)`` (P the centring projection): W = 0, H = 0 is the global minimum iff
    ``lambda_W mu >= `` this (the nuclear-norm problem's optimality condition at Z = 0; equivalently
    ``dF/dkappa(0) >= 0``)."""
    nodes = np.asarray(nodes)
    mixed = np.dot(weights, nodes**2 + (1 - nodes) ** 2)
    e_py2 = (1.0 - 1.0 / C) / C + (1 - 1.0 / C) * (mixed - 1.0 / C)
    return float(e_py2 / (C - 1))


def optimal_etf_kappa(
    C: int,
    lambda_W: float,
    mu: float,
    nodes,
    weights,
    log_kappa_range: tuple[float, float] = (-8.0, 28.0),
    n_scan: int = 73,
) -> tuple[float, float]:
    """Global minimiser of the one-dimensional reduction F over kappa >= 0: ``(kappa*, F(kappa*))``.

    The scan covers kappa in [e^-8, e^28 = 1.4e12] (the fixed-ETF family resolves kappa up to 1e12). Every sign
    change of dF/dkappa on a log-spaced scan is refined by Brent's method in log kappa to full
    precision (dF/dkappa is computed from the root-solved gaps, not by differencing F); the smallest F among those
    and F(0) = log C wins. kappa* = 0 (W = 0) is returned when the trivial point is optimal.
    """
    dF = lambda u: etf_objective(C, float(np.exp(u)), lambda_W, mu, nodes, weights)[1]
    grid = np.linspace(*log_kappa_range, n_scan)
    slopes = np.array([dF(u) for u in grid])
    if slopes[-1] < 0:
        raise ValueError(f"F still decreases at kappa = e^{log_kappa_range[1]:g}: widen log_kappa_range")
    best = (0.0, float(np.log(C)))
    for i in np.flatnonzero((slopes[:-1] < 0) & (slopes[1:] >= 0)):  # minima only
        u = optimize.brentq(dF, grid[i], grid[i + 1], xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
        k = float(np.exp(u))
        F = etf_objective(C, k, lambda_W, mu, nodes, weights)[0]
        if F < best[1]:
            best = (k, F)
    return best


def clean_confidence(C: int, kappa: float) -> float:
    """Softmax probability of the true class at a clean (same-class) optimum: ``1 + (C-1) K / kappa``."""
    return 1.0 + (C - 1) * mixup.same_class_root(C, kappa) / kappa


def global_certificate(P: np.ndarray, Y: np.ndarray, weights: np.ndarray, lambda_W: float, mu: float) -> float:
    """``||D^{1/2} (P - Y)||_op / sqrt(lambda_W mu)``: <= 1 (to rounding) at a stationary point certifies a
    global minimum of the joint problem (see module docstring); > 1 exhibits a descent direction of rank one."""
    Ghat = np.sqrt(np.asarray(weights))[:, None] * (np.asarray(P) - np.asarray(Y))
    return float(np.linalg.norm(Ghat, 2) / np.sqrt(lambda_W * mu))


def reduced_multiplier(problem, n_nodes: int | None = None, alpha: float | None = None) -> tuple[float, float, float]:
    """``(m*, kappa*, min F)`` of the one-dimensional reduction for ``problem`` (a
    ``ufm.problems.mixup_joint.MixupJointProblem``) with its quadrature, or with ``n_nodes`` nodes and/or another
    ``alpha`` (e.g. 2n nodes beyond the problem's own limit, or alpha = 0 for ERM)."""
    alpha = problem.alpha if alpha is None else alpha
    nodes, w = beta_quadrature(alpha, problem.n_nodes if n_nodes is None else n_nodes)
    kappa, F = optimal_etf_kappa(problem.C, problem.lambda_W, problem.mu, nodes, w)
    return multiplier(problem.C, kappa, problem.mu), kappa, F


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, max-shifted."""
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)
