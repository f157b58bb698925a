"""Cross-entropy UFM with weight decay (Zhu, Ding, Zhou, Li, You, Sulam, Qu, NeurIPS 2021), samples x features."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ufm.solver import SolverOptions

# How this objective is solved: nonconvex (saddle-free Newton, dense eigh), Newton's relative gradient to 1e-12.
SOLVER = SolverOptions(rtol=1e-12, linear_solver="eigh", damping=1.0, max_steps=200, quasi_newton_rtol=1e-9, label="ce")
# Newton alone from random starts takes ~20-25 steps, each a dense Hessian and eigh per restart; L-BFGS first
# leaves 2-3: C = 4, n = 5 (96 variables) Newton alone 0.8 s + 4 s compilation, with L-BFGS 2 s + 7.5 s; C = 10,
# n = 2 (300 variables) Newton alone 12.6 s, with L-BFGS 2.9 s + 7 s.
LBFGS_ABOVE, LBFGS_STEPS = 200, 3000


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


def objective_data(problem, balanced: bool = False) -> CEData:
    """The data of ``problem`` (a ``ufm.problems.ce.CEProblem``); ``balanced``: both weight decays replaced by
    ``Lambda = sqrt(lambda_W lambda_H)``, the coordinates ``W sqrt(lambda_W / Lambda)``, ``H sqrt(lambda_H /
    Lambda)`` in which the logits are unchanged and the two factors are of one scale."""
    Lam = math.sqrt(problem.lambda_W * problem.lambda_H)
    lam_W, lam_H = (Lam, Lam) if balanced else (problem.lambda_W, problem.lambda_H)
    return CEData(*(jnp.asarray(a) for a in (problem.targets(), lam_W, lam_H, problem.lambda_b)))


def starts(problem) -> dict:
    """``problem.restarts`` seeded balanced Gaussian starts (batched on the leading axis): rows of W ~ n^(1/4), of
    H ~ n^(-1/4) (the optimum's ratio sqrt(n)), logits O(1); the bias, if any, at 0."""
    rng = np.random.default_rng(problem.seed)
    R, K, N, d = problem.restarts, problem.C, problem.N, problem.d
    params = {
        "W": rng.standard_normal((R, K, d)) * problem.n**0.25 / math.sqrt(d),
        "H": rng.standard_normal((R, N, d)) * problem.n**-0.25 / math.sqrt(d),
    }
    if problem.bias != "none":
        params["b"] = np.zeros((R, K))
    return jax.tree.map(jnp.asarray, params)


@jax.jit
def evaluate(found: dict, point: dict, data: CEData):
    """f at the solver's point; f, its gradient and the gradient of the CE part alone (no decay) at ``point``
    (the closed-form point)."""
    fit = data._replace(lambda_W=jnp.zeros(()), lambda_H=jnp.zeros(()), lambda_b=jnp.zeros(()))
    return (ce_loss(found, data), *jax.value_and_grad(ce_loss)(point, data), jax.grad(ce_loss)(point, fit))
