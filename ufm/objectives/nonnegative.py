"""Nonnegative-feature objectives (Nguyen et al., ICLR 2023): Model 1 (budgets), Model 2 (weight decay), Model 3
(label noise).

Feasibility of ``H >= 0`` is exact at every iterate, never by penalty:
- Models 2 and 3: ``H >= 0`` is a bound that the solver keeps (``minimise(..., nonnegative=MODEL2_BOUNDS)``:
  projected Newton), on the variables (W, H) themselves (Model 3's coupling ``M_k <= r D_k`` is the augmented
  Lagrangian's, ``ufm.objectives.memorization_dilation``);
- Model 1: ``h >= 0`` by reparametrisation, features ``H = G * G`` (elementwise square of a free G);
- Model 1's budgets are met with equality, ``W = sqrt(K E_W) V/||V||_F`` and ``H = sqrt(N E_H) P/||P||_F``
  with ``P = G * G`` (for CE the budgets are active at every optimum; for LS the optimal value is also attained
  on them).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ufm.algorithms.batched import drive
from ufm.algorithms.loss_scaling import relative_to_loss_steps
from ufm.algorithms.restarts import with_zero_start
from ufm.algorithms.rounding_floor import accept_gradient_floor
from ufm.problems import filled
from ufm.problems.nonnegative import NonnegProblem
from ufm.solver import SolverOptions, peak_bytes


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
    """Mean over samples (columns) of ``-sum_j q_j log softmax(z)_j``, value and gradient accurate to a few eps
    RELATIVE.

    Per column, with ``y = argmax_j q_j`` (the label; data, not differentiated) and ``u_j = z_j - z_y``:
    ``-sum_{j != y} q_j u_j + log(1 + sum_{j != y} e^{u_j})`` (the same value as ``logsumexp(z) - q.z``), the log as
    ``m + log1p(sum_{j != y} e^{u_j - m} + expm1(-m))`` with ``m = max(0, max_j u_j)`` held constant (the value does
    not depend on m; holding it keeps the derivatives exact). Why not ``log_softmax``: it forms ``log(1 + x)``
    from the rounded ``1 + x``, so at margin m the loss ~ (K-1) e^{-m} carries an absolute error ~ eps (relative
    4e-12 at m = 12; exactly 0 beyond m ~ 37), and its gradient ``softmax - q`` at the true class is ``(1 - x) - 1``,
    absolute error eps (relative 1e-8 at the Model 2 optimum with weight decay 1e-9, which bounds how well the
    optimum's geometry can be found). Here neither value nor gradient ever subtracts 1."""
    K = Z.shape[0]
    y = jnp.argmax(Q, axis=0)
    others = jnp.arange(K)[:, None] != y[None, :]
    U = Z - jnp.take_along_axis(Z, y[None, :], axis=0)
    m = jax.lax.stop_gradient(jnp.maximum(0.0, jnp.max(jnp.where(others, U, -jnp.inf), axis=0)))
    tail = jnp.sum(jnp.where(others, jnp.exp(U - m), 0.0), axis=0)
    return jnp.mean(-jnp.sum(jnp.where(others, Q * U, 0.0), axis=0) + m + jnp.log1p(tail + jnp.expm1(-m)))


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


def model2_objective(W: jax.Array, H: jax.Array, data) -> jax.Array:
    """Model 2: ``(1/N) sum_i CE_q(W h_i) + (lambda_W/2)||W||^2 + (lambda_H/2)||H||^2`` (for H >= 0).

    Reads ``data.Q``, ``data.lambda_W`` and ``data.lambda_H`` only, so it serves Model 3's ``DilationData`` too."""
    return cross_entropy(W @ H, data.Q) + 0.5 * data.lambda_W * jnp.sum(W**2) + 0.5 * data.lambda_H * jnp.sum(H**2)


# Model 2's bounds for ufm.solver.minimise: H >= 0, W free.
MODEL2_BOUNDS = {"W": False, "H": True}


def model2_factors(params: dict, data: NonnegData) -> tuple[jax.Array, jax.Array]:
    return params["W"], params["H"]


def model2_loss(params: dict, data) -> jax.Array:
    """Model 2 on ``{"W", "H"}``, to be minimised with ``H >= 0`` as a bound (:data:`MODEL2_BOUNDS`). ``data``:
    :class:`NonnegData`, or Model 3's :class:`DilationData` (only Q and the weight decays are read)."""
    return model2_objective(params["W"], params["H"], data)


def model2_loss_squared(params: dict, data) -> jax.Array:
    """Model 2 on ``{"W", "G"}`` with ``H = G * G`` (unconstrained; for first-order methods that know no bounds,
    e.g. the benchmarks' comparison)."""
    return model2_objective(params["W"], params["G"] ** 2, data)


class DilationData(NamedTuple):
    """Model 3 data: noisy-label targets, weight decays, class memberships, the coupling r and the augmented
    Lagrangian state (multipliers per class, penalty rho)."""

    Q: jax.Array
    lambda_W: jax.Array
    lambda_H: jax.Array
    clean: jax.Array  # N x K: 1 where sample i is clean and of true class k
    noisy: jax.Array  # N x K: 1 where sample i is noisy and of true class k
    r: jax.Array
    multipliers: jax.Array  # K
    rho: jax.Array


def dilation_memorization(H: jax.Array, clean: jax.Array, noisy: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Clean class means, dilation and memorization of the features H (d x N):

        mu_k = mean of the clean class-k features,   D_k = sqrt(mean_{clean i of k} ||h_i - mu_k||^2),
        M_k = mean_{noisy i of true class k} ||h_i - mu_k||.

    D_k and each noisy distance are norms, not differentiable where their argument vanishes (a class's clean
    features coinciding, a noisy feature on its clean mean: exact zeros that a step projected onto H >= 0 can
    reach); their derivative there is taken as 0, an element of the norm's subdifferential, instead of sqrt's
    ``0 * inf = NaN``.

    Args:
        H: the features (d x N).
        clean, noisy: N x K memberships (1 where sample i is clean, resp. noisy, and of true class k).

    Returns:
        (mu (d x K), D (K,), M (K,)).
    """
    mu = H @ clean / jnp.sum(clean, axis=0)
    dist_sq = jnp.sum((H[:, :, None] - mu[:, None, :]) ** 2, axis=0)  # N x K
    D = _root(jnp.sum(clean * dist_sq, axis=0) / jnp.sum(clean, axis=0))
    M = jnp.sum(noisy * _root(jnp.where(noisy > 0, dist_sq, 0.0)), axis=0) / jnp.sum(noisy, axis=0)
    return mu, D, M


def _root(s: jax.Array) -> jax.Array:
    """``sqrt(s)`` for ``s >= 0``, with derivative 0 at s = 0 (both branches of the ``where`` finite)."""
    positive = s > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, s, 1.0)), 0.0)


def coupling(H: jax.Array, data: DilationData) -> jax.Array:
    """Constraint values ``c_k = M_k - r D_k`` (feasible when <= 0; limited expressivity R1)."""
    _, D, M = dilation_memorization(H, data.clean, data.noisy)
    return M - data.r * D


def model3_lagrangian(params: dict, data: DilationData) -> jax.Array:
    """Augmented Lagrangian of Model 3 on ``{"W", "H"}`` (H >= 0 a bound, :data:`MODEL2_BOUNDS`): Model 2's
    objective on the noisy labels plus ``(1/(2 rho)) sum_k [max(0, nu_k + rho c_k)^2 - nu_k^2]`` for the
    inequality constraints c_k <= 0."""
    shifted = jnp.maximum(0.0, data.multipliers + data.rho * coupling(params["H"], data))
    return model2_loss(params, data) + jnp.sum(shifted**2 - data.multipliers**2) / (2 * data.rho)


def objective_data(problem, labels=None) -> NonnegData:
    """The data of a ``ufm.problems.nonnegative.NonnegProblem`` (its labels, or ``labels``)."""
    labels = problem.labels if labels is None else labels
    return NonnegData(
        smoothed_targets(jnp.asarray(labels), problem.C, problem.alpha),
        jnp.asarray(problem.E_W),
        jnp.asarray(problem.E_H),
        jnp.asarray(problem.lambda_W),
        jnp.asarray(problem.lambda_H),
    )


def random_params(problem, model: str) -> dict:
    """Seeded starts: Gaussian W (or V), and features well inside the orthant: G with entries in [0.5, 1.5]
    (Model 1, H = G*G), or H = G*G itself (Model 2: the same starting features)."""
    import numpy as np

    rng = np.random.default_rng(problem.seed)
    R, K, d, N = problem.restarts, problem.C, problem.d, problem.N
    first = "V" if model == "lpm" else "W"
    G = rng.uniform(0.5, 1.5, (R, d, N))
    return {
        first: jnp.asarray(rng.standard_normal((R, K, d))),
        **({"G": jnp.asarray(G)} if model == "lpm" else {"H": jnp.asarray(G * G)}),
    }


def scaled_model1_loss(params: dict, args) -> jax.Array:
    """``L / s`` plus the gauge ``(log ||V||^2)^2 / 2 + (log ||G*G||^2)^2 / 2``. Model 1's loss depends on V and P = G*G
    only through V/||V|| and P/||P||: their norms are two exact null directions of its Hessian, along which a damped
    Newton step divides the gradient's rounding noise by the shift; the gauge fixes them. It vanishes with its
    gradient at unit norms and leaves (W, H), the minimisers and the loss unchanged."""
    data, scale = args
    gauge = jnp.log(jnp.sum(params["V"] ** 2)) ** 2 + jnp.log(jnp.sum(params["G"] ** 4)) ** 2
    return model1_loss(params, data) / scale + 0.5 * gauge


def scaled_model2_loss(params: dict, args) -> jax.Array:
    """``L / s`` of Model 2 (``args = (data, s)``)."""
    data, scale = args
    return model2_loss(params, data) / scale


LOSSES = {"lpm": (model1_loss, model1_factors), "ufm": (model2_loss, model2_factors)}
SCALED = {"lpm": scaled_model1_loss, "ufm": scaled_model2_loss}
# Model 2 keeps H >= 0 as a bound (projected Newton); Model 1 reparametrises H = G*G (its budgets normalise P).
BOUNDS = {"lpm": None, "ufm": MODEL2_BOUNDS}
# every start's loss, compiled once per model and shape
EVALUATE = {model: jax.jit(jax.vmap(loss, in_axes=(0, None))) for model, (loss, _) in LOSSES.items()}


def factor_gradients(model: str, W, H, data: NonnegData):
    """The gradients in (W, H) (not the reparametrised variables) of the model's loss: CE, plus Model 2's weight
    decays; for the KKT residual."""
    return _factor_gradients(model, jnp.asarray(W), jnp.asarray(H), data)


@functools.partial(jax.jit, static_argnums=0)  # one program per shape; op by op it compiled ~40 small ones
def _factor_gradients(model: str, W, H, data: NonnegData):
    def f(W, H):
        base = cross_entropy(W @ H, data.Q)
        if model == "ufm":
            base += 0.5 * data.lambda_W * jnp.sum(W**2) + 0.5 * data.lambda_H * jnp.sum(H**2)
        return base

    return jax.grad(f, argnums=(0, 1))(W, H)


SOLVER = SolverOptions(
    rtol=1e-12,
    linear_solver="eigh",
    damping=1.0,
    quasi_newton_steps=3000,
    quasi_newton_rtol=1e-9,
    max_steps=300,
    label="nonneg",
)
# Model 2 (H >= 0 a bound of projected Newton) without the L-BFGS phase, which ran on the squares H = G*G and made
# most of the solve time. Measured with ``ufm.run`` in one process, the phase on and then off (second runs, so no
# compilation): the default problem (K = 10, n = 4, d = 20, 6 restarts + the zero start) solve 1.87 s to 0.23 s,
# 6/7 to 7/7 starts converged; alpha = 0.3: 0.98 s to 0.34 s; K = 10, n = 100, d = 20: 3.27 s to 3.20 s; K = 30,
# n = 5, d = 30: 0.94 s to 0.63 s, same objectives to 1e-15 relative; and a smaller program to compile (the default
# 5.45 s to 3.42 s). Model 1 keeps the phase: without it its default run converged 4/6 starts instead of 6/6.
MODEL2_SOLVER = dataclasses.replace(SOLVER, quasi_newton_steps=0)


def solver_options(problem: NonnegProblem) -> SolverOptions:
    """The family's solver settings for ``problem``: :data:`MODEL2_SOLVER` for Model 2, :data:`SOLVER` for Model 1."""
    return MODEL2_SOLVER if problem.model == "ufm" else SOLVER


# Passes of the solve on L / s (ufm.algorithms.loss_scaling): a gradient test relative to the loss where it is tiny.
MAX_PASSES, PASS_MARGIN = 8, 8.0
# Stalls at a degenerate minimum's rounding floor (ufm.algorithms.rounding_floor): H = G*G makes every off-support
# entry of G with a zero multiplier (an unused feature coordinate, d > K) a null direction of the Hessian (Model 1,
# K = 3, n = 1, d = 5, M_max = 50: a restart STALLED at relative gradient ~1e-11, its geometry right to 2e-14; K = 4,
# alpha = 0.996, M_max = 50 = 3200 m*: stalled at 3.1e-9, the objective right to 1e-12, KKT within 1e-8). Accepted
# by the gradient test up to FLOOR_RTOL; the closed-form checks grade it like any other point.
FLOOR_RTOL = 1e-8


def zero_start(problem: NonnegProblem) -> bool:
    """Whether W = 0, H = 0 is added to the starts: for Model 2 always. It is a critical point of every Model 2
    problem: the optimum where the theory says so (gamma_alpha >= (K-1)/K), a saddle below, which the solver
    escapes or reports as a saddle (never the best restart). Always there, a decay sweep that crosses the threshold
    keeps one batch size, hence one compilation."""
    return problem.model == "ufm"


def batch_size(problem: NonnegProblem) -> int:
    """Starts solved: the restarts, plus the zero start where it applies."""
    return problem.restarts + int(zero_start(problem))


def accept_rounding_floor(sol, fun, args, args_of=None) -> tuple:
    """``ufm.algorithms.rounding_floor.accept_gradient_floor`` with this family's SOLVER and FLOOR_RTOL."""
    return accept_gradient_floor(sol, fun, args, args_of, options=SOLVER, rtol=FLOOR_RTOL)


def balance(problem: NonnegProblem) -> float:
    """Model 2's exact rescaling symmetry: with ``t = (lambda_H/lambda_W)^(1/4)``, ``(W, H) = (t W', H'/t)`` maps
    the problem with both weight decays ``sqrt(lambda_W lambda_H)`` onto the given one, value for value. The solve
    works on the balanced problem, whose factors are of one scale (at lambda_W/lambda_H = 1e15 the unbalanced one
    ran out of steps, 1.6 % above its optimum). Model 1: 1 (its budgets enter through normalisation only)."""
    return (problem.lambda_H / problem.lambda_W) ** 0.25 if problem.model == "ufm" else 1.0


def solve_with_floor(problem: NonnegProblem, options: SolverOptions | None = None, *, progress: bool = False):
    """Solve from the seeded restarts (plus W = H = 0 where :func:`zero_start`) on the balanced problem, by passes
    relative to the loss (``ufm.algorithms.loss_scaling``), stalls at the rounding floor accepted. Returns the
    Solution (``loss`` the model's objective, statuses after the floor test), each start's (W, H), the objective
    data and the accepted floors."""
    return drive(floor_steps(problem, options or dataclasses.replace(solver_options(problem), progress=progress)))


def floor_steps(problem: NonnegProblem, options: SolverOptions):
    """:func:`solve_with_floor` as steps (``ufm.algorithms.batched``: yields each solver call)."""
    data, solved, t = objective_data(problem), objective_data(problem), balance(problem)
    if problem.model == "ufm":  # the balanced problem: both weight decays sqrt(lambda_W lambda_H)
        both = jnp.sqrt(data.lambda_W * data.lambda_H)
        solved = data._replace(lambda_W=both, lambda_H=both)
    fun, evaluate = SCALED[problem.model], EVALUATE[problem.model]
    params = with_zero_start(random_params(problem, problem.model), zero_start(problem))
    sol, scale = yield from relative_to_loss_steps(
        fun,
        params,
        solved,
        evaluate,
        options=options,
        nonnegative=BOUNDS[problem.model],
        max_passes=MAX_PASSES,
        margin=PASS_MARGIN,
    )
    sol, floor = accept_rounding_floor(sol, fun, (solved, jnp.asarray(scale)))
    sol = dataclasses.replace(sol, loss=np.asarray(evaluate(sol.params, solved)))
    factors = LOSSES[problem.model][1]
    WH = [
        tuple(np.asarray(a) for a in factors(jax.tree.map(lambda x, i=i: x[i], sol.params), solved))
        for i in range(sol.loss.size)
    ]
    return sol, [(t * W, H / t) for W, H in WH], data, floor


def _peak_bytes(K: int, n: int, d: int, batch: int) -> int:
    """Peak bytes of one solve (the passes run one after another) and the report's arrays, from sizes only.

    Variables per start ``K d + d N`` (N = K n); the dense Hessian (``ufm.solver.peak_bytes``) and the forward-mode
    intermediates of forming it, one set per variable (matrix-free: a few sets): the K x N logits and their ~7
    elementwise companions in the
    cross-entropy, and H = G*G with its products (3 d x N). Measured: the default nonneg-ufm run (K = 10, n = 4,
    d = 20, 6 restarts) peaks at 465 MB resident above the interpreter with jax loaded; this gives 463 MB."""
    N = K * n
    n_vars = K * d + d * N
    tangent = (8 * K * N + 3 * d * N) * 8
    data = (2 * K * N + d * N) * 8
    report = 2 * batch * n_vars * 8  # restart_W, restart_H and the per-start (W, H) copies
    return peak_bytes(n_vars, batch, SOLVER, data, tangent) + report


def memory_estimate(problem: NonnegProblem) -> tuple[int, str]:
    """Estimated peak bytes of the family's run (``ufm.families.nonnegative``) and the field that drives it: the
    size field (C, n, d, restarts) whose reduction to its minimum (2, 1, C, 1) would shrink the estimate most.
    Allocates nothing."""
    K, n, d, R = problem.C, problem.n, filled(problem.d, "d"), problem.restarts
    zero = int(zero_start(problem))
    total = _peak_bytes(K, n, d, R + zero)
    at_minimum = {
        "C": _peak_bytes(2, n, d, R + zero),
        "n": _peak_bytes(K, 1, d, R + zero),
        "d": _peak_bytes(K, n, K, R + zero),
        "restarts": _peak_bytes(K, n, d, 1 + zero),
    }
    return total, min(at_minimum, key=at_minimum.__getitem__)
