"""Square loss with weight decay for (deep) unconstrained-features models and homogeneous networks (R-B 2022).

The objective (:func:`square_loss`), its data, and how the family solves it (:func:`solve`):

- ``restarts`` seeded random starts, plus one candidate start at the known critical point W = H = 0 (every
  factor and the bias zero; see :func:`zero_candidate` for where it is added), R + 1 batch elements in all. The
  solver classifies the candidate: a minimum for deep models and past the threshold, a saddle (left by the escape
  step) below it; so a restart stuck at a nonzero local minimum is never returned when W = H = 0 is lower.
- Balanced coordinates: factor i is solved as ``theta_i sqrt(lambda_i / Lambda)`` (Lambda the geometric mean of
  the factor decays), which turns every factor decay into Lambda and leaves the product, hence the data term,
  unchanged (the scales multiply to 1; ReLU is positively homogeneous). Unequal decays then cost no conditioning
  (lambda_W = 1e-9, lambda_H = 100 put W's and H's curvatures 1e11 apart). A decayed bias is solved as
  ``b sqrt(1 + lambda_b)`` (curvature 1, like the outputs).
- Small decays: the objective handed to the solver is ``f / s`` with ``s = beta / 4`` where ``beta = K n^(1/m)
  Lambda < 1e-3`` (m factors; see :func:`objective_scale`), a lower bound of the linear optimum's objective up to
  a small factor: the solver's rounding window and relative gradient are relative to ``max(1, |f|)``, so for an
  objective of 1e-8 (decays 1e-9) they would be absolute and the Newton polish could not tell its steps apart
  (all restarts STALLED at relative gradient 1e-9 before this scaling).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ufm import metrics
from ufm.algorithms import batched
from ufm.algorithms.batched import SolveRequest
from ufm.algorithms.gradient_descent import momentum_descent
from ufm.algorithms.restarts import with_zero_start
from ufm.problems import filled
from ufm.problems.square_loss import SquareLossProblem, layer_shapes
from ufm.solver import Solution, SolverOptions, best_element


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


SOLVER = SolverOptions(
    rtol=1e-12,
    linear_solver="eigh",
    damping=1.0,
    quasi_newton_steps=3000,
    quasi_newton_rtol=1e-9,
    max_steps=200,
    label="mse",
)
_EPS = float(np.finfo(np.float64).eps)
# Per-factor scales of the random balanced starts, times n^(1/(2m)) (restart i takes START_SCALES[i % 3]): the
# product's singular values start at 8, 1 and 1/8 times the targets' (m = 3), above, at and below the optimum.
START_SCALES = (2.0, 1.0, 0.5)


def objective_data(problem: SquareLossProblem, balanced: bool = False) -> SquareLossData:
    """The objective's data; ``balanced``: every factor decay replaced by their geometric mean Lambda (the problem
    in the balanced coordinates of :func:`to_balanced`)."""
    lambda_b = 0.0 if problem.bias in ("none", "free") else float(problem.bias)
    X = problem.inputs_matrix() if problem.model == "net" else np.zeros((1, problem.N))
    lam_W, lam_H = (balanced_decay(problem),) * 2 if balanced else (problem.lambda_W, problem.lambda_H)
    return SquareLossData(
        jnp.asarray(problem.targets()),
        jnp.asarray(X),
        jnp.full(problem.layers, lam_W),
        jnp.asarray(lam_H),
        jnp.asarray(lambda_b),
        jnp.asarray(1.0 if problem.activation == "relu" else 0.0),
    )


# --------------------------------------------------------------------------------------------------------------
# Balanced coordinates and the objective's scale
# --------------------------------------------------------------------------------------------------------------


def balanced_decay(problem: SquareLossProblem) -> float:
    """``Lambda = (prod_i lambda_i)^(1/m)`` over the m factor decays (lambda_H and lambda_W x L for a UFM)."""
    return float(np.exp(np.mean(np.log(problem.factor_decays))))


def _factor_scales(problem: SquareLossProblem) -> tuple[float, float]:
    """``(c_W, c_H) = (sqrt(lambda_W / Lambda), sqrt(lambda_H / Lambda))``: balanced factor = c x original factor.
    ``c_W^L c_H = 1`` (UFM) or ``c_W = 1`` (network), so the product is unchanged."""
    Lam = balanced_decay(problem)
    return float(np.sqrt(problem.lambda_W / Lam)), float(np.sqrt(problem.lambda_H / Lam))


def bias_scale(problem: SquareLossProblem) -> float:
    """``1 / sqrt(1 + lambda_b)``: the bias is solved as ``b sqrt(1 + lambda_b)``, whose curvature is 1 like the
    outputs' (the data term's curvature in b is 1, the decay's lambda_b): at lambda_b = 1e3 and decays 1e-9 the
    unscaled bias made every random restart of a 3-layer UFM run out of steps (rel grad 1 - 5), scaled they
    converge in 11 - 14 steps. 1 for a free bias."""
    lambda_b = float(problem.bias) if problem.bias not in ("none", "free") else 0.0
    return float(1.0 / np.sqrt(1.0 + lambda_b))


def _rescale(problem: SquareLossProblem, params: dict, power: float) -> dict:
    c_W, c_H = _factor_scales(problem)
    out = {"layers": [W * c_W**power for W in params["layers"]]}
    if "H" in params:
        out["H"] = params["H"] * c_H**power
    if "b" in params:
        out["b"] = params["b"] / bias_scale(problem) ** power
    return out


def to_balanced(problem: SquareLossProblem, params: dict) -> dict:
    """Original -> balanced coordinates (``theta_i sqrt(lambda_i / Lambda)``, ``b sqrt(1 + lambda_b)``; batched or
    not)."""
    return _rescale(problem, params, 1.0)


def from_balanced(problem: SquareLossProblem, params: dict) -> dict:
    """Balanced -> original coordinates."""
    return _rescale(problem, params, -1.0)


def objective_scale(problem: SquareLossProblem) -> float:
    """``s``: the solver minimises ``f / s``. ``s = beta / 4`` where ``beta = K n^(1/m) Lambda < BETA_SCALED`` (m
    factors), else 1 (the solver's own, unscaled test).

    Why: the linear optimum's objective is ``r/(2K) phi(x*)`` with ``phi(x*) >= ~beta`` for small beta (m = 1, 2:
    beta/(1+beta), beta (2 - beta); m >= 3: ~ m beta) and r/K >= 1/2, so f* >= ~s; a model that fits worse
    (Gaussian inputs) has a larger f*. The solver's rounding window and relative gradient are relative to
    ``max(1, |f|)``: absolute for f < 1. For beta >= 1e-3 that is what the solver is tuned for and it converges;
    below, its window (64 eps sqrt(#variables)) swallows the decreases of the Newton polish (decays 1e-7 - 1e-9:
    restarts STALLED at relative gradient 1e-10 - 1e-8), and on f / s it is relative to f instead. (A fixed
    s = 4 eps / 1e-12 = 8.9e-4, one setting for all, is not enough: at decays 1e-9 the restarts still stalled.)
    """
    m = problem.factor_decays.size
    beta = problem.C * problem.n ** (1.0 / m) * balanced_decay(problem)
    return beta / 4.0 if beta < BETA_SCALED else 1.0


BETA_SCALED = 1e-3


def solver_options(problem: SquareLossProblem, progress: bool = False) -> SolverOptions:
    """The family's solver settings for this problem, on the scaled objective f / s: ``rtol = max(1e-12, 4 eps /
    s)`` rounded up to a power of ten, the L-BFGS phase's ``max(1e-9, 1e3 rtol)``, and SCALED_MAX_STEPS Newton
    steps where s < 1.

    Why: the gradient of the data term is formed from the residual Y - F, a difference of outputs of size ~1, so
    its rounding floor is absolute (measured 0.05 - 0.4 eps at decays 1e-8 and 1e-9, C = 3 and 10), i.e. ~ eps / s
    relative to the scaled objective: at decays 1e-9 (s ~ 6e-9) 1e-12 lies below it and no restart could converge.
    In the original units the test asks ``||grad f|| <= rtol max(s, f)``: with f* within ~50 s (the linear models
    that interpolate: every UFM, networks on orthonormal inputs) that is ``<= ~2000 eps = 4e-13``, never looser
    than the unscaled ``||grad f|| <= 1e-12`` for f < 1. A model that does not interpolate (Gaussian inputs, a ReLU
    restart
    on a plateau) gets the relative test ``||grad f|| <= rtol f`` with rtol up to 1e-8 (Gaussian inputs, lambda_W
    >= 1e-6) or 1e-6 (ReLU at 1e-9): no tighter is delivered there (with rtol 1e-12 relative, Gaussian-input
    restarts at lambda_W = 1e-6 stalled at 3e-12 - 2e-11: the Hessian's condition ~1/lambda_W). These settings are
    data of the compiled solver (``ufm.solver.TRACED_SETTINGS``): problems that differ only in their decays share
    one compilation (measured, C = 3, n = 2, decays 1e-9 ... 1e-1: 1 program instead of 4, 4.7 s instead of 25.7 s).
    """
    s = objective_scale(problem)
    rtol = max(SOLVER.rtol, 10.0 ** math.ceil(math.log10(4 * _EPS / s) - 1e-9))
    return dataclasses.replace(
        SOLVER,
        rtol=float(rtol),
        progress=progress,
        max_steps=SOLVER.max_steps if s == 1.0 else SCALED_MAX_STEPS,
        quasi_newton_rtol=float(max(SOLVER.quasi_newton_rtol, 1e3 * rtol)),
    )


# Newton steps where the objective is scaled (beta < 1e-3): there the polish moves along the factors' rescaling
# directions, whose curvature is ~ Lambda against the fit's ~1, at a linear rate: one restart of a 3-layer network
# at decays 1e-9 (C = 2, n = 1) needed 736 steps (200 ended "maximum steps" at rel grad 15, failing the run).
SCALED_MAX_STEPS = 1000


# --------------------------------------------------------------------------------------------------------------
# Starts
# --------------------------------------------------------------------------------------------------------------


def _semi_orthogonal(rng: np.random.Generator, restarts: int, rows: int, cols: int) -> np.ndarray:
    """Seeded Haar-random matrices with orthonormal rows or columns (all singular values 1), batched over restarts."""
    Q, R = np.linalg.qr(rng.standard_normal((restarts, max(rows, cols), min(rows, cols))))
    Q = Q * np.sign(np.diagonal(R, axis1=1, axis2=2))[:, None, :]  # sign fix: Haar, not QR-convention, distributed
    return Q if rows >= cols else np.transpose(Q, (0, 2, 1))


def _start(problem: SquareLossProblem, restarts: int, layer, features) -> dict:
    """A batch of starts: ``layer(rows, cols)`` draws every weight layer, ``features(rows, cols)`` the free H; the
    bias (if any) starts at 0."""
    params: dict[str, Any] = {"layers": [jnp.asarray(layer(o, i)) for o, i in layer_shapes(problem)]}
    if problem.model == "ufm":
        params["H"] = jnp.asarray(features(problem.d, problem.N))
    if problem.bias != "none":
        params["b"] = jnp.zeros((restarts, problem.C))
    return params


def gaussian_params(problem: SquareLossProblem, restarts: int, seed: int) -> dict:
    """Seeded Gaussian points, each factor scaled by 1/sqrt(fan-in) (outputs of order one): how papers initialise
    gradient descent, and the perturbations of proofs_check's near-optimum restarts."""
    rng = np.random.default_rng(seed)
    return _start(
        problem,
        restarts,
        lambda o, i: rng.standard_normal((restarts, o, i)) / np.sqrt(i),
        lambda o, i: rng.standard_normal((restarts, o, i)),
    )


def balanced_orthogonal_params(problem: SquareLossProblem, restarts: int, seed: int) -> dict:
    """Seeded balanced orthogonal points (balanced coordinates): every factor semi-orthogonal times
    ``START_SCALES[i % 3] n^(1/(2m))`` for restart i (m factors).

    Why: a Gaussian square layer has singular values near 0, and for m >= 3 factors each singular mode of the
    product has a local minimum at 0 (its scalar objective ``(a^m - t)^2/2 + m lambda a^2/2`` is flat to order m
    at a = 0), so such modes stay dead: from Gaussian starts all 8 restarts of the C = 10, 3-layer linear deep UFM
    ended rank-deficient (objectives 0.182 and 0.217 against the optimum 0.1466), from these starts all 8 reach it.
    Every mode starts balanced; the first restart's product has singular values ``2^m sqrt(n)`` (Y's are
    ``sqrt(n)``), on the far side of the nonzero minimum, the next ones start at and below the targets' scale, so
    that restarts cover both sides of a nonzero local minimum; nothing of the closed form is used.
    """
    rng = np.random.default_rng(seed)
    factors = len(layer_shapes(problem)) + (problem.model == "ufm")
    scale = np.array([START_SCALES[i % len(START_SCALES)] for i in range(restarts)]) * problem.n ** (0.5 / factors)
    draw = lambda o, i: scale[:, None, None] * _semi_orthogonal(rng, restarts, o, i)
    return _start(problem, restarts, draw, draw)


def _balanced_random_starts(problem: SquareLossProblem, restarts: int, seed: int) -> dict:
    """Random starts in balanced coordinates: balanced orthogonal for linear models, Gaussian for ReLU.

    The balanced starts' reason (dead product modes, above) is a property of linear products. With ReLU their
    mixed-sign orthogonal factors put the end points on many kinks: C = 3, 4 bias-free factors, of 6 balanced
    restarts the two that came to the symmetric point stopped 1.1e-9 above it, unconverged on its kinks, and the
    only converged one was at 0.0404; Gaussian starts converge at the symmetric point (0.0355156695) to 2e-16.
    """
    if problem.activation == "linear":
        return balanced_orthogonal_params(problem, restarts, seed)
    return gaussian_params(problem, restarts, seed)


def random_params(problem: SquareLossProblem, restarts: int, seed: int) -> dict:
    """The solver's seeded random restarts, in the original coordinates (see :func:`_balanced_random_starts`)."""
    return from_balanced(problem, _balanced_random_starts(problem, restarts, seed))


def zero_candidate(problem: SquareLossProblem) -> bool:
    """Whether W = H = 0 is added as a candidate start: for every linear model, and for ReLU models whose product
    has degree m >= 3 (a deep UFM, a network of >= 3 layers), where W = 0 is a strict local minimum (the data
    term's change is O(|theta|^m), the decays' O(|theta|^2)). Not for a two-layer ReLU network: there W = 0 can be
    a saddle along directions with every hidden unit active, but every pre-activation sits on its kink, where the
    Hessian the solver forms (relu'(0) = 0) sees only the decays and would call the saddle a minimum."""
    return problem.activation == "linear" or problem.factor_decays.size >= 3


def start_labels(problem: SquareLossProblem) -> list[str]:
    """What every batch element of :func:`solve` started from."""
    if problem.activation == "linear":
        labels = [
            f"random {i} (balanced orthogonal, scale {START_SCALES[i % len(START_SCALES)]:g})"
            for i in range(problem.restarts)
        ]
    else:
        labels = [f"random {i} (Gaussian)" for i in range(problem.restarts)]
    candidate = "candidate W = H = 0" if problem.model == "ufm" else "candidate W = 0"
    return labels + ([candidate] if zero_candidate(problem) else [])


def _balanced_starts(problem: SquareLossProblem) -> dict:
    """The batch :func:`solve` runs (balanced coordinates): the random restarts, then W = H = 0 where
    :func:`zero_candidate` adds it."""
    random = _balanced_random_starts(problem, problem.restarts, problem.seed)
    return with_zero_start(random, zero_candidate(problem))


# --------------------------------------------------------------------------------------------------------------
# The closed form's point
# --------------------------------------------------------------------------------------------------------------


def closed_form_point(problem: SquareLossProblem, Z: np.ndarray, b: np.ndarray) -> dict:
    """Balanced factors of the target product Z: each of the m factors carries ``sqrt(Lambda/lambda_i) S^{1/m}``.

    With Z = U S V^T: m = 1 (a one-layer network) the single layer ``U S V^T X^T``; m >= 2: first factor
    ``c_1 E s V^T`` (the features H of a UFM, or the first layer times X^T for a network on orthonormal inputs),
    m - 2 middle factors ``c_l E s E^T``, last ``c_m U s E^T``; E embeds R^r in the first r coordinates of R^d.
    For bias-free targets Z = x Y we take U = I, V = Y^T/sqrt(n) exactly, so every factor is nonnegative (ReLU
    inactive).
    """
    K, d = problem.C, filled(problem.d, "d")
    decays = problem.factor_decays
    m = decays.size
    if problem.bias == "none":
        U, S, Vt = (
            np.eye(K),
            np.full(K, np.linalg.norm(Z[:, 0]) * np.sqrt(problem.n)),
            problem.targets() / np.sqrt(problem.n),
        )
        S = np.where(np.abs(Z).max() > 0, S, 0.0)
    else:
        U, S, Vt = np.linalg.svd(Z, full_matrices=False)
        S = np.where(
            S > 1e-12 * S.max(initial=0.0), S, 0.0
        )  # exact rank: S^{1/m} of a rounding-level value is not small
    X_T = problem.inputs_matrix().T if problem.model == "net" else None
    params: dict[str, Any]
    if m == 1:  # a one-layer network: the layer is the whole product
        params = {"layers": [jnp.asarray((U * S) @ Vt @ X_T)]}
    else:
        E = np.eye(d)[:, : S.size]
        s = S ** (1.0 / m)
        c = np.sqrt(float(np.exp(np.mean(np.log(decays)))) / decays)
        first = c[0] * E @ (s[:, None] * Vt)
        middle = [c[k] * E @ np.diag(s) @ E.T for k in range(1, m - 1)]
        last = c[-1] * U @ np.diag(s) @ E.T
        if problem.model == "net":
            params = {"layers": [jnp.asarray(W) for W in [first @ X_T, *middle, last]]}
        else:
            params = {"layers": [jnp.asarray(W) for W in [*middle, last]], "H": jnp.asarray(first)}
    if problem.bias != "none":
        params["b"] = jnp.asarray(b)
    return params


# --------------------------------------------------------------------------------------------------------------
# Solve
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SquareLossSolution:
    """What :func:`solve` returns: the best element in the original coordinates, every element's end objective,
    status and factor ranks, and the solver's own Solution (balanced coordinates, objective f / s)."""

    params: dict  # best element, original coordinates
    restart_losses: np.ndarray  # every batch element's end objective f (original units)
    restart_status: np.ndarray
    restart_ranks: list  # numerical rank of every factor, per element
    best: int
    solution: Solution  # the solver's Solution over all elements (balanced coordinates, objective f / s)
    labels: list  # what every element started from (random restarts, then the W = H = 0 candidate)
    scale: float  # s of the scaled objective f / s
    options: SolverOptions


def numerical_ranks(params: dict, tol: float = 1e-6) -> list[int]:
    """Numerical rank of each factor (singular values above tol x the largest), layers then H."""
    mats = [np.asarray(W) for W in params["layers"]] + ([np.asarray(params["H"])] if "H" in params else [])
    ranks = []
    for M in mats:
        sv = np.linalg.svd(M, compute_uv=False)
        ranks.append(int(np.sum(sv > max(tol * sv.max(), 1e-8))))  # absolute floor: a zero factor has rank 0
    return ranks


def solve_request(problem: SquareLossProblem, options: SolverOptions) -> SolveRequest:
    """The solver call of :func:`solve`: every random restart and the W = H = 0 candidate in one batch, in balanced
    coordinates on ``f / s`` (``s``: :func:`objective_scale`)."""
    args = (
        objective_data(problem, balanced=True),
        jnp.asarray(objective_scale(problem)),
        jnp.asarray(bias_scale(problem)),
    )
    return SolveRequest(scaled_square_loss, _balanced_starts(problem), args, options)


def solve_result(problem: SquareLossProblem, options: SolverOptions, sol: Solution) -> SquareLossSolution:
    """:func:`solve`'s result from the solver's solution of :func:`solve_request`: the elements back in original
    coordinates, their losses in the original units, ranks and statuses, and the best element by
    :func:`ufm.solver.best_element` (the lowest converged one, unless an unconverged one is lower beyond rounding:
    then that one, so the report grades, and fails, the best point found)."""
    scale = objective_scale(problem)
    best = best_element(sol)
    per_element = [from_balanced(problem, jax.tree.map(lambda a, i=i: a[i], sol.params)) for i in range(sol.loss.size)]
    return SquareLossSolution(
        per_element[best],
        sol.loss * scale,
        sol.status,
        [numerical_ranks(p) for p in per_element],
        best,
        sol,
        start_labels(problem),
        scale,
        options,
    )


def solve(
    problem: SquareLossProblem, *, progress: bool = False, options: SolverOptions | None = None
) -> SquareLossSolution:
    """Every random restart and the W = H = 0 candidate in one batch (:func:`solve_request`), solved and read
    back (:func:`solve_result`)."""
    opts = dataclasses.replace(options or solver_options(problem), progress=progress)
    return solve_result(problem, opts, batched.solve(solve_request(problem, opts)))


# compiled once per shape: run op by op, the value and gradient compiled ~20 small programs on every new shape
_value_and_grad = jax.jit(jax.value_and_grad(square_loss))


def evaluate(params: dict, data: SquareLossData) -> tuple[float, float]:
    """(objective, relative gradient norm ||grad|| / max(1, |f|)) at a point."""
    f, g = _value_and_grad(params, data)
    gn = float(jnp.linalg.norm(ravel_pytree(g)[0]))
    return float(f), gn / max(1.0, abs(float(f)))


def gradient_descent(
    problem: SquareLossProblem,
    *,
    steps: int = 20000,
    lr: float = 0.5,
    momentum: float = 0.9,
    record_every: int = 200,
    weight_decay: bool = True,
    init_scale: float = 0.1,
) -> dict:
    """Full-batch gradient descent with momentum (fixed step, as neural-collapse papers train), NC1-NC4 recorded
    (``ufm.algorithms.gradient_descent.momentum_descent`` from ``init_scale`` times the first seeded Gaussian
    start).

    ``weight_decay=False`` sets every decay to 0 (the plain square loss). Returns arrays ``step``, ``loss``,
    ``NC1``, ``NC2`` (equinorm of centred means), ``NC3``, ``NC4``, ``eps`` at every ``record_every`` steps.
    """
    data = objective_data(problem)
    if not weight_decay:
        data = data._replace(
            lambda_layers=jnp.zeros_like(data.lambda_layers), lambda_H=jnp.zeros(()), lambda_b=jnp.zeros(())
        )
    params = jax.tree.map(lambda a: init_scale * a[0], gaussian_params(problem, 1, problem.seed))
    labels, K = problem.labels, problem.C

    def record(p) -> list[float]:
        F, h = (np.asarray(a) for a in forward(p, data))
        W_L = np.asarray(p["layers"][-1])
        b = np.asarray(p["b"]) if "b" in p else np.zeros(K)
        return [
            float(square_loss(p, data)),
            metrics.nc1(h.T, labels, K),
            metrics.nc2(h.T, labels, K)["equinorm"],
            metrics.nc3(W_L, h.T, labels, K),
            metrics.nc4(W_L, b, h.T, labels, K),
            1.0 - float(np.mean(F[labels, np.arange(problem.N)])),
        ]

    rows = momentum_descent(
        square_loss, params, data, record, steps=steps, lr=lr, momentum=momentum, record_every=record_every
    )
    arr = np.array(rows)
    return {name: arr[:, i] for i, name in enumerate(("step", "loss", "NC1", "NC2", "NC3", "NC4", "eps"))}
