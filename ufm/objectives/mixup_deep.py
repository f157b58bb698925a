"""Two-layer unconstrained-features model for the per-layer question of Chaudhry et al. (2022).

Free first-layer features g_c (one per class: C x d0), a learned layer ``h = act(V g)`` (V: d1 x d0, act = relu
or identity), logits ``z = W h`` (W: C x d1, a fixed simplex ETF or learned). Mixing happens at the input of the
learned layer, ``g_mix = sum_c M_c g_c`` (an input mix, their eq. 1), BEFORE the forward pass.

One objective covers the three training rules of Chaudhry et al., Sec. 3, through its data:

    L = sum_i a_i CE(z(M_i g), Y_i) + sum_i b_i || z(M_i g) - sum_c M_ic z(g_c) ||^2
        + (mu/2) ||g||_F^2 / C + (mu_v/2) (||V||_F^2 [+ ||W||_F^2 if learned])

- ERM: M = Y = I, a = 1/C, b = 0;
- mixup: rows M_i = Y_i = lam e_c + (1-lam) e_c' over ordered pairs and quadrature nodes lam, a = weights, b = 0;
- consistency (ICT, their eq. 2 with D the squared L2 distance on the logits): the ERM rows plus the mix rows
  with a = 0 and b = w x weights (the consistency term is applied to the labelled features: the UFM has no other
  inputs, and free unlabelled features would collapse to 0).

The family passes the same expectations on fewer rows, shared by mixup and consistency (the vertices, then the
mixes of distinct classes c < c', weights merged: ``MixupDeepProblem.training_rows``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


def activation_function(name: str, sharpness: float = 10.0) -> Callable[[jax.Array], jax.Array]:
    """relu, identity, or ``softplus(s x)/s`` (sharpness s; -> relu as s -> infinity, uniformly within log(2)/s):
    the smooth surrogate lets Newton reach the rounding floor where relu's optimum sits on its kinks."""
    if name == "relu":
        return jax.nn.relu
    if name == "linear":
        return lambda x: x
    if name == "softplus":
        return lambda x: jax.nn.softplus(sharpness * x) / sharpness
    raise ValueError(f"activation must be relu, linear or softplus, got {name!r}")


class DeepMixupData(NamedTuple):
    """Rows of input mixes M (n x C), soft targets Y (n x C), CE weights a (n,), consistency weights b (n,), the
    fixed classifier W (C x d1; unused when learned), weight decays mu (features) and mu_v (layers), and the
    softplus sharpness used by :func:`smooth_loss` (data, not a constant, so that one compiled objective serves
    every stage of a continuation)."""

    M: jax.Array
    Y: jax.Array
    a: jax.Array
    b: jax.Array
    W: jax.Array
    mu: jax.Array
    mu_v: jax.Array
    sharpness: jax.Array | float = 10.0


def forward(params: dict, data: DeepMixupData, act: Callable, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(hidden h, logits z) for first-layer inputs (n x d0); ``act`` from :func:`activation_function`."""
    h = act(inputs @ params["V"].T)
    W = params["W"] if "W" in params else data.W
    return h, h @ W.T


def make_loss(act: Callable) -> Callable[[dict, DeepMixupData], jax.Array]:
    """The objective above for one activation; the classifier is learned iff ``params`` has a "W" entry."""

    def loss(params: dict, data: DeepMixupData) -> jax.Array:
        g = params["g"]
        _, z_mix = forward(params, data, act, data.M @ g)  # the mix enters the network
        _, z_pts = forward(params, data, act, g)
        ce = jax.nn.logsumexp(z_mix, axis=-1) - jnp.sum(data.Y * z_mix, axis=-1)
        gap = z_mix - data.M @ z_pts
        decay = 0.5 * data.mu * jnp.sum(g * g) / g.shape[0] + 0.5 * data.mu_v * jnp.sum(params["V"] ** 2)
        if "W" in params:
            decay = decay + 0.5 * data.mu_v * jnp.sum(params["W"] ** 2)
        return data.a @ ce + data.b @ jnp.sum(gap * gap, axis=-1) + decay

    return loss


@functools.cache
def smooth_loss(name: str) -> Callable[[dict, DeepMixupData], jax.Array]:
    """The objective with ``softplus(s x)/s``, s = ``data.sharpness`` (``name`` "softplus"), or the identity
    (``name`` "linear"); one function object per name, so compiled solves are reused across stages and runs."""
    if name == "softplus":

        def loss(params: dict, data: DeepMixupData) -> jax.Array:
            s = data.sharpness
            return make_loss(lambda x: jax.nn.softplus(s * x) / s)(params, data)

        return loss
    if name == "linear":
        return make_loss(lambda x: x)
    raise ValueError(f"smooth_loss: activation must be softplus or linear, got {name!r}")
