"""Cross-entropy UFM with weight decay (Zhu, Ding, Zhou, Li, You, Sulam, Qu, NeurIPS 2021), samples x features."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class CEData(NamedTuple):
    """One-hot targets Y (N x K), samples ordered by class, and the weight decays (lambda_b unused without a bias)."""

    Y: jax.Array
    lambda_W: jax.Array
    lambda_H: jax.Array
    lambda_b: jax.Array


def cross_entropy(Z: jax.Array, Y: jax.Array) -> jax.Array:
    """Per-sample ``CE(z, y) = log sum_j exp(z_j) - z_y`` (rows of Z, one-hot rows of Y), stable to full relative
    precision.

    With ``delta_j = z_j - z_y``: ``CE = log1p(sum_{j != y} exp(delta_j))`` where every delta_j < 0 (a confident
    sample: the CE and its gradient ``softmax - y`` are then formed without the cancellation ``1 - p_y`` of the
    plain log-softmax, which leaves an absolute error ~eps on a CE of ~1e-6), else the max-shifted log-sum-exp.
    The first branch sees ``min(delta, 0)`` so that it stays finite (and its gradient too) where it is not taken.
    """
    delta = Z - jnp.sum(Y * Z, axis=-1, keepdims=True)
    off = 1.0 - Y
    largest = jnp.max(jnp.where(off > 0, delta, -jnp.inf), axis=-1)
    confident = jnp.log1p(jnp.sum(off * jnp.exp(jnp.minimum(delta, 0.0)), axis=-1))
    return jnp.where(largest < 0, confident, jax.nn.logsumexp(delta, axis=-1))


def ce_loss(params: dict, data: CEData) -> jax.Array:
    """``(1/N) sum_{k,i} CE(W h_{k,i} + b, y_k) + (lambda_W/2)||W||_F^2 + (lambda_H/2)||H||_F^2
    + (lambda_b/2)||b||^2``.

    Args: ``params`` with ``W`` (K x d), ``H`` (N x d, rows h_{k,i}) and optionally ``b`` (K,; absent: no bias);
    ``data`` (:class:`CEData`). Returns the scalar objective (Zhu et al., NeurIPS 2021, eq. of Theorem 3.1)."""
    W, H = params["W"], params["H"]
    Z = H @ W.T
    loss = 0.5 * data.lambda_W * jnp.sum(W * W) + 0.5 * data.lambda_H * jnp.sum(H * H)
    if "b" in params:
        Z = Z + params["b"]
        loss += 0.5 * data.lambda_b * jnp.sum(params["b"] ** 2)
    return jnp.mean(cross_entropy(Z, data.Y)) + loss
