"""Model 3, memorization-dilation (after Nguyen et al., "Memorization-Dilation: Modeling Neural Collapse Under
Noise", ICLR 2023; our formalisation): the noisy-label data, the balanced problem, the scaled augmented
Lagrangian of the coupling ``c_k = M_k - r D_k <= 0`` in the variables (W, H) themselves, H >= 0 a bound that
every inner solve keeps (:data:`BOUNDS`, projected Newton, as Model 2), and the settings of its outer loop
(``ufm.algorithms.augmented_lagrangian``)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ufm.algorithms.augmented_lagrangian import Schedule, constrained_steps
from ufm.algorithms.augmented_lagrangian import next_penalty as _next_penalty
from ufm.algorithms.batched import drive
from ufm.objectives.nonnegative import (
    MODEL2_BOUNDS,
    DilationData,
    coupling,
    dilation_memorization,
    model2_loss,
    smoothed_targets,
)
from ufm.problems import filled
from ufm.problems.nonnegative import MemorizationDilationProblem
from ufm.solver import CONVERGED, MAX_STEPS, SolverOptions, best_element, peak_bytes
from ufm.theory import nonnegative as theory

# rtol 1e-11: the augmented terms carry gradients of size rho r |grad D|, which lifts the rounding floor of the
# relative gradient just above 1e-12 for r ~ 30 (measured 1.3e-12); the KKT check below is the certificate.
SOLVER = SolverOptions(
    rtol=1e-11,
    linear_solver="eigh",
    damping=1.0,
    quasi_newton_steps=2000,
    quasi_newton_rtol=1e-9,
    max_steps=200,
    label="md",
)
OUTER_STEPS = 40
AL_TOL = 1e-11  # constraint residual |V_k| / (r D_k) at which the outer loop stops
RHO_START, RHO_MAX = 10.0, 1e6  # beyond 1e6 the inner problems' conditioning ~ rho r^2 costs them their digits
PATIENCE = 5  # outer steps without progress before the loop gives up
# H >= 0 as a bound of the inner solves, W free. Features H = G * G (a free G) made every zero entry of H a
# degenerate direction (the loss quartic in G there), where inner solves stalled at the rounding floor and were
# accepted as converged, leaving the KKT residual in H up to 9.2e-7 (--sweep r at alpha = 0.1, r = 2); with the
# bound no inner solve of the r sweep, the default run or the tests stalls, and none is accepted at a floor.
BOUNDS = MODEL2_BOUNDS
CERT_TOL = 1e-8  # feasibility, complementarity and KKT of the end point (relative)
OBJECTIVE_TOL = 1e-12  # the zero solution's value log K (exact) and the restarts' values against it
SCHEDULE = Schedule(outer_steps=OUTER_STEPS, tol=AL_TOL, rho_start=RHO_START, rho_max=RHO_MAX, patience=PATIENCE)


def memberships(problem) -> tuple[jax.Array, jax.Array]:
    """The clean and the noisy samples' one-hot memberships of their true classes (N x K each)."""
    onehot = np.eye(problem.C)[problem.true_labels]
    noisy = problem.noisy_mask[:, None]
    return jnp.asarray(onehot * ~noisy), jnp.asarray(onehot * noisy)


def zero_regime(problem: MemorizationDilationProblem) -> dict:
    """Whether the theory proves W = H = 0 optimal here (``ufm.theory.nonnegative.model3_zero_solution_optimal``:
    a sufficient condition on the observed and true labels, the coupling r and the weight decays)."""
    return theory.model3_zero_solution_optimal(
        problem.labels, problem.true_labels, problem.lambda_W, problem.lambda_H, problem.alpha, problem.r
    )


def balance(problem: MemorizationDilationProblem) -> float:
    """``t = (lambda_H/lambda_W)^(1/4)``: ``(W, H) = (t W', H'/t)`` maps the problem with both weight decays
    ``sqrt(lambda_W lambda_H)`` onto the given one value for value (W H = W' H', and the coupling M_k <= r D_k is
    homogeneous in H, so feasibility and the multipliers are unchanged). The solve works on the balanced problem."""
    return (problem.lambda_H / problem.lambda_W) ** 0.25


@jax.jit
def restart_dilation_memorization(H, clean, noisy):
    """Per restart (leading axis of H): D_k and M_k."""
    return jax.vmap(lambda h: dilation_memorization(h, clean, noisy)[1:])(H)


