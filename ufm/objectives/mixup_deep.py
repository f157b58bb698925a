"""Two-layer unconstrained-features model for the per-layer question of Chaudhry et al. (2022).

Free first-layer features g_c (one per class: C x d0), a learned layer ``h = act(V g)`` (V: d1 x d0, act = relu
or identity), logits ``z = W h`` (W: C x d1, a fixed simplex ETF or learned). Mixing happens at the input of the
learned layer, ``g_mix = sum_c M_c g_c`` (an input mix, their eq. 1), BEFORE the forward pass.

One objective covers the three training rules of Chaudhry et al., Sec. 3, through its data:

    L = sum_i a_i CE(z(M_i g), Y_i) + sum_i b_i || z(M_i g) - sum_c M_ic z(g_c) ||^2
        + (mu/2) ||g||_F^2 / C + (lambda_W/2) (||V||_F^2 [+ ||W||_F^2 if learned])

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
import numpy as np

from ufm.algorithms.rounding_floor import accept_newton_floor
from ufm.estimate import driving_field
from ufm.problems import filled
from ufm.problems.mixup_deep import RULES, MixupDeepProblem
from ufm.solver import Solution, SolverOptions, peak_bytes

# max_steps: at the small-decay corner (mu = 1e-6, consistency 10) Newton needs up to ~600 steps along a long valley
# (found by the property test: 300 ran out at relative gradient 1e-4); 1000 leaves a margin.
SOLVER = SolverOptions(rtol=1e-12, linear_solver="eigh", damping=1.0, quasi_newton_steps=0, max_steps=1000)
# Degenerate minima: the losses here have minima with Hessian eigenvalues 1e-14 .. 1e-8 and far from quadratic
# growth along them (e.g. the consistency loss vanishes on the exactly linear networks, hidden units in
# antisymmetric pairs: softplus(x) - softplus(-x) = x; C = 2 ERM with d1 = 2 too). Near them the Newton step's
# components along those soft directions (curvature below the Levenberg-Marquardt shift ||g||) are large, raise f and
# the gradient through higher-order terms, and every shorter trial is flat to f's rounding (within the line search's
# window delta_f = 64 eps max(1, |f|) sqrt(#vars)) without halving the gradient: the restart ends STALLED, above
# rtol (C = 2, --restarts 2, consistency: relative gradients 2.2e-12 and 1.1e-10 after the relu continuation,
# 6.3e-8 and 3.9e-10 with softplus s = 10). Such a restart is accepted as converged at f's rounding floor, and
# reported as such, when (a) it STALLED: none of the line search's trials along the Newton ray decreased f beyond
# delta_f; (b) no clearly negative curvature; (c) in the directions of clearly nonzero curvature (|w_i| above the
# solver's NEGATIVE_CURVATURE * max(1, max |w|), its own line between curvature and degeneracy), where the quadratic
# model is trustworthy, the model predicts a decrease sum (v_i^T g)^2 / (2 (|w_i| + shift)) within delta_f; and (d)
# the relative gradient is <= FLOOR_RTOL (a stall further out is a failure, whatever the model says).
FLOOR_RTOL = 1e-6


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
    fixed classifier W (C x d1; unused when learned), weight decays mu (features) and lambda_W (layers), and the
    softplus sharpness used by :func:`smooth_loss` (data, not a constant, so that one compiled objective serves
    every stage of a continuation)."""

    M: jax.Array
    Y: jax.Array
    a: jax.Array
    b: jax.Array
    W: jax.Array
    mu: jax.Array
    lambda_W: jax.Array
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
        decay = 0.5 * data.mu * jnp.sum(g * g) / g.shape[0] + 0.5 * data.lambda_W * jnp.sum(params["V"] ** 2)
        if "W" in params:
            decay = decay + 0.5 * data.lambda_W * jnp.sum(params["W"] ** 2)
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


def _n_vars(C: int, d0: int, d1: int, learned: bool) -> int:
    return C * d0 + d1 * d0 + (C * d1 if learned else 0)


def _estimate(sz: dict) -> int:
    """Peak bytes of a run from its sizes (python ints, nothing allocated); see :func:`memory_estimate`."""
    C, d0, d1, R = sz["C"], sz["d0"], sz["d1"], sz["restarts"]
    n_vars = _n_vars(C, d0, d1, sz["learned"])
    rows = C + C * (C - 1) // 2 * sz["n_nodes"]  # mixup's and consistency's rows (problem.training_rows)
    data = 8 * (2 * rows * C + 2 * rows + C * d1)
    # one pass keeps per row the mixed input, pre-activation, hidden, logits (and the C unmixed points); the dense
    # Hessian (forward over reverse) carries one tangent of that per variable (matrix-free: a few), per restart
    residuals = 8 * 2 * (rows * (d0 + 3 * d1 + 3 * C) + C * (d0 + 3 * d1 + 3 * C))
    solve = peak_bytes(n_vars, R, SOLVER, data, residuals)
    n_eval = C * (C - 1) * sz["eval_lambdas"]
    evaluate = 8 * 12 * n_eval * (d0 + d1 + C)  # mixed inputs, layer outputs, (n, 2, .) gathers, unit copies
    etf = 8 * (C * C + 2 * d1 * C)
    params = 8 * 3 * len(RULES) * R * n_vars  # every rule's solution and best parameters kept for the report
    return solve + evaluate + etf + params


