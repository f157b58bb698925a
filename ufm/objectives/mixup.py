"""Mixup cross-entropy for one free feature against a fixed classifier (Fisher et al. 2024, eq. "unconstrained")."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class MixupData(NamedTuple):
    """Everything the per-feature objective needs: classifier W (C x d), soft target y (C,), weight decay mu."""

    W: jax.Array
    y: jax.Array
    mu: jax.Array


def soft_target(C: int, c, c_prime, lam) -> jax.Array:
    """Mixup target ``lam e_c + (1 - lam) e_c'`` (batched over leading axes of c, c_prime, lam)."""
    lam = jnp.asarray(lam)[..., None]
    return lam * jax.nn.one_hot(c, C) + (1 - lam) * jax.nn.one_hot(c_prime, C)


def mixed_soft_target(C: int, classes, lam) -> jax.Array:
    """k-point mixup target ``sum_j lam_j e_{c_j}`` (Chaudhry et al., eq. 1; repeats add up): (n, k) -> (n, C)."""
    return jnp.einsum("...k,...kc->...c", jnp.asarray(lam), jax.nn.one_hot(classes, C))


def mixup_feature_loss(h: jax.Array, data: MixupData) -> jax.Array:
    """``f(h) = logsumexp(W h) - y^T W h + (mu/2) ||h||^2``: soft-target CE plus feature weight decay.

    This is ``lam CE(W h, c) + (1 - lam) CE(W h, c') + (mu/2) ||h||^2`` (:mod:`ufm.theory.mixup`); nothing of the
    ETF structure is used, so the solver's answer is an independent test of Theorem 3.1.
    """
    z = data.W @ h
    return jax.nn.logsumexp(z) - data.y @ z + 0.5 * data.mu * h @ h


def square_feature_loss(h: jax.Array, data: MixupData) -> jax.Array:
    """Square-loss contrast ``(1/2) ||W h - y||^2 + (mu/2) ||h||^2``; its optimum is linear in lam."""
    r = data.W @ h - data.y
    return 0.5 * r @ r + 0.5 * data.mu * h @ h


def mixup_newton_system(W, *, tight_frame_rtol: float = 1e-12):
    """A structured Newton solve for :func:`mixup_feature_loss` (``SolverOptions.newton_system``), for large d.

    The Hessian is ``H = mu I + W^T (diag p - p p^T) W`` with ``p = softmax(W h)`` and W (C x d) shared by every
    subproblem of a batch. With ``M = mu' I + W^T diag(p) W`` (``mu' = mu + shift``) and ``q = W^T p``,
    ``H + shift I = M - q q^T`` (Sherman-Morrison) and, by Woodbury with ``S = diag(sqrt p)``,
    ``M^{-1} v = (v - W^T S (mu' I + S G S)^{-1} S W v) / mu'`` where ``G = W W^T`` (C x C). So a Newton direction
    costs a few products with W (batched matrix products over the subproblems) and one C x C solve:

    - if ``G = gamma (I - 11^T/C)`` to ``tight_frame_rtol`` (checked here numerically on the given W, e.g. a
      simplex ETF), ``mu' I + S G S`` is diagonal plus rank one and is solved in O(C);
    - otherwise by a dense Cholesky factorisation of the C x C matrix (O(C^3) per subproblem and step).

    Only the objective's data (W, mu, the current h) is used, nothing of Theorem 3.1's answer. Returns
    ``newton_system(h, g, data, shift) -> -(H + shift I)^{-1} g`` for one subproblem (the solver vmaps it).
    """
    import numpy as np

    W_np = np.asarray(W, dtype=np.float64)
    C = W_np.shape[0]
    G_np = W_np @ W_np.T
    P = np.eye(C) - np.ones((C, C)) / C
    gamma = float(np.trace(G_np)) / (C - 1)
    tight = bool(np.linalg.norm(G_np - gamma * P) <= tight_frame_rtol * np.linalg.norm(G_np))
    G = jnp.asarray(G_np)

    def inner_solve(s, u, mu):
        """``(mu I + S G S)^{-1} u`` for the columns of u (C x k), s = sqrt(p)."""
        if tight:  # mu I + gamma S S - (gamma/C) (S 1)(S 1)^T: diagonal plus rank one
            e_inv = 1.0 / (mu + gamma * s * s)
            v = s * e_inv
            y = e_inv[:, None] * u
            return y + (gamma / C) * v[:, None] * (v @ u)[None, :] / (1.0 - (gamma / C) * (v @ s))
        A = mu * jnp.eye(C, dtype=u.dtype) + s[:, None] * G * s[None, :]
        return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), u)

    def newton_system(h, g, data: MixupData, shift):
        mu = data.mu + shift
        p = jax.nn.softmax(data.W @ h)
        s = jnp.sqrt(p)
        q = data.W.T @ p
        Wq = data.W @ q
        # M^{-1} v = (v - W^T S u_v) / mu with u_v = inner_solve(S W v), for v = g and v = q; the scalars
        # q^T M^{-1} v are taken in C-space ((W q)^T S u_v) and the two W^T products merged into one by
        # linearity: five products with W per direction (W h, W^T p, W g, W q, one W^T), none d x d.
        SU = s[:, None] * inner_solve(s, s[:, None] * jnp.stack([data.W @ g, Wq], axis=1), mu)
        qMg = (q @ g - Wq @ SU[:, 0]) / mu
        qMq = (q @ q - Wq @ SU[:, 1]) / mu
        coef = qMg / (1.0 - qMq)  # Sherman-Morrison for the - q q^T term
        return -((g + coef * q) - data.W.T @ (SU[:, 0] + coef * SU[:, 1])) / mu

    return newton_system
