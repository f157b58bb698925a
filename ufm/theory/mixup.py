"""Theorem 3.1 of seed 000 (Fisher, Meng, Papyan, ICLR 2024): mixup CE with a fixed simplex-ETF classifier.

Statement as in ``shared/theory/mixup.md``. Conventions used throughout the package:

- ETF normalisation: ``||w_c|| = m``, ``W W^T = gamma (I - 11^T/C)``, ``gamma = C m^2/(C-1)``;
- per-feature objective ``f(h) = logsumexp(W h) - y^T W h + (mu/2) ||h||^2`` with ``y = lam e_c + (1-lam) e_c'``;
- ``kappa = gamma / mu = C m^2 / ((C-1) mu)``.
  (With ``W W^T = m^2 (I - 11^T/C)`` instead, kappa would be ``m^2/mu``; with ``(lambda_H/2)||H||_F^2`` beside a
  loss averaged over n samples, ``mu = n lambda_H``.)

The optimum of f satisfies ``z = W h = kappa (y - softmax(z))`` (centred logits) and lies in the row space of W,
so every statement reduces to the centred logit vector z; the reduced problem is
``phi(z) = logsumexp(z) - y^T z + ||z||^2/(2 kappa)`` over centred z.

C = 2: there are no "other" classes. The same-class equation keeps its form (``K (1 + e^{-2K}) + kappa = 0``);
for c != c' the common level of (a, b) is free, and we fix it by ``a + b = 0``: then a = z_c, b = z_c' = -a are
the centred logits, ``h = (a w_c + b w_c')/(2 m^2) = a w_c / m^2`` (the general formula with C = 2), and the
(a, b) system reduces to the scalar equation ``a = kappa (lam - sigmoid(2a))``.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special


def kappa(C: int, m: float, mu: float) -> float:
    """Effective inverse regularisation ``kappa = C m^2 / ((C-1) mu)`` (mixup.md, "Objective")."""
    return C * m**2 / ((C - 1) * mu)


def same_class_equation(K, C: int, kappa: float):
    """``F(K) = K (C - 1 + exp(-C K)) + kappa``; Theorem 3.1's K is its unique root with K < 0."""
    return K * (C - 1 + np.exp(-C * K)) + kappa


