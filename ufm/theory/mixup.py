"""Theorem 3.1 of Fisher, Meng, Papyan, "Pushing Boundaries: Mixup's Influence on Neural Collapse" (ICLR 2024):
mixup CE with a fixed simplex-ETF classifier. Statement, origins (the paper's or derived here), normalisation and
hyper-parameter map: docs/theory/mixup.md.

Statement (in the conventions below). For every pair of classes (c, c') and lam in [0, 1], f has a unique
minimiser h*, and it lies in the span of the classifier rows:

- same class (c = c'): ``h*_cc = -((C-1) K / m^2) w_c``, independent of lam, with K < 0 the unique negative root
  of ``K (C - 1 + e^{-C K}) + kappa = 0``; the centred logits are ``-(C-1) K`` on class c and K on the others;
- different classes (c != c', C >= 3): ``h*_cc'(lam) = (C-1)/(C m^2) (a w_c + b w_c')``, where the logit gaps
  ``a = z_c - z_o``, ``b = z_c' - z_o`` to the common logit z_o of the C-2 other classes solve
  ``a = kappa (lam - p_c + p_o)``, ``b = kappa (1 - lam - p_c' + p_o)`` with ``p_c = e^a/Z``, ``p_c' = e^b/Z``,
  ``p_o = 1/Z``, ``Z = e^a + e^b + C - 2`` (the softmax probabilities at the optimum); (a, b) is the unique
  minimiser of the strictly convex reduced objective of :func:`different_class_gaps`, and ``b(lam) = a(1-lam)``.

Conventions used throughout the package:

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
    """Effective inverse regularisation ``kappa = C m^2 / ((C-1) mu)`` (see the module docstring)."""
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
    """``h*_cc = -((C-1) K / m^2) w_c`` (Theorem 3.1, same class; docs/theory/mixup.md); ``||h*_cc|| = (C-1)|K|/m``."""
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

    They solve (Theorem 3.1, different class; module docstring and docs/theory/mixup.md)
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
    """Residual of the (a, b) fixed-point system as stated in Theorem 3.1 (C >= 3), for independent checks."""
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
    h[same] = -((C - 1) * K / m**2) * W[c[same]]
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


# ---------------------------------------------------------------------------------------------------------------
# Several-point (Dirichlet) mixup, Chaudhry et al.: y = sum_j lam_j e_{c_j} over k mixed points (classes may repeat).
#
# The soft target only depends on the s distinct classes named by the mix and their total weights q (s-vector,
# sum 1). The optimum of f lies in the span of the s mixed rows, and with g_j = z_{s_j} - z_o the logit gaps to
# the common logit z_o of the C - s other classes (docs/local_linearity.md):
#     g_j = kappa (q_j - p_j + p_o),   p_j = e^{g_j}/Z,  p_o = 1/Z,  Z = sum_j e^{g_j} + C - s,      (k x k system)
# the stationarity condition of the strictly convex reduced objective
#     phi(g) = log(sum_j e^{g_j} + C - s) - q^T g + (||g||^2 - (1^T g)^2/C) / (2 kappa),
# and  h* = (C-1)/(C m^2) sum_j g_j w_{s_j}.  s = 1 is the same-class case (g = -C K), s = 2 the (a, b) system.
# s = C (every class mixed, no "other" class): phi is invariant under g -> g + t 1; the level is fixed by
# 1^T g = 0 (then g = z, the centred logits), as the two-point code does for C = 2.
# ---------------------------------------------------------------------------------------------------------------


def distinct_weights(classes, lam):
    """Distinct classes of each mix and their total weights.

    ``classes`` (n, k) integer, ``lam`` (n, k) in the simplex -> list of n pairs (sorted distinct classes, q).
    """
    classes, lam = np.atleast_2d(classes), np.atleast_2d(lam)
    out = []
    for cl, la in zip(classes, lam):
        uniq, inv = np.unique(cl, return_inverse=True)
        out.append((uniq, np.bincount(inv.ravel(), weights=la, minlength=uniq.size)))
    return out


def _mixed_gap_probabilities(g, C: int):
    """(p, p_o) for gaps g (n, s) to the common level of the C - s other classes, overflow-free (p_o = 0 if s = C)."""
    s = g.shape[-1]
    top = np.maximum(np.max(g, axis=-1, keepdims=True), 0.0)
    e = np.exp(g - top)
    eo = np.exp(-top)
    Z = np.sum(e, axis=-1, keepdims=True) + (C - s) * eo
    return e / Z, ((C - s) > 0) * eo[..., 0] / Z[..., 0]


def mixed_gaps_newton(C: int, kappa: float, q, *, tol: float = 1e-15, max_iter: int = 200) -> np.ndarray:
    """Minimiser g (n, s) of the reduced objective phi for weights q (n, s), by damped Newton, vectorised over n.

    Valid for any 1 <= s <= C (for s = C the level is fixed by 1^T g = 0). The Hessian
    ``diag(p) - p p^T + Q / kappa`` with ``Q = I - 11^T/C`` (``Q = I`` when s = C, see the section comment) is
    positive definite, so phi is strictly convex and Newton with backtracking converges globally.
    """
    q = np.atleast_2d(np.asarray(q, dtype=float))
    n, s = q.shape
    if s > C:
        raise ValueError(f"at most C = {C} distinct classes, got {s}")
    shift_free = s == C  # no other class: fix the free level by 1^T g = 0, i.e. drop the -11^T/C term
    Q = np.eye(s) - (0.0 if shift_free else 1.0 / C) * np.ones((s, s))

    def phi(g):
        top = np.maximum(np.max(g, axis=-1), 0.0)
        lse = top + np.log(np.sum(np.exp(g - top[:, None]), axis=-1) + (C - s) * np.exp(-top))
        return lse - np.sum(q * g, axis=-1) + np.einsum("ni,ij,nj->n", g, Q, g) / (2 * kappa)

    g = np.zeros((n, s))
    for _ in range(max_iter):
        p, _ = _mixed_gap_probabilities(g, C)
        grad = p - q + g @ Q / kappa
        hess = p[:, :, None] * np.eye(s) - p[:, :, None] * p[:, None, :] + Q / kappa
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        # As in different_class_gaps: backtrack on phi only far from the optimum, where phi differences are
        # meaningful; near it take full steps (phi is flat to rounding there and an Armijo test would stall).
        far = np.sum(np.abs(step), axis=-1) > 0.5
        t = np.ones(n)
        if far.any():
            f0 = phi(g)
            slope = np.sum(grad * step, axis=-1)
            for _ in range(60):
                bad = far & (phi(g + t[:, None] * step) > f0 + 1e-4 * t * slope)
                if not bad.any():
                    break
                t = np.where(bad, t / 2, t)
        g = g + t[:, None] * step
        size = float(np.max(np.sum(np.abs(t[:, None] * step), axis=-1)))
        if size <= tol * max(1.0, float(np.max(np.sum(np.abs(g), axis=-1)))):
            break
    return g


def mixed_gaps(C: int, kappa: float, q) -> np.ndarray:
    """Logit gaps g (n, s) of the k-point optimum for distinct-class weights q (n, s) (section comment above).

    Reuses the two-point closed forms where they apply: s = 1 is the same-class case (``g = -C K``, K the root of
    Theorem 3.1), s = 2 the (a, b) system of :func:`different_class_gaps`; s >= 3 is solved by
    :func:`mixed_gaps_newton`.
    """
    q = np.atleast_2d(np.asarray(q, dtype=float))
    s = q.shape[1]
    if s == 1:
        return np.full(q.shape, -C * same_class_root(C, kappa))
    if s == 2:
        a, b = different_class_gaps(C, kappa, q[:, 0])
        return np.stack([a, b], axis=-1)
    return mixed_gaps_newton(C, kappa, q)


def mixed_gap_residual(C: int, kappa: float, q, g) -> np.ndarray:
    """Max-norm residual of the k x k fixed-point system ``g_j = kappa (q_j - p_j + p_o)`` (s = C: p_o = 0)."""
    p, po = _mixed_gap_probabilities(np.atleast_2d(g), C)
    return np.max(np.abs(g - kappa * (q - p + po[:, None])), axis=-1)


def mixed_optimal_features(W: np.ndarray, m: float, mu: float, classes, lam) -> np.ndarray:
    """Closed-form optimum h* (n, d) of the k-point problems (classes (n, k), lam (n, k)).

    ``h* = (C-1)/(C m^2) sum_j g_j w_{s_j}`` over the distinct classes s_j of each mix; mixes are grouped by their
    number of distinct classes and each group's gaps solved in one vectorised call of :func:`mixed_gaps`.
    """
    C = W.shape[0]
    k = kappa(C, m, mu)
    parts = distinct_weights(classes, lam)
    h = np.zeros((len(parts), W.shape[1]))
    sizes = np.array([u.size for u, _ in parts])
    for s in np.unique(sizes):
        idx = np.flatnonzero(sizes == s)
        cls = np.stack([parts[i][0] for i in idx])
        g = mixed_gaps(C, k, np.stack([parts[i][1] for i in idx]))
        h[idx] = (C - 1) / (C * m**2) * np.einsum("ns,nsd->nd", g, W[cls])
    return h


def barycentre_gap(C: int, kappa: float, k: int) -> float:
    """Common gap s at the barycentre of k distinct classes (q = 1/k), the root of ``s (k e^s + C - k) = C kappa/k``.

    Independent scalar check of the k x k system (k = 2: Theorem 3.1's lambda = 1/2 equation). For k = C the level
    convention 1^T g = 0 gives s = 0 (the uniform point).
    """
    if not 1 <= k <= C:
        raise ValueError(f"need 1 <= k <= C, got k={k}, C={C}")
    if k == C:
        return 0.0
    target = np.log(C * kappa / k)
    # s > 0 and log s + log(k e^s + C - k) is increasing; bracket from s <= C kappa/(k(C-k)) and s >= W(..) style.
    fun = lambda u: u + np.logaddexp(np.log(k) + np.exp(u), np.log(C - k)) - target
    hi = np.log(C * kappa / (k * (C - k)))
    lo = hi - 1.0
    while fun(lo) > 0:
        lo -= 1.0 + abs(lo)
    return float(np.exp(optimize.brentq(fun, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)))


def barycentre_bulge_ratio(C: int, kappa: float, k: int) -> float:
    """``||h*(barycentre of k distinct classes)|| / ||mean of their k same-class features||`` (k <= C).

    Both are multiples of ``sum_j w_{c_j}``: the ratio is ``k s / (C |K|)`` (k = 2: :func:`half_mix_bulge_ratio`).
    Undefined (nan) for k = C, where both vectors vanish.
    """
    if k >= C:
        return float("nan")
    return k * barycentre_gap(C, kappa, k) / (C * abs(same_class_root(C, kappa)))


def linear_map_norm(C: int, y) -> np.ndarray:
    """``r(y) = ||sum_c y_c w_c|| / m = sqrt(C/(C-1)) ||y - 1/C||``: the norm of the mix of the unit ETF vertices.

    Computed from the centred target, so that r is accurate to a few eps also near 0 (the uniform target, where
    the exactly linear optimum vanishes); the equivalent ``sqrt((C ||y||^2 - 1)/(C-1))`` would lose half the digits
    there. ``y`` (n, C) -> (n,).
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    return np.sqrt(C / (C - 1)) * np.linalg.norm(y - 1.0 / C, axis=-1)


def linear_map_nonlinearity(C: int, y) -> np.ndarray:
    """Normalised NonLin (Chaudhry et al. eq. 3) of any optimum that is EXACTLY linear in the mix, for the fixed ETF.

    Vertices h_c are equal-norm multiples of w_c, so ``sum_j lam_j h^_j = sum_c y_c w_c / m`` has norm
    ``r = sqrt((C ||y||^2 - 1)/(C-1))`` (ETF Gram matrix; :func:`linear_map_norm`) and the normalised mixed feature
    is its direction: NonLin = 1 - r. This is the floor of eq. (3) (no map does better at these vertices), positive
    for every proper mix: the per-feature normalisation, not the map, makes it nonzero. At the uniform target
    (r = 0) the linear optimum is 0 and eq. (3) is undefined there (no direction); the formula gives 1, the limit of
    nearby mixes. ``y`` (n, C): the soft targets ``sum_j lam_j e_{c_j}`` (repeated classes merged).
    """
    return 1.0 - linear_map_norm(C, y)
