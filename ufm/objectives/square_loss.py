"""Square loss with weight decay for (deep) unconstrained-features models and homogeneous networks (R-B 2022)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SquareLossData(NamedTuple):
    """Targets Y (K x N), inputs X (d0 x N; unused when features H are free), weight decays, activation flag.

    ``lambda_layers`` has one entry per weight layer (W_1 ... W_L); ``relu`` is 1.0 for ReLU between layers and
    0.0 for a linear model (a traced value, so one compiled solver serves both).
    """

    Y: jax.Array
    X: jax.Array
    lambda_layers: jax.Array
    lambda_H: jax.Array
    lambda_b: jax.Array
    relu: jax.Array


def forward(params: dict, data: SquareLossData) -> tuple[jax.Array, jax.Array]:
    """Outputs ``F = W_L s(W_{L-1} ... s(W_1 H)) (+ b 1^T)`` and the last-layer features (input of W_L).

    ``H = params["H"]`` (free features, a UFM) if present, else the fixed inputs ``data.X`` (a network);
    s is ReLU or the identity (``data.relu``), never applied to H itself nor to the outputs.
    """
    h = params["H"] if "H" in params else data.X
    layers = params["layers"]
    for W in layers[:-1]:
        z = W @ h
        h = jnp.where(data.relu > 0, jax.nn.relu(z), z)
    F = layers[-1] @ h
    if "b" in params:
        F = F + params["b"][:, None]
    return F, h


def square_loss(params: dict, data: SquareLossData) -> jax.Array:
    """``1/(2N) ||F - Y||_F^2 + sum_l (lambda_l/2)||W_l||^2 + (lambda_H/2)||H||^2 + (lambda_b/2)||b||^2``.

    The normalisation of Rangamani and Banburski (ICASSP 2022); a free bias has lambda_b = 0.
    """
    F, _ = forward(params, data)
    N = data.Y.shape[1]
    loss = 0.5 / N * jnp.sum((F - data.Y) ** 2)
    loss += 0.5 * sum(lam * jnp.sum(W**2) for lam, W in zip(data.lambda_layers, params["layers"]))
    if "H" in params:
        loss += 0.5 * data.lambda_H * jnp.sum(params["H"] ** 2)
    if "b" in params:
        loss += 0.5 * data.lambda_b * jnp.sum(params["b"] ** 2)
    return loss


def scaled_square_loss(params: dict, args: tuple) -> jax.Array:
    """``square_loss(params', data) / scale`` with ``args = (data, scale, bias_scale)`` and params' = params with the
    bias multiplied by ``bias_scale``: the same minimisers (a positive rescaling of f and a diagonal change of the
    bias variable), on a scale where the solver's tests (relative to ``max(1, |f|)``) are relative to f itself
    however small the decays make it, and where a decayed bias has the curvature of the other variables."""
    data, scale, bias_scale = args
    if "b" in params:
        params = {**params, "b": params["b"] * bias_scale}
    return square_loss(params, data) / scale