def memory_estimate(problem: MixupDeepProblem) -> tuple[int, str]:
    """``(peak bytes, driving field)`` of :func:`run`: the largest rule's batched solve (``ufm.solver.peak_bytes``
    of the dense eigh Newton, plus the Hessian's per-variable autodiff residuals over all rows), the NonLin
    evaluation and the kept parameters. From the sizes only; nothing is allocated."""
    sizes = {
        "C": problem.C,
        "d0": problem.d0,
        "d1": problem.d1,
        "restarts": problem.restarts,
        "n_nodes": problem.n_nodes,
        "eval_lambdas": problem.eval_lambdas,
        "learned": problem.classifier == "learned",
    }
    reference = {"C": 4, "d0": problem.C, "d1": 2 * problem.C, "restarts": 8, "n_nodes": 6, "eval_lambdas": 99}
    return _estimate(sizes), driving_field(_estimate, sizes, reference)


def rule_data(problem: MixupDeepProblem, rule: str) -> DeepMixupData:
    """The objective's data for one training rule (see ``ufm.objectives.mixup_deep``)."""
    C = problem.C
    eye, ones = np.eye(C), np.full(C, 1.0 / C)
    # mixup and consistency on the same distinct rows (problem.training_rows: the vertices, then the mixes of
    # distinct classes): one data shape, so one compiled solve serves both rules. A class mixed with itself adds
    # nothing to the consistency term (its gap is exactly 0). ERM keeps its C rows: padding it to theirs would cost
    # it 1 + (C-1) n_nodes / 2 times the work per evaluation, more than a compilation once C is large.
    rows, w_vertex, w_mix = problem.training_rows()
    if rule == "erm":
        M, Y, a, b = eye, eye, ones, np.zeros(C)
    elif rule == "mixup":
        M, Y, a, b = rows, rows, np.concatenate([w_vertex, w_mix]), np.zeros(len(rows))
    elif rule == "consistency":
        M, Y = rows, rows
        a = np.concatenate([ones, np.zeros(len(w_mix))])
        b = np.concatenate([np.zeros(C), problem.consistency * w_mix])
    else:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    arrays = (M, Y, a, b, problem.classifier_matrix(), problem.mu, problem.lambda_W, problem.sharpness)
    return DeepMixupData(*(jnp.asarray(x, dtype=jnp.float64) for x in arrays))


def initial_params(problem: MixupDeepProblem) -> dict:
    """Seeded random starts (restarts leading axis): g ~ N(0, 1), V ~ N(0, 1/d0), learned W ~ N(0, 1/d1)."""
    rng = np.random.default_rng([problem.seed, 1])
    R, d0, d1 = problem.restarts, filled(problem.d0, "d0"), filled(problem.d1, "d1")
    params = {
        "g": rng.standard_normal((R, problem.C, d0)),
        "V": rng.standard_normal((R, d1, d0)) / np.sqrt(d0),
    }
    if problem.classifier == "learned":
        params["W"] = rng.standard_normal((R, problem.C, d1)) / np.sqrt(d1)
    return {k: jnp.asarray(v) for k, v in params.items()}


RELU_SHARPNESS = (10.0, 1e2, 1e3, 1e4, 1e5)


def stages(problem: MixupDeepProblem) -> tuple[float, ...]:
    """Sharpness schedule: relu is reached by continuation through softplus(s x)/s, s = 10 .. 1e5 (its optima sit on
    the kinks, where Newton cannot converge: the gradient is discontinuous there); softplus and linear: one stage."""
    return RELU_SHARPNESS if problem.activation == "relu" else (problem.sharpness,)


def accept_rounding_floor(sol: Solution, loss, data, damping: float = SOLVER.damping) -> tuple[Solution, dict]:
    """``sol`` with every restart that meets FLOOR_RTOL's conditions (a)-(d) marked CONVERGED, and
    ``{restart: (predicted decrease, f's rounding window)}`` of those (``ufm.algorithms.rounding_floor``)."""
    return accept_newton_floor(sol, loss, data, damping=damping, rtol=FLOOR_RTOL)