restart_objectives = jax.jit(jax.vmap(model2_loss, in_axes=(0, None)))  # every restart's objective


def scaled_lagrangian(params: dict, args) -> jax.Array:
    """``f / s + (1/(2 rho)) sum_k [max(0, nu_k + rho c_k)^2 - nu_k^2]`` on ``{"W", "H"}`` for ``args =
    (DilationData, s)``, to be minimised with H >= 0 as a bound (:data:`BOUNDS`): Model 3's augmented Lagrangian
    (``ufm.objectives.nonnegative.model3_lagrangian``) with the objective in units of its own size s (multipliers
    and penalty in those units; the true multipliers are ``s nu``). Unscaled, a tiny objective (7.5e-6 at weight
    decays 1e-7) meets penalties rho (r D)^2 ~ 1e7 times its size and the solver's test ``||grad|| / max(1,
    |value|)`` against 1: every inner solve stalled at relative gradient ~4e-6."""
    data, scale = args
    shifted = jnp.maximum(0.0, data.multipliers + data.rho * coupling(params["H"], data))
    return model2_loss(params, data) / scale + jnp.sum(shifted**2 - data.multipliers**2) / (2 * data.rho)


def next_penalty(rho: float, worst: float, previous: float, tol: float) -> float:
    """``ufm.algorithms.augmented_lagrangian.next_penalty`` at this family's RHO_MAX."""
    return _next_penalty(rho, worst, previous, tol, RHO_MAX)


def solve(
    problem: MemorizationDilationProblem,
    *,
    outer_steps: int = OUTER_STEPS,
    tol: float = AL_TOL,
    progress: bool = False,
    options: SolverOptions | None = None,
) -> dict:
    """:func:`solve_steps` run by ``ufm.solver.minimise`` (``ufm.algorithms.batched.drive``)."""
    return drive(solve_steps(problem, outer_steps=outer_steps, tol=tol, progress=progress, options=options))


def solve_steps(
    problem: MemorizationDilationProblem,
    *,
    outer_steps: int = OUTER_STEPS,
    tol: float = AL_TOL,
    progress: bool = False,
    options: SolverOptions | None = None,
):
    """As steps (``ufm.algorithms.batched``: yields each inner solve's solver call), the augmented-Lagrangian solve of
    every restart on the balanced problem (:func:`balance`); returns the best point's (W, H), multipliers and
    constraint values, and per restart: objective, status (CONVERGED only where the inner solve converged AND the
    constraint residual met ``tol``; else the inner status, or MAX_STEPS where the outer loop ran out) and residual.
    ``ranked`` is the Solution with those statuses and the objective (infinite at an infeasible restart where any is
    feasible: it may lie below the constrained optimum); the best point is ``ufm.solver.best_element`` of it, or W =
    H = 0 where the theory proves it optimal and no restart ends below it."""
    clean, noisy = memberships(problem)
    R, K, d, N = problem.restarts, problem.C, filled(problem.d, "d"), problem.N
    rng = np.random.default_rng(problem.seed)
    # the starting features are those of H = G * G with G uniform in [0.5, 1.5], well inside the orthant
    params = {"W": jnp.asarray(rng.standard_normal((R, K, d))), "H": jnp.asarray(rng.uniform(0.5, 1.5, (R, d, N)) ** 2)}
    t = balance(problem)
    both = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    data = DilationData(
        smoothed_targets(jnp.asarray(problem.labels), K, problem.alpha),
        jnp.asarray(both),
        jnp.asarray(both),
        clean,
        noisy,
        jnp.asarray(problem.r),
        jnp.zeros((R, K)),
        jnp.asarray(RHO_START),
    )
    measure = functools.partial(restart_dilation_memorization, clean=clean, noisy=noisy)

    def constraint(params):
        D, M = (np.asarray(a) for a in measure(params["H"]))
        return M - problem.r * D, np.maximum(problem.r * D.max(axis=1), 1e-300)

    al = yield from constrained_steps(
        scaled_lagrangian,
        params,
        data,
        constraint=constraint,
        objective=restart_objectives,
        schedule=dataclasses.replace(SCHEDULE, outer_steps=outer_steps, tol=tol),
        options=options or SOLVER,
        label="md",
        progress=progress,
        args_axes=(DilationData(None, None, None, None, None, None, 0, None), None),  # type: ignore[arg-type]
        nonnegative=BOUNDS,
    )
    sol, params, c, nu = al.solution, al.solution.params, al.constraint, al.multipliers
    D = np.asarray(measure(params["H"])[0])
    f = np.asarray(restart_objectives(params, data))
    status = np.where(al.done, CONVERGED, np.where(sol.converged, MAX_STEPS, sol.status))
    feasible = np.max(np.maximum(c, 0.0), axis=1) / al.scale <= CERT_TOL
    ranked = dataclasses.replace(sol, loss=np.where(feasible, f, np.inf) if feasible.any() else f, status=status)
    best = best_element(ranked)
    zero = zero_regime(problem)
    best_is_zero = bool(zero["zero"]) and not np.any(np.isfinite(f) & (f < zero["objective"] * (1 - OBJECTIVE_TOL)))
    if best_is_zero:
        W, H, multipliers, c_best = np.zeros((K, d)), np.zeros((d, N)), np.zeros(K), np.zeros(K)
        objective = float(model2_loss({"W": jnp.zeros((K, d)), "H": jnp.zeros((d, N))}, data))
    else:
        W, H = t * np.asarray(params["W"][best]), np.asarray(params["H"][best]) / t
        # back to (W, H): c is homogeneous of degree 1 in H, so c = c'/t and nu = t nu' (same nu c)
        multipliers, c_best, objective = t * nu[best], c[best] / t, float(f[best])
    # Model 3 is nonconvex with many KKT points close in value: the dilation of every converged restart shows how
    # far "the" answer depends on which of them the best restart found.
    return {
        "W": W,
        "H": H,
        "objective": objective,
        "multipliers": multipliers,
        "coupling": c_best,
        "solution": sol,
        "ranked": ranked,
        "best": best,
        "best_is_zero": best_is_zero,
        "zero": zero,
        "status": status,
        "residual": al.residual,
        "outer_steps": al.outer_steps,
        "rho": al.rho,
        "inner_steps": al.inner_steps,
        "violation": float(al.residual[best]),
        "clean": np.asarray(clean),
        "noisy": np.asarray(noisy),
        "Q": np.asarray(data.Q),
        "restart_objectives": f,
        "restart_dilation": D.mean(axis=1)[al.done],
    }


