"""Mixup cross-entropy for one free feature against a fixed classifier (Fisher et al. 2024, eq. "unconstrained"):
the objectives, the soft targets, the seeded starts and the batched solves of every subproblem."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ufm.algorithms.batched import SolveRequest, drive
from ufm.estimate import driving_field
from ufm.problems.mixup import MixupProblem
from ufm.solver import Solution, SolverOptions, peak_bytes

# Strictly convex per-subproblem objectives (Hessian W^T (diag p - p p^T) W + mu I): Cholesky Newton.
SOLVER = SolverOptions(rtol=1e-12, linear_solver="cholesky", max_steps=200)


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
    """k-point mixup target ``sum_j lam_j e_{c_j}`` (Chaudhry et al., eq. 1; repeats add up): (n, k) -> (n, C)."""
    return jnp.einsum("...k,...kc->...c", jnp.asarray(lam), jax.nn.one_hot(classes, C))


def mixup_feature_loss(h: jax.Array, data: MixupData) -> jax.Array:
    """``f(h) = logsumexp(W h) - y^T W h + (mu/2) ||h||^2``: soft-target CE plus feature weight decay.

    This is ``lam CE(W h, c) + (1 - lam) CE(W h, c') + (mu/2) ||h||^2`` (:mod:`ufm.theory.mixup`); nothing of the
    ETF structure is used, so the solver's answer is an independent test of Theorem 3.1.
    """
    z = data.W @ h
    return jax.nn.logsumexp(z) - data.y @ z + 0.5 * data.mu * h @ h


def square_feature_loss(h: jax.Array, data: MixupData) -> jax.Array:
    """Square-loss contrast ``(1/2) ||W h - y||^2 + (mu/2) ||h||^2``; its optimum is linear in lam."""
    r = data.W @ h - data.y
    return 0.5 * r @ r + 0.5 * data.mu * h @ h


def mixup_newton_system(W, *, tight_frame_rtol: float = 1e-12):
    """A structured Newton solve for :func:`mixup_feature_loss` (``SolverOptions.newton_system``), for large d.

    The Hessian is ``H = mu I + W^T (diag p - p p^T) W`` with ``p = softmax(W h)`` and W (C x d) shared by every
    subproblem of a batch. With ``M = mu' I + W^T diag(p) W`` (``mu' = mu + shift``) and ``q = W^T p``,
    ``H + shift I = M - q q^T`` (Sherman-Morrison) and, by Woodbury with ``S = diag(sqrt p)``,
    ``M^{-1} v = (v - W^T S (mu' I + S G S)^{-1} S W v) / mu'`` where ``G = W W^T`` (C x C). So a Newton direction
    costs a few products with W (batched matrix products over the subproblems) and one C x C solve:

    - if ``G = gamma (I - 11^T/C)`` to ``tight_frame_rtol`` (checked here numerically on the given W, e.g. a
      simplex ETF), ``mu' I + S G S`` is diagonal plus rank one and is solved in O(C);
    - otherwise by a dense Cholesky factorisation of the C x C matrix (O(C^3) per subproblem and step).

    Only the objective's data (W, mu, the current h) is used, nothing of Theorem 3.1's answer. Returns
    ``newton_system(h, g, data, shift) -> -(H + shift I)^{-1} g`` for one subproblem (the solver vmaps it).
    """
    import numpy as np

    W_np = np.asarray(W, dtype=np.float64)
    C = W_np.shape[0]
    G_np = W_np @ W_np.T
    P = np.eye(C) - np.ones((C, C)) / C
    gamma = float(np.trace(G_np)) / (C - 1)
    tight = bool(np.linalg.norm(G_np - gamma * P) <= tight_frame_rtol * np.linalg.norm(G_np))
    G = jnp.asarray(G_np)

    def inner_solve(s, u, mu):
        """``(mu I + S G S)^{-1} u`` for the columns of u (C x k), s = sqrt(p)."""
        if tight:  # mu I + gamma S S - (gamma/C) (S 1)(S 1)^T: diagonal plus rank one
            e_inv = 1.0 / (mu + gamma * s * s)
            v = s * e_inv
            y = e_inv[:, None] * u
            return y + (gamma / C) * v[:, None] * (v @ u)[None, :] / (1.0 - (gamma / C) * (v @ s))
        A = mu * jnp.eye(C, dtype=u.dtype) + s[:, None] * G * s[None, :]
        return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), u)

    def newton_system(h, g, data: MixupData, shift):
        mu = data.mu + shift
        p = jax.nn.softmax(data.W @ h)
        s = jnp.sqrt(p)
        q = data.W.T @ p
        Wq = data.W @ q
        # M^{-1} v = (v - W^T S u_v) / mu with u_v = inner_solve(S W v), for v = g and v = q; the scalars
        # q^T M^{-1} v are taken in C-space ((W q)^T S u_v) and the two W^T products merged into one by
        # linearity: five products with W per direction (W h, W^T p, W g, W q, one W^T), none d x d.
        SU = s[:, None] * inner_solve(s, s[:, None] * jnp.stack([data.W @ g, Wq], axis=1), mu)
        qMg = (q @ g - Wq @ SU[:, 0]) / mu
        qMq = (q @ q - Wq @ SU[:, 1]) / mu
        coef = qMg / (1.0 - qMq)  # Sherman-Morrison for the - q q^T term
        return -((g + coef * q) - data.W.T @ (SU[:, 0] + coef * SU[:, 1])) / mu

    return newton_system


def structured_mixes(C: int, k: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The C vertices (k copies of one class; their optima are the unmixed features) and, for k < C, the C
    barycentres of k consecutive distinct classes (lam = 1/k each)."""
    out = {"vertex": (np.repeat(np.arange(C)[:, None], k, axis=1), np.full((C, k), 1.0 / k))}
    if k < C:
        out["barycentre"] = ((np.arange(C)[:, None] + np.arange(k)) % C, np.full((C, k), 1.0 / k))
    return out


@dataclasses.dataclass(frozen=True)
class MixupSolution:
    """Solver output on the full grid: W, subproblem labels, features h (n x d) and the convergence record."""

    W: np.ndarray
    c: np.ndarray
    c_prime: np.ndarray
    lam: np.ndarray
    h: np.ndarray
    solution: Solution


def solve(
    problem, *, subproblems=None, loss=mixup_feature_loss, options: SolverOptions | None = None, progress: bool = False
) -> MixupSolution:
    """Minimise ``loss`` for every (c, c', lam) of the problem's grid (or of ``subproblems``, a tuple of three
    equal-length arrays) in the full dimension d, from seeded random starts (nothing of the ETF structure or of the
    theorem is used).

    Args:
        problem: a ``ufm.problems.mixup.MixupProblem``.
        subproblems: ``(c, c_prime, lam)`` instead of the problem's grid.
        loss: the per-feature objective (:func:`mixup_feature_loss` or :func:`square_feature_loss`).
        options: the solver settings (default :data:`SOLVER`); ``progress`` replaces theirs.
        progress: print the solver's progress lines to stderr.

    Returns:
        A :class:`MixupSolution` (features one row per subproblem, samples x features).
    """
    options = dataclasses.replace(options or SOLVER, progress=progress)
    return drive(solve_steps(problem, subproblems=subproblems, loss=loss, options=options))


def solve_steps(problem, *, subproblems=None, loss=mixup_feature_loss, options: SolverOptions = SOLVER):
    """:func:`solve` as steps (``ufm.algorithms.batched``: yields its solver call; ``options`` as they are)."""
    W = problem.classifier()
    c, c_prime, lam = problem.grid() if subproblems is None else (np.asarray(x) for x in subproblems)
    h, sol = yield from targets_steps(problem, W, soft_target(problem.C, c, c_prime, lam), loss=loss, options=options)
    return MixupSolution(W, c, c_prime, lam, h, sol)


def solve_targets(
    problem, W: np.ndarray, y, *, loss=mixup_feature_loss, options: SolverOptions | None = None, progress: bool = False
) -> tuple[np.ndarray, Solution]:
    """Minimise ``loss`` for every soft target row of ``y`` (n, C) from seeded random starts in R^d.

    The starts are N(0, 1/(d m^2)): logits ``W h0`` of order 1 whatever the classifier's scale m (with N(0, 1/d)
    starts, m = 100 gave logits ~100, a saturated softmax with curvature mu only, and a subproblem ran out of its
    200 Newton steps).

    Returns:
        ``(h, solution)``: the features (n x d) and the solver's record.
    """
    options = dataclasses.replace(options or SOLVER, progress=progress)
    return drive(targets_steps(problem, W, y, loss=loss, options=options))


def targets_steps(problem, W: np.ndarray, y, *, loss=mixup_feature_loss, options: SolverOptions = SOLVER):
    """:func:`solve_targets` as steps (``ufm.algorithms.batched``: yields its solver call)."""
    y = jnp.asarray(y)
    data = MixupData(jnp.asarray(W), y, jnp.asarray(problem.mu))
    h0 = np.random.default_rng(problem.seed).standard_normal((y.shape[0], problem.d)) / (np.sqrt(problem.d) * problem.m)
    axes = MixupData(None, 0, None)  # type: ignore[arg-type]  # vmap axes, not data
    sol = yield SolveRequest(loss, jnp.asarray(h0), data, options, axes)
    return np.asarray(sol.params), sol


def other_dimension(problem):
    """A second problem with another feature dimension and ETF embedding, for the d-independence check."""
    d_other = problem.C - 1 if problem.d != problem.C - 1 else 2 * problem.C + 1
    return dataclasses.replace(problem, d=d_other, seed=problem.seed + 1)


def subproblem_count(sizes: dict) -> int:
    """Number of subproblems of the main solve: the pair grid, or the random mixes plus vertices and barycentres."""
    C = sizes["C"]
    if sizes["points"] <= 2:
        return C * C * sizes["n_lambdas"]
    return sizes["n_mixes"] + C + (C if sizes["points"] < C else 0)


def peak_bytes_estimate(sizes: dict) -> int:
    """Peak bytes of a mixup run from its sizes (``C, d, n_lambdas, points, n_mixes``; python ints: no overflow,
    nothing allocated): the main and square-loss solves in d and the d-independence one (:func:`other_dimension`),
    each ``ufm.solver.peak_bytes`` of its batch with its shared data, the ETFs and the report's arrays."""
    C, d, k = sizes["C"], sizes["d"], sizes["points"]
    B = subproblem_count(sizes)
    d_other = C - 1 if d != C - 1 else 2 * C + 1  # other_dimension
    d_max = max(d, d_other)

    def solve(dim, batch):  # one solve; its data and largest intermediates: W, targets, logits, features
        return peak_bytes(dim, batch, SOLVER, 8 * (C * dim + 2 * batch * C + batch * dim))

    # main and square-loss solves in d, the d-independence one in d_other (random mixes only with points >= 3)
    solves = max(solve(d, B), solve(d_other, B if k <= 2 else sizes["n_mixes"]))
    # the ETF (Helmert basis C x (C-1), isometry d x (C-1)) for both dimensions
    etf = 8 * (C * C + 2 * d_max * C)
    # arrays of the report: features of three solves, closed form, vertex stacks (n, 2 or k, d), logits, targets
    report = 8 * (16 * B * d_max + 8 * B * C)
    if k > 2:
        n = sizes["n_mixes"]
        # (n, k, d) gathers of the closed form and of NonLin (CE, square, the kappa sweep), per-mix python lists
        report += 8 * 8 * n * k * d_max + n * (400 + 16 * k)
    return solves + etf + report


def memory_estimate(problem: MixupProblem) -> tuple[int, str]:
    """``(peak bytes, driving field)`` of the family's run (``ufm.families.mixup``; :func:`peak_bytes_estimate`).
    From the sizes only; nothing is allocated."""
    sizes = {
        "C": problem.C,
        "d": problem.d,
        "n_lambdas": problem.n_lambdas,
        "points": problem.points,
        "n_mixes": problem.n_mixes or 0,
    }
    reference = {
        "C": 10,
        "d": sizes["C"],
        **({"n_lambdas": MixupProblem.n_lambdas} if problem.points <= 2 else {"n_mixes": 1000, "points": 3}),
    }
    return peak_bytes_estimate(sizes), driving_field(peak_bytes_estimate, sizes, reference)


def solve_points(problem: MixupProblem, options: SolverOptions):
    """:func:`points_steps` run alone (``ufm.algorithms.batched.drive``)."""
    return drive(points_steps(problem, options))


def points_steps(problem: MixupProblem, options: SolverOptions):
    """Several-point mixup's solves: the random k-point mixes plus the vertices and barycentres
    (:func:`structured_mixes`) in d, the random mixes in :func:`other_dimension` and all of them for the square
    loss. Returns ``(solution of the main solve, (W, W_other, d_other, (classes, lam, y, slices), h, h_alt, h_square,
    (solution_alt, solution_square)))``, ``slices`` naming each part's rows (``ufm.checks.mixup_points``)."""
    other = other_dimension(problem)
    W, W_other = problem.classifier(), other.classifier()
    extra = structured_mixes(problem.C, problem.points)
    parts, names = [problem.mixes(), *extra.values()], ["random", *extra]
    bounds = np.cumsum([0] + [len(p[0]) for p in parts])
    slices = {name: slice(int(a), int(b)) for name, a, b in zip(names, bounds[:-1], bounds[1:])}
    classes, lam = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
    y = np.asarray(mixed_soft_target(problem.C, classes, lam))
    h, sol = yield from targets_steps(problem, W, y, options=options)
    quiet = dataclasses.replace(options, progress=False)  # the auxiliary solves, as before: no progress lines
    h_alt, sol_alt = yield from targets_steps(other, W_other, y[slices["random"]], options=quiet)
    h_sq, sol_sq = yield from targets_steps(problem, W, y, loss=square_feature_loss, options=quiet)
    return sol, (W, W_other, other.d, (classes, lam, y, slices), h, h_alt, h_sq, (sol_alt, sol_sq))
