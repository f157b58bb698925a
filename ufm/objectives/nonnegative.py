"""Nonnegative-feature objectives (seed 002): Model 1 (budgets), Model 2 (weight decay), Model 3 (label noise).

Feasibility is exact at every iterate by reparametrisation, not by penalty:
- ``h >= 0``: features are ``H = G * G`` (elementwise square of a free G);
- Model 1's budgets are met with equality, ``W = sqrt(K E_W) V/||V||_F`` and ``H = sqrt(N E_H) P/||P||_F``
  with ``P = G * G`` (for CE the budgets are active at every optimum; for LS the optimal value is also attained
  on them).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class NonnegData(NamedTuple):
    """Soft targets Q (K x N, columns sum to 1), budgets (Model 1), weight decays (Model 2)."""

    Q: jax.Array
    E_W: jax.Array
    E_H: jax.Array
    lambda_W: jax.Array
    lambda_H: jax.Array


def smoothed_targets(labels, K: int, alpha: float) -> jax.Array:
    """Label-smoothing targets ``(1 - alpha) e_k + (alpha/K) 1`` as columns (alpha = 0: one-hot, CE)."""
    return ((1 - alpha) * jax.nn.one_hot(labels, K) + alpha / K).T


def cross_entropy(Z: jax.Array, Q: jax.Array) -> jax.Array:
    """Mean over samples (columns) of ``-sum_j q_j log softmax(z)_j``."""
    return -jnp.mean(jnp.sum(Q * jax.nn.log_softmax(Z, axis=0), axis=0))


def model1_factors(params: dict, data: NonnegData) -> tuple[jax.Array, jax.Array]:
    """(W, H) on the budget spheres with H >= 0, from free (V, G)."""
    K, N = data.Q.shape
    P = params["G"] ** 2
    W = jnp.sqrt(K * data.E_W) * params["V"] / jnp.linalg.norm(params["V"])
    return W, jnp.sqrt(N * data.E_H) * P / jnp.linalg.norm(P)


def model1_loss(params: dict, data: NonnegData) -> jax.Array:
    """Model 1: ``(1/N) sum_i CE_q(W h_i)`` over the budgets (1/K)||W||^2 = E_W, (1/N)||H||^2 = E_H, H >= 0."""
    W, H = model1_factors(params, data)
    return cross_entropy(W @ H, data.Q)


def model2_factors(params: dict, data: NonnegData) -> tuple[jax.Array, jax.Array]:
    return params["W"], params["G"] ** 2


def model2_loss(params: dict, data: NonnegData) -> jax.Array:
    """Model 2: ``(1/N) sum_i CE_q(W h_i) + (lambda_W/2)||W||^2 + (lambda_H/2)||H||^2``, H = G * G >= 0."""
    W, H = model2_factors(params, data)
    return cross_entropy(W @ H, data.Q) + 0.5 * data.lambda_W * jnp.sum(W**2) + 0.5 * data.lambda_H * jnp.sum(H**2)