def extra_config() -> dict:
    """The report's config entries after the solver options: the noisy labels, the constraint's loop, balancing."""
    return {
        "noisy_labels": "last round(noise n) samples of each class relabelled uniformly among the other classes "
        "(seeded)",
        "constraint": f"augmented Lagrangian, nu <- max(0, nu + rho c), stop at max_k |max(c_k, -nu_k/rho)| / "
        f"(r D_k) <= {AL_TOL:g}; rho from {RHO_START:g}, x10 while stalling, <= {RHO_MAX:g}",
        "balanced": "solved with both weight decays sqrt(lambda_W lambda_H), (W, H) = (t W', H'/t)",
    }


def _peak_bytes(K: int, n: int, d: int, batch: int) -> int:
    """Peak bytes of one inner solve (the outer steps and sweep points run one after another), from sizes only.

    Variables per restart ``K d + d N``; the dense Hessian (``ufm.solver.peak_bytes``) and the forward-mode
    intermediates of forming it, one set per variable (matrix-free: a few sets): the d x N x K differences of every
    feature to every clean
    mean and their squares and roots (4 such arrays), the cross-entropy's ~8 K x N arrays, H and its products."""
    N = K * n
    n_vars = K * d + d * N
    per_variable = 4 * d * N * K + 8 * K * N + 3 * d * N
    data = (3 * K * N + d * N * K) * 8
    report = 2 * batch * n_vars * 8
    return peak_bytes(n_vars, batch, SOLVER, data, per_variable * 8) + report


def memory_estimate(problem: MemorizationDilationProblem) -> tuple[int, str]:
    """Estimated peak bytes of the family's run (``ufm.families.memorization_dilation``: one point or the r sweep)
    and the size field (C, n, d, restarts) whose reduction to its minimum (2, 3, C, 1) would shrink it most.
    Allocates nothing."""
    K, n, d, R = problem.C, problem.n, filled(problem.d, "d"), problem.restarts
    at_minimum = {
        "C": _peak_bytes(2, n, d, R),
        "n": _peak_bytes(K, 3, d, R),
        "d": _peak_bytes(K, n, K, R),
        "restarts": _peak_bytes(K, n, d, 1),
    }
    return _peak_bytes(K, n, d, R), min(at_minimum, key=at_minimum.__getitem__)
