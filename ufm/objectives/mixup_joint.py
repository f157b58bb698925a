"""Mixup cross-entropy with classifier and features learned jointly (issue 9; Fisher et al.'s objective, W free)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class JointParams(NamedTuple):
    """Classifier W (C x d) and weight-scaled features G (T x d), ``g_t = sqrt(pi_t) h_t`` (see the loss)."""

    W: jax.Array
    G: jax.Array


class JointData(NamedTuple):
    """Soft targets Y (T x C), their probabilities pi (T,), summing to 1, and the two weight decays."""

    Y: jax.Array
    weight: jax.Array
    lam_W: jax.Array
    lam_H: jax.Array


def features(params: JointParams, weight: jax.Array) -> jax.Array:
    """The features ``h_t = g_t / sqrt(pi_t)`` (T x d)."""
    return params.G / jnp.sqrt(weight)[:, None]


def joint_mixup_loss(params: JointParams, data: JointData) -> jax.Array:
    """``sum_t pi_t [logsumexp(W h_t) - y_t^T W h_t + (lambda_H/2) ||h_t||^2] + (lambda_W/2) ||W||_F^2``.

    The mixup UFM objective ``E_pairs E_lam [CE_soft(W h, y) + (lambda_H/2)||h||^2] + (lambda_W/2)||W||_F^2``
    (``ufm.theory.mixup_joint``) with the expectations as the finite sum over targets t with probabilities pi_t.
    The variables are ``g_t = sqrt(pi_t) h_t``: the same problem after a diagonal change of variables, so that the
    feature block of the Hessian is ``lambda_H I + ...`` instead of ``pi_t lambda_H I + ...`` whatever the number of
    targets, which keeps one gradient tolerance meaningful for every feature and CG's conditioning independent of
    T. (The gradient in h is ``sqrt(pi_t)`` times the gradient in g: a tolerance on the latter bounds the former.)
    """
    H = features(params, data.weight)
    Z = H @ params.W.T
    ce = jax.nn.logsumexp(Z, axis=-1) - jnp.sum(data.Y * Z, axis=-1)
    return (
        data.weight @ ce
        + 0.5 * data.lam_H * jnp.sum(params.G * params.G)
        + 0.5 * data.lam_W * jnp.sum(params.W * params.W)
    )
