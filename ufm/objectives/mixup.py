"""Mixup cross-entropy for one free feature against a fixed classifier (seed 000, eq. "unconstrained")."""

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
    """k-point mixup target ``sum_j lam_j e_{c_j}`` (seed 001, eq. 1; repeated classes add up): (n, k) -> (n, C)."""
    return jnp.einsum("...k,...kc->...c", jnp.asarray(lam), jax.nn.one_hot(classes, C))


def mixup_feature_loss(h: jax.Array, data: MixupData) -> jax.Array:
    """``f(h) = logsumexp(W h) - y^T W h + (mu/2) ||h||^2``: soft-target CE plus feature weight decay.

    This is ``lam CE(W h, c) + (1 - lam) CE(W h, c') + (mu/2) ||h||^2`` (mixup.md, "Objective"); nothing of the
    ETF structure is used, so the solver's answer is an independent test of Theorem 3.1.
    """
    z = data.W @ h
    return jax.nn.logsumexp(z) - data.y @ z + 0.5 * data.mu * h @ h


def square_feature_loss(h: jax.Array, data: MixupData) -> jax.Array:
    """Square-loss contrast ``(1/2) ||W h - y||^2 + (mu/2) ||h||^2``; its optimum is linear in lam (mixup.md)."""
    r = data.W @ h - data.y
    return 0.5 * r @ r + 0.5 * data.mu * h @ h