def same_class_root(C: int, kappa: float) -> float:
    """The unique root K < 0 of ``K (C-1+e^{-CK}) + kappa = 0`` to full float64 precision.

    Solved for t = -K > 0 in the overflow-free form ``g(u) = u + logaddexp(log(C-1), C e^u) - log(kappa)``
    with u = log t, strictly increasing in u. The bracket comes from ``C-1 <= C-1+e^{Ct} <= C e^{Ct}``
    (e^{Ct} >= 1): ``W(kappa)/C <= t <= min(W(C kappa)/C, kappa/(C-1))`` with W the Lambert function.
    A final Newton step on F polishes the last bits.
    """
    if not (kappa > 0 and np.isfinite(kappa)):
        raise ValueError(f"kappa must be positive and finite, got {kappa}")
    log_kappa = np.log(kappa)

    def g(u):
        return u + np.logaddexp(np.log(C - 1), C * np.exp(u)) - log_kappa

    t_lo = special.lambertw(kappa).real / C
    t_hi = min(special.lambertw(C * kappa).real / C, kappa / (C - 1))
    u_lo, u_hi = np.log(t_lo), np.log(t_hi)
    if g(u_lo) >= 0.0:  # bracket end is the root to rounding
        u = u_lo
    elif g(u_hi) <= 0.0:
        u = u_hi
    else:
        u = optimize.brentq(g, u_lo, u_hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    t = np.exp(u)
    # Newton polish on g(log t) in t: g'(t) = 1/t + C e^{Ct}/(C-1+e^{Ct}).
    e = np.exp(-np.logaddexp(np.log(C - 1) - C * t, 0.0))  # e^{Ct}/(C-1+e^{Ct}), overflow-free
    t = t - g(np.log(t)) / (1.0 / t + C * e)
    return float(-t)


def same_class_logits(C: int, kappa: float) -> np.ndarray:
    """Centred optimal logits for a same-class point of class 0: ``(-(C-1)K, K, ..., K)``."""
    K = same_class_root(C, kappa)
    z = np.full(C, K)
    z[0] = -(C - 1) * K
    return z


def same_class_feature(W: np.ndarray, c: int, m: float, K: float) -> np.ndarray:
    """``h*_cc = -((C-1) K / m^2) w_c`` (Theorem 3.1, same class); ``||h*_cc|| = (C-1)|K|/m``."""
    C = W.shape[0]
    return -((C - 1) * K / m**2) * W[c]


def _gap_probabilities(a, b, C):
    """(p_c, p_c', p_o) for logit gaps (a, b) to the common level of the C-2 other classes, overflow-free."""
    top = np.maximum(np.maximum(a, b), 0.0)
    ea, eb, eo = np.exp(a - top), np.exp(b - top), np.exp(-top)
    Z = ea + eb + (C - 2) * eo
    return ea / Z, eb / Z, eo / Z


def different_class_gaps(C: int, kappa: float, lam, *, tol: float = 1e-15, max_iter: int = 200):
    """Logit gaps (a, b) = (z_c - z_o, z_c' - z_o) of the different-class optimum, for an array of lam.

    They solve (Theorem 3.1, different class; mixup.md)
        a = kappa (lam     - p_c  + p_o),    b = kappa (1 - lam - p_c' + p_o),
    with ``p_c = e^a/Z, p_c' = e^b/Z, p_o = 1/Z, Z = e^a + e^b + C - 2``. This is the stationarity condition of
    the strictly convex reduced objective
        phi(a, b) = log(e^a + e^b + C - 2) - lam a - (1-lam) b + (a^2 + b^2 - (a+b)^2/C) / (2 kappa),
    which is minimised here by damped Newton, vectorised over lam. For C = 2 see the module docstring.
    """
    lam = np.asarray(lam, dtype=float)
    if C == 2:
        return _two_class_gaps(kappa, lam, tol=tol, max_iter=max_iter)
    a = np.zeros_like(lam)
    b = np.zeros_like(lam)

    def phi(a, b):
        return reduced_objective(C, kappa, lam, a, b)

    for _ in range(max_iter):
        pc, pd, _po = _gap_probabilities(a, b, C)
        ga = pc - lam + (a - (a + b) / C) / kappa
        gb = pd - (1 - lam) + (b - (a + b) / C) / kappa
        haa = pc * (1 - pc) + (1 - 1 / C) / kappa
        hbb = pd * (1 - pd) + (1 - 1 / C) / kappa
        hab = -pc * pd - 1 / (C * kappa)
        det = haa * hbb - hab * hab
        da = -(hbb * ga - hab * gb) / det
        db = -(haa * gb - hab * ga) / det
        # Far from the optimum, backtrack on phi; close to it take full Newton steps, since loss differences
        # there are below rounding and an Armijo test would stall (the steps stop shrinking, not phi).
        far = np.abs(da) + np.abs(db) > 0.5
        t = np.ones_like(a)
        if far.any():
            f0 = phi(a, b)
            slope = ga * da + gb * db
            for _ in range(60):
                bad = far & (phi(a + t * da, b + t * db) > f0 + 1e-4 * t * slope)
                if not bad.any():
                    break
                t = np.where(bad, t / 2, t)
        a, b = a + t * da, b + t * db
        if np.max(np.abs(t * da) + np.abs(t * db)) <= tol * max(1.0, float(np.max(np.abs(a) + np.abs(b)))):
            break
    return a, b


def reduced_objective(C: int, kappa: float, lam, a, b):
    """``phi(a, b) = log(e^a + e^b + C - 2) - lam a - (1-lam) b + (a^2 + b^2 - (a+b)^2/C) / (2 kappa)``.

    The per-feature objective ``f(h)`` restricted to ``h = (C-1)/(C m^2) (a w_c + b w_c')`` (ETF W, multiplier m):
    the centred logits are ``z_c = a + z_o``, ``z_c' = b + z_o``, ``z_o = -(a+b)/C`` elsewhere, so
    ``logsumexp(z) - y^T z = log(e^a + e^b + C - 2) - lam a - (1-lam) b`` and ``(mu/2)||h||^2 = ||z||^2/(2 kappa)``
    with ``||z||^2 = a^2 + b^2 - (a+b)^2/C``. Also valid for C = 2 with b = -a (the term C - 2 vanishes).
    Overflow-free (log-sum-exp shifted by max(a, b, 0)).
    """
    top = np.maximum(np.maximum(a, b), 0.0)
    lse = top + np.log(np.exp(a - top) + np.exp(b - top) + (C - 2) * np.exp(-top))
    return lse - lam * a - (1 - lam) * b + (a * a + b * b - (a + b) ** 2 / C) / (2 * kappa)


def optimal_objective(C: int, kappa: float, lam) -> tuple[np.ndarray, np.ndarray]:
    """``f*(lam) = min_h f(h)`` for a different-class pair with an ETF classifier, and ``||z*||^2`` (its logits).

    ``f* = phi(a*, b*)`` with (a*, b*) from :func:`different_class_gaps`. Depends on (m, mu) only through kappa.
    The same-class value (target e_c, any lam) is the lam = 1 value: both problems are then identical.
    ``||z*||^2 / (2 kappa) = (mu/2) ||h*||^2``; by the envelope theorem ``d f*/d kappa = -||z*||^2 / (2 kappa^2)``.
    """
    lam = np.asarray(lam, dtype=float)
    a, b = different_class_gaps(C, kappa, lam)
    return reduced_objective(C, kappa, lam, a, b), a * a + b * b - (a + b) ** 2 / C


def _two_class_gaps(kappa, lam, *, tol, max_iter):
    """C = 2: a solves ``a = kappa (lam - sigmoid(2a))`` (minimiser of log 2cosh(a) - (2lam-1) a + a^2/kappa)."""
    a = np.zeros_like(lam)
    for _ in range(max_iter):
        g = np.tanh(a) - (2 * lam - 1) + 2 * a / kappa
        h = 1 - np.tanh(a) ** 2 + 2 / kappa
        step = -g / h
        # log 2cosh is convex with bounded curvature; cap the step so Newton cannot overshoot its flat tails
        step = np.clip(step, -1.0, 1.0)
        a = a + step
        if np.max(np.abs(step)) <= tol * max(1.0, float(np.max(np.abs(a)))):
            break
    return a, -a


def gap_residual(C: int, kappa: float, lam, a, b):
    """Residual of the (a, b) fixed-point system as printed in mixup.md (C >= 3), for independent checks."""
    pc, pd, po = _gap_probabilities(a, b, C)
    return np.abs(a - kappa * (lam - pc + po)) + np.abs(b - kappa * (1 - lam - pd + po))


def different_class_feature(W: np.ndarray, c: int, c_prime: int, m: float, a, b) -> np.ndarray:
    """``h*_cc'(lam) = (C-1)/(C m^2) (a w_c + b w_c')`` (Theorem 3.1, different class); a, b arrays -> (n, d)."""
    C = W.shape[0]
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    return (C - 1) / (C * m**2) * (a[:, None] * W[c] + b[:, None] * W[c_prime])


def optimal_features(W: np.ndarray, m: float, mu: float, c, c_prime, lam) -> np.ndarray:
    """Closed-form optimum h*(c, c', lam) for arrays of subproblems (n,) -> (n, d)."""
    C = W.shape[0]
    c, c_prime, lam = (np.asarray(x) for x in (c, c_prime, lam))
    k = kappa(C, m, mu)
    K = same_class_root(C, k)
    a, b = different_class_gaps(C, k, lam)
    same = c == c_prime
    h = (C - 1) / (C * m**2) * (a[:, None] * W[c] + b[:, None] * W[c_prime])
    h[same] = (-((C - 1) * K / m**2) * W[c[same]])
    return h


def boundary_distance(W: np.ndarray, c, c_prime, h) -> np.ndarray:
    """Signed distance of h to the c/c' decision boundary, ``(w_c - w_c')^T h / ||w_c - w_c'||``."""
    diff = W[c] - W[c_prime]
    return np.sum(diff * h, axis=-1) / np.linalg.norm(diff, axis=-1)


def half_mix_bulge_ratio(C: int, kappa: float) -> float:
    """``||h*_cc'(1/2)|| / ||(h*_cc + h*_c'c')/2||`` for c != c' (C >= 3; undefined for C = 2, both are 0).

    Both vectors are multiples of ``w_c + w_c'``: the ratio is ``2 s / (C |K|)`` with ``s = a(1/2) = b(1/2)``.
    """
    if C < 3:
        return float("nan")
    K = same_class_root(C, kappa)
    s, _ = different_class_gaps(C, kappa, np.array([0.5]))
    return float(2 * s[0] / (C * abs(K)))


def confidence(C: int, kappa: float, lam) -> np.ndarray:
    """Largest softmax probability at the different-class optimum, as a function of lam."""
    a, b = different_class_gaps(C, kappa, lam)
    if C == 2:
        pc = special.expit(2 * a)
        return np.maximum(pc, 1 - pc)
    pc, pd, po = _gap_probabilities(a, b, C)
    return np.maximum(np.maximum(pc, pd), po)
