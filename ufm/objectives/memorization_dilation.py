"""Model 3, memorization-dilation (after Nguyen et al., "Memorization-Dilation: Modeling Neural Collapse Under
Label Noise", ICLR 2023; our formalisation): the noisy-label data, the balanced problem, the scaled augmented
Lagrangian of the coupling ``c_k = M_k - r D_k <= 0`` in the variables (W, H) themselves, H >= 0 a bound that
every inner solve keeps (:data:`BOUNDS`, projected Newton, as Model 2), and the settings of its outer loop
(``ufm.algorithms.augmented_lagrangian``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ufm.algorithms.augmented_lagrangian import Schedule
from ufm.objectives.nonnegative import (
    MODEL2_BOUNDS,
    coupling,
    dilation_memorization,
    model2_loss,
)
from ufm.problems.nonnegative import MemorizationDilationProblem
from ufm.solver import SolverOptions
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
