"""The shared solver: batched (vmapped) restarts or subproblems, optional L-BFGS phase, damped Newton polish.

One entry point, :func:`minimise`, serves every family. An objective is a plain function ``fn(params, args)``
returning a scalar; ``params`` is any pytree. The solver vmaps over a leading batch axis of ``params`` (and of
the ``args`` leaves marked in ``args_axes``, as for ``jax.vmap``), so a batch can be independent subproblems
(e.g. every (c, c', lambda) of a mixup grid) or seeded restarts of one nonconvex problem.

Convergence is judged per batch element on the relative gradient norm ``||grad f|| / max(1, |f|)`` (scale-free in
f, so a test's tolerance means the same for every family) and on the size of the last Newton step. Every element
ends with a status:

- ``CONVERGED``: the relative gradient norm reached ``options.rtol`` and the last Newton step was below
  ``options.xtol * max(1, ||x||)`` (the error left is then of the order of that step squared) or no step could
  reduce the loss or the gradient any further (the rounding floor);
- ``MAX_STEPS``: the step budget ran out first;
- ``NONFINITE``: the loss or gradient became NaN/inf (the last finite iterate is kept);
- ``STALLED``: no step decreased the loss beyond rounding nor the gradient norm (a rounding floor above rtol);
- ``SADDLE``: the gradient reached the tolerance at a point whose Hessian has a clearly negative eigenvalue
  (below ``-NEGATIVE_CURVATURE * max(1, max |eigenvalue|)``) and no step along that eigenvector decreased the loss.

With the dense ``"eigh"`` solver every step knows the Hessian's smallest eigenvalue. A point at gradient tolerance
is accepted as converged only if that eigenvalue is not clearly negative; otherwise the solver steps along its
eigenvector (the sign that does not increase the loss to first order, a backtracking search for a decrease of at
least a quarter of the quadratic model's ``|lambda_min| t^2 / 2``), so that restarts started on a symmetric
subspace (e.g. a zero feature block) leave the saddle instead of ending there. Such a restart is never reported as
converged: it ends ``SADDLE`` if no escape step decreases the loss. Every element's final smallest eigenvalue is
in ``Solution.min_eigenvalue`` (NaN where the linear solver does not form the Hessian).

Newton directions solve ``(H + shift I) p = -g`` with ``shift = options.damping * ||g||`` (Levenberg-Marquardt;
the shift vanishes at the optimum, keeping quadratic convergence) by one of:

- ``"cholesky"``: dense Hessian, for convex problems of moderate dimension (falls back to -g if not PD);
- ``"eigh"``: dense Hessian, eigenvalues replaced by their absolute values (saddle-free Newton), for nonconvex
  joint problems whose Hessians are indefinite away from the optimum and singular at it (rotation symmetry);
- ``options.newton_system`` (optional, overrides ``linear_solver``): a function ``(x, g, args, shift) -> p`` that
  a family supplies when its Hessian has structure to exploit (e.g. ``mu I + W^T A W`` with W shared by the
  batch, solved through a C x C system); ``x`` is the flat parameter vector of one element. It must solve
  ``(H + shift I) p = -g`` from the objective's own data; it is trusted like the other solvers (a non-descent or
  non-finite answer falls back to -g), and the convergence test is unchanged, so an inexact solve costs steps,
  never correctness;
- ``"cg"``: matrix-free truncated conjugate gradients on Hessian-vector products, for large dimension (each
  product costs about two passes over the data: the Hessian is never formed, so a batch of subproblems of
  dimension d sharing a C x d matrix costs batched (B x d)(d x C) matrix products per CG iteration).

Devices: when jax sees more than one local device and ``options.shard_batch`` (the default), the batch axis is
cut into contiguous slices, one per device (sizes differ by at most one; shared ``args`` are copied to each), and
every device solves its slice with its own compiled program: all loops are local to a device and nothing passes
between devices until the host gathers the results. An element's iterates and steps therefore do not depend on the
number of devices (its features can differ in the last bits: XLA blocks batched products by batch size). Each
device compiles its own program, so compile time grows with the device count. Accelerators run their slices at
the same time; on the CPU platform the slices run one after another, because there jaxlib's batched LAPACK
kernels (Cholesky, eigh) split a batch of more than ~2e5 flops into tasks on the one intra-op thread pool (a thread
per core) and block their own pool thread until the tasks finish: host devices running side by side can fill every
pool thread with such waits, leaving none to run the tasks (a deadlock: 2 or 4 host devices on 2 cores, once a
device holds 601 or more 10 x 10 Cholesky factorizations). Across hosts (``jax.distributed``), each process solves
its own slice of a sweep on its local devices (README, "Benchmarks and scale-out").

A backtracking line search accepts a step when the Armijo condition holds up to rounding of f or, once f no
longer changes beyond rounding (where it cannot tell good steps from bad), when the step halves the gradient norm: this
is what lets the polish reach the
rounding floor instead of stalling where loss differences vanish in float64 (the failure of line-searched
quasi-Newton methods near 1e-9).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ufm.precision import require_float64


class Status(enum.IntEnum):
    """How one batch element's solve ended: :attr:`Solution.status` holds these codes (``Status(code)``, and
    :meth:`Solution.statuses`), each with its :attr:`message`. ``RUNNING`` is never returned."""

    RUNNING = -1
    CONVERGED = 0
    MAX_STEPS = 1
    NONFINITE = 2
    STALLED = 3
    SADDLE = 4

    @property
    def message(self) -> str:
        return STATUS_MESSAGES[self]


RUNNING, CONVERGED, MAX_STEPS, NONFINITE, STALLED, SADDLE = (
    Status.RUNNING,
    Status.CONVERGED,
    Status.MAX_STEPS,
    Status.NONFINITE,
    Status.STALLED,
    Status.SADDLE,
)
STATUS_MESSAGES: dict[int, str] = {
    Status.RUNNING: "running",
    Status.CONVERGED: "converged",
    Status.MAX_STEPS: "maximum number of steps reached",
    Status.NONFINITE: "loss or gradient became non-finite",
    Status.STALLED: "stalled: no decrease beyond rounding (tolerance below the rounding floor)",
    Status.SADDLE: "saddle point: gradient at tolerance but the Hessian has a clearly negative eigenvalue",
}
_EPS = float(np.finfo(np.float64).eps)
# A Hessian eigenvalue below -NEGATIVE_CURVATURE * max(1, max |eigenvalue|) is "clearly negative": far above the
# rounding of a dense eigensolver (~ eps ||H||) and of the curvature left at a point within the convergence
# tolerance of a degenerate minimum (zero eigenvalues of the rotation symmetry stay within ~1e-12 there).
NEGATIVE_CURVATURE = 1e-6


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """Settings of :func:`minimise` (no state; see the module docstring for their meaning)."""

    rtol: float = 1e-12
    xtol: float = 1e-9
    max_steps: int = 100
    linear_solver: str = "cholesky"
    damping: float = 0.0
    quasi_newton_steps: int = 0
    quasi_newton_rtol: float = 1e-8
    cg_max_steps: int = 200
    dense_max_vars: int = 500
    lanczos_steps: int = 32
    max_memory_bytes: int | None = None
    steps_per_report: int = 5
    progress: bool = True
    label: str = "newton"
    shard_batch: bool = True
    newton_system: Callable[[jax.Array, jax.Array, Any, jax.Array], jax.Array] | None = None

    def __post_init__(self):
        if self.linear_solver not in ("cholesky", "eigh", "cg"):
            raise ValueError(f"linear_solver must be cholesky, eigh or cg, got {self.linear_solver!r}")

    @property
    def tests_curvature(self) -> bool:
        """Nonconvex mode (``"eigh"`` asked for): a point at tolerance is a minimum only once its curvature is
        known not to be clearly negative (dense: the Hessian's spectrum; matrix-free: a Lanczos estimate)."""
        return self.linear_solver == "eigh" and self.newton_system is None


# What actually runs for one element (see :func:`linear_algebra`).
STRUCTURED, DENSE_CHOLESKY, DENSE_EIGH, MATRIX_FREE, MATRIX_FREE_LANCZOS = (
    "structured",
    "dense cholesky",
    "dense eigh (saddle-free)",
    "matrix-free CG",
    "matrix-free CG + Lanczos curvature test",
)


def dense_bytes(n_vars: int) -> int:
    """Peak bytes of one element's dense Newton step: the Hessian, its factor or eigenvectors and the autodiff
    intermediates of forming it (about four ``n_vars^2`` float64 arrays)."""
    return 4 * int(n_vars) ** 2 * 8


def linear_algebra(options: SolverOptions, n_vars: int, budget_bytes: int | None = None) -> str:
    """The linear algebra :func:`minimise` uses for elements of ``n_vars`` variables: a family's structured
    solve if it gives one; dense (Cholesky, or saddle-free eigh) up to ``options.dense_max_vars`` variables (an
    O(n^3) eigendecomposition per step: 7 s at n = 1000 on a 2-core CPU, against ~0.1 s for a CG step) and
    while one element's Hessian fits in the memory budget; above that matrix-free truncated CG on
    Hessian-vector products, with a Lanczos estimate of the smallest eigenvalue at tolerance in nonconvex mode
    (``"eigh"``). ``"cg"`` asks for matrix-free at every size."""
    budget = memory_budget_bytes() if budget_bytes is None else int(budget_bytes)
    if options.newton_system is not None:
        return STRUCTURED
    dense = options.linear_solver != "cg" and n_vars <= options.dense_max_vars and dense_bytes(n_vars) <= budget
    if dense:
        return DENSE_EIGH if options.linear_solver == "eigh" else DENSE_CHOLESKY
    return MATRIX_FREE_LANCZOS if options.tests_curvature else MATRIX_FREE


@dataclasses.dataclass(frozen=True)
class Solution:
    """Per batch element (leading axis): params (a pytree of numpy arrays), final loss, gradient norms, steps taken,
    status (:class:`Status` codes); plus timings (s). Every array is numpy, on the host."""

    params: Any
    loss: np.ndarray
    grad_norm: np.ndarray
    rel_grad_norm: np.ndarray
    steps: np.ndarray
    status: np.ndarray
    compile_seconds: float
    solve_seconds: float
    rtol: float
    min_eigenvalue: np.ndarray | None = None
    linear_algebra: str = ""
    devices: tuple[str, ...] = ()

    @property
    def converged(self) -> np.ndarray:
        return self.status == CONVERGED

    def statuses(self) -> list[Status]:
        """Each element's status as a :class:`Status`."""
        return [Status(int(code)) for code in self.status]

    def report(self) -> dict:
        """JSON-ready convergence report; ``failures`` counts each non-converged status by its message."""
        failures = {
            STATUS_MESSAGES[s]: int(np.sum(self.status == s))
            for s in (MAX_STEPS, NONFINITE, STALLED, SADDLE)
            if np.any(self.status == s)
        }
        return {
            "subproblems": int(self.status.size),
            "converged": int(np.sum(self.converged)),
            "all_converged": bool(np.all(self.converged)),
            "rtol": self.rtol,
            "max_rel_grad_norm": float(np.max(self.rel_grad_norm)),
            "max_grad_norm": float(np.max(self.grad_norm)),
            "max_steps_taken": int(np.max(self.steps)),
            "mean_steps_taken": float(np.mean(self.steps)),
            "failures": failures,
            "compile_seconds": self.compile_seconds,
            "solve_seconds": self.solve_seconds,
            "linear_algebra": self.linear_algebra,
            "devices": list(self.devices),
        }


class _State(NamedTuple):
    x: jax.Array
    f: jax.Array
    g: jax.Array
    steps: jax.Array
    status: jax.Array
    min_eig: jax.Array


def _dtype(a) -> str:
    return np.dtype(getattr(a, "dtype", None) or np.asarray(a).dtype).str


def _rel(g, f):
    return jnp.linalg.norm(g) / jnp.maximum(1.0, jnp.abs(f))


def _project(x, bound):
    """The nearest point with the ``bound`` variables nonnegative (``bound`` None: no bounds)."""
    return x if bound is None else jnp.where(bound, jnp.maximum(x, 0.0), x)


def _projected_gradient(x, g, bound):
    """``x - P(x - g)``: the gradient, except on a bound variable at (or near) zero that the gradient pushes
    below it, where it is ``x`` itself; zero exactly at a point satisfying the KKT conditions of ``x >= 0``."""
    return g if bound is None else jnp.where(bound, jnp.minimum(x, g), g)


def _fixed_set(x, g, bound):
    """Bertsekas' epsilon-active set: bound variables within ``min(1e-3, ||x - P(x - g)||)`` of zero that the
    gradient pushes down. They take a projected-gradient step; the others a Newton step on the reduced Hessian."""
    eps = jnp.minimum(1e-3, jnp.linalg.norm(_projected_gradient(x, g, bound)))
    return bound & (x <= eps) & (g > 0)


def _cg(hvp, b, shift, max_steps, rtol, active=True):
    """Truncated CG for (H + shift I) p = b; returns the iterate with the smallest residual seen (or b if the
    first direction already has non-positive curvature).

    It stops at the tolerance, at ``max_steps``, or at non-positive curvature. Where H is singular (the rotation
    symmetry of joint problems) rounding feeds null-space components into the recurrence: the residual then
    grows again before the curvature test fires, so the last iterate can be much worse than the best one.
    ``active`` False (an element that has already finished) ends the loop at once: under vmap a while loop runs
    as long as any element's condition holds, so finished elements must not hold it.
    """

    def cond(s):
        k, _, _, _, rr, done, _, _ = s
        return active & (k < max_steps) & ~done & (jnp.sqrt(rr) > rtol * jnp.linalg.norm(b))

    def body(s):
        k, p, r, d, rr, _, best, rr_best = s
        Hd = hvp(d) + shift * d
        curv = d @ Hd
        neg = curv <= 0
        alpha = rr / jnp.where(neg, 1.0, curv)
        p_new = jnp.where(neg, p, p + alpha * d)
        r_new = r - alpha * Hd
        rr_new = jnp.where(neg, rr, r_new @ r_new)
        improved = ~neg & (rr_new < rr_best)
        best, rr_best = jnp.where(improved, p_new, best), jnp.where(improved, rr_new, rr_best)
        d_new = r_new + (rr_new / rr) * d
        return (k + 1, p_new, jnp.where(neg, r, r_new), jnp.where(neg, d, d_new), rr_new, neg, best, rr_best)

    z = jnp.zeros_like(b)
    rr0 = b @ b
    k, *_, best, rr_best = jax.lax.while_loop(cond, body, (0, z, b, b, rr0, False, z, rr0))
    return jnp.where(rr_best < rr0, best, b)


def _lanczos_extremes(hvp, n, steps, active):
    """Smallest Ritz value of the Hessian (an upper bound on its smallest eigenvalue, usually within rounding of
    it for an isolated extreme eigenvalue), its unit Ritz vector and the largest |Ritz value|, from ``steps``
    Lanczos iterations with full reorthogonalisation started from a fixed pseudo-random vector. An invariant
    subspace found early ends the recurrence (the unused rows then hold a large placeholder eigenvalue).
    ``active`` False ends the loop at once (see :func:`_cg`)."""
    steps = min(int(steps), int(n))
    q0 = jax.random.normal(jax.random.PRNGKey(0), (n,))
    q0 = q0 / jnp.linalg.norm(q0)

    def cond(s):
        j, _, _, _, _, done = s
        return active & (j < steps) & ~done

    def body(s):
        j, V, alpha, beta, q, _ = s
        V = V.at[j].set(q)
        w = hvp(q)
        a = q @ w
        w = w - V.T @ (V @ w)
        w = w - V.T @ (V @ w)  # twice: orthogonal to working precision
        b = jnp.linalg.norm(w)
        done = b <= 1e3 * _EPS * jnp.maximum(jnp.abs(a), jnp.max(jnp.abs(alpha)))
        return j + 1, V, alpha.at[j].set(a), beta.at[j].set(b), w / jnp.where(done, 1.0, b), done

    zeros = jnp.zeros(steps, q0.dtype)
    used, V, alpha, beta, _, _ = jax.lax.while_loop(
        cond, body, (0, jnp.zeros((steps, n), q0.dtype), zeros, zeros, q0, False)
    )
    valid = jnp.arange(steps) < used
    top = jnp.max(jnp.where(valid, jnp.abs(alpha) + beta, 0.0))
    T = jnp.diag(jnp.where(valid, alpha, 2 * top + 1)) + jnp.diag(jnp.where(valid[1:], beta[:-1], 0.0), 1)
    theta, Y = jnp.linalg.eigh(T + jnp.triu(T, 1).T)
    v = V.T @ Y[:, 0]
    ran = active & (used > 0)
    return (
        jnp.where(ran, theta[0], jnp.nan),
        v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(q0.dtype).tiny),
        jnp.where(ran, jnp.max(jnp.abs(jnp.where(valid, theta, 0.0))), jnp.nan),
    )


class _Direction(NamedTuple):
    p: jax.Array  # the Newton direction
    min_eig: jax.Array  # smallest Hessian eigenvalue (nan where not known at this point)
    escape: jax.Array  # unit eigenvector of min_eig, signed not to ascend (zeros where not known)
    negative: jax.Array  # min_eig is clearly negative
    curvature_known: jax.Array  # min_eig was computed at this point


def _clearly_negative(min_eig, top):
    return min_eig < -NEGATIVE_CURVATURE * jnp.maximum(1.0, top)


def _newton_direction(fun, x, f, g, args, opts: SolverOptions, algebra: str, active=True, fixed=None) -> _Direction:
    """The step of one element. ``fixed`` (bounded problems): variables held to a gradient step; the Hessian is
    reduced to the others (rows and columns of ``fixed`` replaced by the identity), so the step, the curvature
    test and the escape direction live on the free variables (``g`` is then the projected gradient on them)."""
    shift = opts.damping * jnp.linalg.norm(g)
    unknown = (jnp.asarray(jnp.nan, x.dtype), jnp.zeros_like(x), jnp.asarray(False), jnp.asarray(False))
    if algebra == STRUCTURED:
        newton_system = opts.newton_system
        if newton_system is None:  # linear_algebra chooses STRUCTURED only when a newton_system is given
            raise ValueError("the structured linear algebra needs options.newton_system")
        p = newton_system(x, g, args, shift)
        ok = jnp.all(jnp.isfinite(p)) & (p @ g < 0)
        return _Direction(jnp.where(ok, p, -g), *unknown)
    if algebra in (MATRIX_FREE, MATRIX_FREE_LANCZOS):
        # linearize once per Newton step: the primal (e.g. the logits W h and their softmax) is computed here
        # and reused by every CG iteration, so one Hessian-vector product costs two matrix products, not four.
        _, hvp = jax.linearize(lambda y: jax.grad(fun)(y, args), x)
        if fixed is not None:
            full_hvp = hvp
            hvp = lambda v: jnp.where(fixed, v, full_hvp(jnp.where(fixed, 0.0, v)))
        p = _cg(hvp, -g, shift, opts.cg_max_steps, 1e-3 * jnp.minimum(1.0, jnp.sqrt(jnp.linalg.norm(g))), active)
        if algebra == MATRIX_FREE:
            return _Direction(p, *unknown)
        # Nonconvex: the curvature is estimated only where it decides the status (at gradient tolerance).
        at_tolerance = _rel(g, f) <= opts.rtol
        min_eig, v, top = _lanczos_extremes(hvp, x.size, opts.lanczos_steps, active & at_tolerance)
        v = jnp.where(v @ g > 0, -v, v)
        known = active & at_tolerance
        return _Direction(p, min_eig, jnp.where(known, v, 0.0), known & _clearly_negative(min_eig, top), known)
    H = jax.hessian(fun)(x, args)
    eye = jnp.eye(x.size, dtype=x.dtype)
    if fixed is not None:
        free = ~fixed
        H = jnp.where(free[:, None] & free[None, :], H, 0.0) + jnp.diag(fixed.astype(x.dtype))
    if algebra == DENSE_EIGH:
        w, V = jnp.linalg.eigh(H)
        p = -V @ ((V.T @ g) / (jnp.abs(w) + shift + _EPS * jnp.max(jnp.abs(w))))
        v = V[:, 0]
        v = jnp.where(v @ g > 0, -v, v)
        return _Direction(p, w[0], v, _clearly_negative(w[0], jnp.max(jnp.abs(w))), jnp.asarray(True))
    L = jnp.linalg.cholesky(H + shift * eye)
    p = -jax.scipy.linalg.cho_solve((L, True), g)
    ok = jnp.all(jnp.isfinite(p)) & (p @ g < 0)
    return _Direction(jnp.where(ok, p, -g), *unknown)


def _search(fun, x, f, g, p, t_first, escaping, min_eig, args, active=True, bound=None):
    """Backtracking along ``p`` from ``t = t_first``, halving up to 60 times while ``active`` and no trial is
    accepted; the first trial is always evaluated. Returns the step taken, whether it was accepted, and f and the
    gradient there.

    Two acceptance rules, one per element (``escaping``):
    - a Newton or gradient step (``t_first = 1``; see the module docstring for the rounding-aware rule): the Armijo
      condition up to rounding of f, or, where f is flat to rounding, a halving of the (projected) gradient norm;
    - an escape from a saddle along the unit negative-curvature direction ``p`` (``t_first = max(1, ||x||)``):
      ``f(x + t p) <= f + min_eig t^2 / 8`` (a quarter of the quadratic model's decrease) and a decrease beyond
      rounding.
    With bounds the trial points are projected (Bertsekas' projection arc ``P(x + t p)``) and the sufficient
    decrease is measured by ``g . (P(x + t p) - x)``. Elements that are not ``active`` take only the first trial,
    so they do not hold a vmapped loop open. One loop serves both rules: the objective's value and gradient are
    compiled into the program once, not once per rule and per first trial.
    """
    slope = g @ p
    gnorm = jnp.linalg.norm(_projected_gradient(x, g, bound))
    vg = jax.value_and_grad(fun)
    # Rounding noise of an evaluation of f: two evaluations of the same f at nearly the same point, compiled in
    # different contexts (batched, fused), differ by a sum's rounding error, which grows like sqrt(#terms) eps|f|
    # (seen: 83 eps for a 1e6-variable joint problem under vmap, 1 eps for the same element alone); the number
    # of variables stands in for the number of terms.
    noise = 64 * _EPS * jnp.maximum(1.0, jnp.abs(f)) * np.sqrt(x.size)

    def trial(t):
        step = t * p if bound is None else _project(x + t * p, bound) - x
        ft, gt = vg(x + step, args)
        model = t * slope if bound is None else g @ step
        armijo = ft <= f + 1e-4 * model + 16 * _EPS * jnp.abs(f)
        flat = jnp.abs(ft - f) <= noise
        # Where f is flat to rounding it cannot tell a good step from a bad one: judge by the gradient instead.
        decrease = jnp.where(flat, jnp.linalg.norm(_projected_gradient(x + step, gt, bound)) <= 0.5 * gnorm, armijo)
        escape = (ft <= f + min_eig * t * t / 8) & (ft < f - noise)
        ok = jnp.isfinite(ft) & jnp.all(jnp.isfinite(gt)) & jnp.where(escaping, escape, decrease)
        return ok, ft, gt, step

    def cond(s):
        k, _, ok, *_ = s
        return (k == 0) | (active & ~ok & (k <= 60))

    def body(s):
        k, t, *_ = s
        t = jnp.where(k == 0, t, t / 2)
        ok, ft, gt, step = trial(t)
        return k + 1, t, ok, ft, gt, step

    start = (0, jnp.asarray(t_first, x.dtype), jnp.asarray(False), f, g, jnp.zeros_like(x))
    _, _, ok, ft, gt, step = jax.lax.while_loop(cond, body, start)
    return step, ok, ft, gt


def _newton_step(fun, opts: SolverOptions, algebra: str, bound=None):
    def step(s: _State, args) -> _State:
        active = s.status == RUNNING
        pg = _projected_gradient(s.x, s.g, bound)
        if bound is None:
            direction = _newton_direction(fun, s.x, s.f, s.g, args, opts, algebra, active)
        else:  # projected Newton (Bertsekas 1982): Newton on the free variables, gradient steps on the fixed
            fixed = _fixed_set(s.x, s.g, bound)
            # free variables: Newton on the gradient; fixed ones: the projected gradient (they move to the bound)
            direction = _newton_direction(
                fun, s.x, s.f, jnp.where(fixed, pg, s.g), args, opts, algebra, active, fixed=fixed
            )
        p = direction.p
        # At the tolerance with a tiny Newton step, only the full step is tried: backtracking there (up to 60
        # halvings where f and the gradient sit at their rounding floor) cannot improve on "converged", and under
        # vmap it would make the whole batch evaluate the objective 60 more times.
        xscale = opts.xtol * jnp.maximum(1.0, jnp.linalg.norm(s.x))
        at_tolerance = _rel(pg, s.f) <= opts.rtol
        done_but_polish = at_tolerance & (jnp.linalg.norm(p) <= xscale)
        # At the tolerance on clearly negative curvature (a saddle): step along its eigenvector instead.
        escaping = at_tolerance & direction.negative
        search = jnp.where(escaping, direction.escape, p)
        t_first = jnp.where(escaping, jnp.maximum(1.0, jnp.linalg.norm(s.x)), 1.0)
        backtracks = active & (escaping | ~done_but_polish)
        step_vector, ok, ft, gt = _search(
            fun, s.x, s.f, s.g, search, t_first, escaping, direction.min_eig, args, backtracks, bound
        )
        ok = jnp.where(escaping, ok & active, ok)
        x = jnp.where(ok, s.x + step_vector, s.x)
        f = jnp.where(ok, ft, s.f)
        g = jnp.where(ok, gt, s.g)
        steps = s.steps + 1
        # Converged: gradient at tolerance and the Newton step just taken was tiny (so the error left is of
        # order its square), or gradient at tolerance and no step possible (the rounding floor); never where the
        # Hessian just formed has clearly negative curvature (a saddle: the next step escapes it or ends SADDLE),
        # including a small step INTO tolerance (seen: a square-loss start ended CONVERGED at eigenvalue -9.3e3).
        # Matrix-free, the curvature is known only at points that were at tolerance: a step into tolerance is
        # followed by one more step there, which tests it.
        small_step = jnp.linalg.norm(step_vector) <= xscale
        curvature_ok = ~direction.negative & (direction.curvature_known | (algebra != MATRIX_FREE_LANCZOS))
        status = jnp.where(
            escaping & ~ok,
            SADDLE,
            jnp.where(
                (_rel(_projected_gradient(x, g, bound), f) <= opts.rtol) & (small_step | ~ok) & curvature_ok,
                CONVERGED,
                jnp.where(~ok, STALLED, jnp.where(steps >= opts.max_steps, MAX_STEPS, RUNNING)),
            ),
        )
        min_eig = jnp.where(direction.curvature_known | (algebra != MATRIX_FREE_LANCZOS), direction.min_eig, s.min_eig)
        new = _State(x, f, g, steps, status, min_eig)
        running = s.status == RUNNING
        return jax.tree.map(lambda a, b: jnp.where(running, a, b), new, s)

    return step


def _lbfgs_phase(fun, x, args, opts: SolverOptions):
    """optax L-BFGS (zoom line search) until the relative gradient reaches quasi_newton_rtol or the budget ends.

    Returns the lowest iterate seen, not the last: where the zoom line search fails, optax still takes a step, and
    on a ReLU objective's kinks such steps compound (seen: one restart went from f = 2.35 to 1e24).
    """
    value_and_grad = optax.value_and_grad_from_state(lambda y: fun(y, args))
    solver = optax.lbfgs()

    def body(carry):
        y, state, k, _, best, f_best = carry
        f, g = value_and_grad(y, state=state)
        lower = jnp.isfinite(f) & (f < f_best)
        best, f_best = jnp.where(lower, y, best), jnp.where(lower, f, f_best)
        updates, state = solver.update(g, state, y, value=f, grad=g, value_fn=lambda z: fun(z, args))
        y_new = optax.apply_updates(y, updates)
        y_new = jnp.where(jnp.all(jnp.isfinite(y_new)), y_new, y)
        return y_new, state, k + 1, _rel(g, f), best, f_best

    def cond(carry):
        _, _, k, rel, _, _ = carry
        return (k < opts.quasi_newton_steps) & (rel > opts.quasi_newton_rtol)

    y, _, _, _, best, f_best = jax.lax.while_loop(cond, body, (x, solver.init(x), 0, jnp.inf, x, jnp.inf))
    f = fun(y, args)
    return jnp.where(jnp.isfinite(f) & (f <= f_best), y, best)


def _shard_batch(x0, args, args_axes, settings, devices):
    """Cut the batch axis of ``x0``, of the batched ``args`` and of the per-element ``settings`` into contiguous
    slices, one per device (sizes differ by at most one), each placed on its device with its own copy of the shared
    args.

    ``args_axes`` is a prefix of ``args`` with leaves None (shared) or 0 (batched), as for ``jax.vmap``.
    """
    bounds = [k * x0.shape[0] // len(devices) for k in range(len(devices) + 1)]

    def part(lo, hi, device):
        def place(axis, sub):
            if axis is None:
                return jax.tree.map(lambda a: jax.device_put(jnp.asarray(a), device), sub)
            if axis != 0:
                raise ValueError(f"args_axes leaves must be None or 0 to shard the batch, got {axis!r}")
            return jax.tree.map(lambda a: jax.device_put(jnp.asarray(a)[lo:hi], device), sub)

        if args_axes is None or isinstance(args_axes, int):
            sliced = place(args_axes, args)
        else:
            sliced = jax.tree.map(place, args_axes, args, is_leaf=lambda a: a is None)
        placed = {name: jax.device_put(value[lo:hi], device) for name, value in settings.items()}
        return jax.device_put(x0[lo:hi], device), sliced, placed

    return [part(lo, hi, device) for lo, hi, device in zip(bounds, bounds[1:], devices)]


# The numeric settings reach the compiled programs as data, not as constants: solves that differ only in them (a
# family whose tolerances follow the objective's scale, e.g. the square loss over weight decays) share one
# compilation. The others shape the program (its linear algebra, loop structure, array sizes) and stay static.
TRACED_SETTINGS = ("rtol", "xtol", "max_steps", "damping", "quasi_newton_rtol", "quasi_newton_steps", "cg_max_steps")
_INTEGER_SETTINGS = ("max_steps", "quasi_newton_steps", "cg_max_steps")


def _traced_settings(options: SolverOptions, batch: int, element_options=None) -> dict:
    """The values of TRACED_SETTINGS, one per batch element (float64 / int32 arrays of length ``batch``): the
    compiled programs' last argument, mapped with the batch. From ``options``, or per element from
    ``element_options`` (a sequence of ``batch`` SolverOptions)."""
    dtype = lambda name: np.int32 if name in _INTEGER_SETTINGS else np.float64
    if element_options is None:
        return {name: np.full(batch, getattr(options, name), dtype(name)) for name in TRACED_SETTINGS}
    return {name: np.asarray([getattr(e, name) for e in element_options], dtype(name)) for name in TRACED_SETTINGS}


def static_options(options: SolverOptions) -> SolverOptions:
    """``options`` with the traced settings at their defaults (whether an L-BFGS phase runs at all is kept: it is
    part of the program), no label or progress and no memory budget (it chooses the linear algebra and the batch's
    chunks, which key the programs themselves): the key of the compiled programs."""
    defaults = SolverOptions()
    reset = {name: getattr(defaults, name) for name in TRACED_SETTINGS}
    reset["quasi_newton_steps"] = int(options.quasi_newton_steps > 0)
    return dataclasses.replace(options, progress=False, label="", max_memory_bytes=None, **reset)


def _executables(start, advance, progress, cache, x0, args, settings, device):
    """Compiled start, advance and progress for these argument shapes on ``device`` (None: one device, wherever
    jax places the arguments), from ``cache`` or compiled into it."""
    signature = jax.tree.map(lambda a: (np.shape(a), _dtype(a)), (x0, args))
    signature = (jax.tree.structure(signature), tuple(jax.tree.leaves(signature)), device)
    if signature not in cache:
        start_c = start.lower(x0, args, settings).compile()
        state_spec = jax.eval_shape(start, x0, args, settings)
        if device is not None:  # the state stays on its device between calls
            sharding = jax.sharding.SingleDeviceSharding(device)
            state_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), state_spec)
        advance_c = advance.lower(state_spec, args, settings).compile()
        cache[signature] = (start_c, advance_c, progress.lower(state_spec).compile())
    return cache[signature]


@functools.lru_cache(maxsize=64)
def _solver_functions(
    fun, options: SolverOptions, algebra, treedef, leaf_specs, args_axes, out_sharding, bound_key=None
):
    """Jitted start (L-BFGS phase + first evaluation), advance (a chunk of Newton steps) and progress (the report
    line's numbers) for one objective, static options (:func:`static_options`), parameter structure and output
    sharding, with a cache of their compiled executables by argument shapes. start and advance take the values of
    TRACED_SETTINGS as their last argument."""
    example = jax.tree.unflatten(treedef, [jnp.zeros(shape, dtype) for shape, dtype in leaf_specs])
    _, unravel = ravel_pytree(example)
    flat_fun = lambda x, a: fun(unravel(x), a)
    vmapped_axes = (0, args_axes, 0)  # params, args, the per-element settings
    bound = None if bound_key is None else jnp.asarray(np.frombuffer(bound_key, dtype=bool))

    @jax.jit(out_shardings=out_sharding)
    def start(x, args, settings):
        def one(x, args, settings):
            opts = dataclasses.replace(options, **settings)
            if options.quasi_newton_steps > 0 and bound is None:
                x = _lbfgs_phase(flat_fun, x, args, opts)
            elif options.quasi_newton_steps > 0 and bound is not None:
                # L-BFGS knows no bounds: it runs on the squares x = y * y of the bound variables (feasible at
                # every iterate; cheap steps far from the optimum), and projected Newton then polishes on x itself,
                # where the reparametrisation's degeneracy at x = 0 (a quartic loss in y) is gone.
                square = lambda y: jnp.where(bound, y * y, y)
                y = _lbfgs_phase(
                    lambda y, a: flat_fun(square(y), a), jnp.where(bound, jnp.sqrt(jnp.abs(x)), x), args, opts
                )
                x = square(y)
            x = _project(x, bound)
            f, g = jax.value_and_grad(flat_fun)(x, args)
            bad = ~(jnp.isfinite(f) & jnp.all(jnp.isfinite(g)))
            # With the eigh solver a start at gradient tolerance still takes a step: it may be a saddle (e.g. a
            # start at W = H = 0), which only the step's curvature test can tell.
            at_tol = (_rel(_projected_gradient(x, g, bound), f) <= opts.rtol) & (not options.tests_curvature)
            status = jnp.where(bad, NONFINITE, jnp.where(at_tol, CONVERGED, RUNNING))
            return _State(x, f, g, jnp.zeros((), jnp.int32), status.astype(jnp.int32), jnp.asarray(jnp.nan, x.dtype))

        return jax.vmap(one, in_axes=vmapped_axes)(x, args, settings)

    @jax.jit(out_shardings=out_sharding)
    def advance(state, args, settings):
        def chunk(s, a, settings):
            step = _newton_step(flat_fun, dataclasses.replace(options, **settings), algebra, bound)

            # A while loop, not a fori loop: under vmap it ends as soon as every element has finished, instead
            # of running the remaining steps of the chunk masked.
            def cond(carry):
                k, t = carry
                return (k < options.steps_per_report) & (t.status == RUNNING)

            return jax.lax.while_loop(cond, lambda carry: (carry[0] + 1, step(carry[1], a)), (0, s))[1]

        return jax.vmap(chunk, in_axes=(0, args_axes, 0))(state, args, settings)

    @jax.jit
    def progress(state):
        # the host loop's report, compiled with the rest: eager jax ops here would compile op by op on the first
        # call of every shape (0.2 s counted as solve time, whatever the size)
        pg = jax.vmap(lambda x, g: _projected_gradient(x, g, bound))(state.x, state.g)
        return jnp.sum(state.status == RUNNING), jnp.max(state.f), jnp.max(jax.vmap(_rel)(pg, state.f))

    return start, advance, progress, unravel, {}


def minimise(
    fun: Callable[[Any, Any], jax.Array],
    params0: Any,
    args: Any = None,
    *,
    args_axes: Any = None,
    options: SolverOptions = SolverOptions(),
    log: Callable[[str], None] | None = None,
    nonnegative: Any = None,
    element_options: Sequence[SolverOptions] | None = None,
) -> Solution:
    """Minimise ``fun(params, args)`` independently for every element of the leading batch axis of ``params0``.

    ``args_axes`` follows ``jax.vmap``'s ``in_axes`` for ``args`` (``None``: shared by all elements, ``0``: batched;
    or a pytree of those). Progress (step, worst relative gradient, number still running) goes to ``log``
    (default: stderr when ``options.progress``). Returns a :class:`Solution` whose arrays are numpy.

    ``nonnegative``: bounds ``params >= 0`` on some leaves, as a pytree prefix of one element's params with bool
    leaves (e.g. ``{"W": False, "H": True}``). The solver is then a projected Newton method (Bertsekas, "Projected
    Newton methods for optimization problems with simple constraints", SIAM J. Control Optim. 1982): the start is
    projected, every trial point is projected, variables at the bound that the gradient pushes down take gradient
    steps and the others a (saddle-free) Newton step on the reduced Hessian, which converges quadratically on the
    free variables. Convergence, ``grad_norm`` and ``rel_grad_norm`` refer to the projected gradient
    ``x - P(x - grad f)`` (zero exactly at a KKT point); the curvature test to the free variables. The L-BFGS
    phase (which knows no bounds) runs on the squares ``x = y * y`` of the bound variables.

    ``element_options``: one SolverOptions per batch element, for a batch that joins several problems whose
    tolerances differ (``ufm.algorithms.batched.minimise_together``). Only their TRACED_SETTINGS may differ from
    ``options`` (they are data of the compiled programs, mapped with the batch); ``options`` gives the rest, and
    its ``rtol`` is the returned Solution's.
    """
    require_float64("ufm.solver.minimise")
    if log is None:
        log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if options.progress else (lambda msg: None)
    example = jax.tree.map(lambda a: a[0], params0)
    leaves, treedef = jax.tree.flatten(example)
    n_vars = sum(int(np.size(leaf)) for leaf in leaves)
    batch = int(jax.tree.leaves(params0)[0].shape[0])
    if element_options is not None:
        element_options = list(element_options)
        if len(element_options) != batch:
            raise ValueError(f"element_options: {len(element_options)} options for a batch of {batch} elements")
        distinct = {id(e): e for e in element_options}.values()  # a joint batch repeats each problem's options
        if any(static_options(e) != static_options(options) for e in distinct):
            raise ValueError("element_options may differ from options in their TRACED_SETTINGS only")
    budget = memory_budget_bytes() if options.max_memory_bytes is None else int(options.max_memory_bytes)
    algebra = linear_algebra(options, n_vars, budget)
    per_chunk = max(1, budget // element_bytes(n_vars, options, algebra))
    if batch > per_chunk:
        log(f"[{options.label}] {batch} elements in chunks of {per_chunk} (memory budget {budget / 2**30:.1f} GiB)")
        return _in_chunks(fun, params0, args, args_axes, options, log, nonnegative, per_chunk, element_options)
    x0 = jax.vmap(lambda p: ravel_pytree(p)[0])(params0)
    bound_key = None
    if nonnegative is not None:
        if options.newton_system is not None:
            raise ValueError("nonnegative bounds need the solver's own linear algebra, not a newton_system")
        mask = jax.tree.map(
            lambda b, sub: jax.tree.map(lambda leaf: np.full(np.shape(leaf), bool(b)), sub), nonnegative, example
        )
        bound_key = np.asarray(ravel_pytree(mask)[0], dtype=bool).tobytes()
    settings = _traced_settings(options, batch, element_options)
    devices = jax.local_devices()[:batch]
    if options.shard_batch and len(devices) > 1:
        parts = _shard_batch(x0, args, args_axes, settings, devices)
    else:
        devices, parts = [None], [(x0, args, settings)]
    start, advance, progress, unravel, executables = _solver_functions(
        fun,
        static_options(options),
        algebra,
        treedef,
        tuple((np.shape(l), _dtype(l)) for l in leaves),
        args_axes,
        None,
        bound_key,
    )

    # Compiled once per (objective, options, shapes, device): sweeps over values of the same shapes reuse it.
    # Compilation is explicit so that compilation and solve times are reported separately.
    t0 = time.perf_counter()
    compiled = [
        _executables(start, advance, progress, executables, x, a, e, device)
        for (x, a, e), device in zip(parts, devices)
    ]
    compile_seconds = time.perf_counter() - t0
    # The compiled programs' own memory accounting (arguments, outputs and XLA's temporaries), read before
    # anything runs: the per-element estimate above chooses the chunks, this is what the programs will take.
    needed = sum(max(compiled_bytes(c) for c in programs[:2]) for programs in compiled)
    if needed > budget:
        if batch > 1:
            log(
                f"[{options.label}] compiled solver needs {_size(needed)} for {batch} elements, over the "
                f"{_size(budget)} budget: fewer elements at once"
            )
            return _in_chunks(
                fun,
                params0,
                args,
                args_axes,
                options,
                log,
                nonnegative,
                max(1, min(batch - 1, batch * budget // needed)),
                element_options,
            )
        raise MemoryBudgetExceeded(needed, budget, n_vars)
    # One device's program at a time on the CPU platform (see the module docstring: concurrent host devices can
    # deadlock in jaxlib's LAPACK kernels); elsewhere every device's program is dispatched before waiting.
    serial = devices[0] is None or devices[0].platform == "cpu"

    def run(calls):
        if serial:
            return [jax.block_until_ready(call()) for call in calls]
        return jax.block_until_ready([call() for call in calls])

    t0 = time.perf_counter()
    states = run([functools.partial(c[0], x, a, e) for c, (x, a, e) in zip(compiled, parts)])
    solve_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    done_steps = 0
    while True:
        numbers = np.array([[np.asarray(v) for v in c[2](s)] for c, s in zip(compiled, states)])
        running_each = numbers[:, 0].astype(np.int64)
        running, max_loss, max_rel = int(np.sum(running_each)), np.max(numbers[:, 1]), np.max(numbers[:, 2])
        log(
            f"[{options.label}] step {done_steps:4d}  running {running:6d}/{batch}  "
            f"max loss {float(max_loss):.6e}  max rel grad {float(max_rel):.3e}"
        )
        if running == 0:
            break
        live = np.flatnonzero(running_each)  # a slice whose elements have all finished is left as it is
        calls = [functools.partial(compiled[k][1], states[k], parts[k][1], parts[k][2]) for k in live]
        for k, s in zip(live, run(calls)):
            states[k] = s
        done_steps += options.steps_per_report
    solve_seconds += time.perf_counter() - t0

    if len(states) == 1:
        state = states[0]
        devices = sorted(state.x.devices(), key=lambda d: d.id)
    else:  # gathered on the host, in batch order
        state = jax.tree.map(lambda *a: np.concatenate([np.asarray(v) for v in a]), *states)
    f = np.asarray(state.f)
    g = np.asarray(state.g)
    if bound_key is not None:
        bound = np.frombuffer(bound_key, dtype=bool)
        g = np.where(bound, np.minimum(np.asarray(state.x), g), g)  # the projected gradient
    grad_norm = np.linalg.norm(g, axis=-1)
    return Solution(
        params=jax.tree.map(np.asarray, jax.vmap(unravel)(state.x)),
        loss=f,
        grad_norm=grad_norm,
        rel_grad_norm=grad_norm / np.maximum(1.0, np.abs(f)),
        steps=np.asarray(state.steps),
        status=np.asarray(state.status),
        compile_seconds=compile_seconds,
        solve_seconds=solve_seconds,
        rtol=options.rtol,
        min_eigenvalue=np.asarray(state.min_eig),
        linear_algebra=algebra,
        devices=tuple(str(d) for d in devices),
    )


def extreme_eigenvalues(fun, params, args=None, options: SolverOptions = SolverOptions(linear_solver="eigh")):
    """``(smallest, largest |.|)`` eigenvalue of the Hessian of ``fun(params, args)`` at one (unbatched) point, as
    the solver itself measures curvature there: the dense spectrum where :func:`linear_algebra` would form the
    Hessian, a Lanczos estimate (``options.lanczos_steps``; the smallest Ritz value bounds the smallest
    eigenvalue from above) otherwise. For reports on a finished solve (e.g. whether a stalled point is a
    minimum)."""
    n_vars = sum(int(np.size(a)) for a in jax.tree.leaves(params))
    if linear_algebra(options, n_vars) in (DENSE_EIGH, DENSE_CHOLESKY):
        w = np.asarray(_dense_spectrum(fun, params, args))
        return float(w[0]), float(np.max(np.abs(w)))
    low, _, top = _lanczos_at(fun, params, args, options.lanczos_steps)
    return float(low), float(top)


@functools.partial(jax.jit, static_argnums=0)
def _dense_spectrum(fun, params, args):
    x, unravel = ravel_pytree(params)
    return jnp.linalg.eigvalsh(jax.hessian(lambda y: fun(unravel(y), args))(x))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _lanczos_at(fun, params, args, steps):
    x, unravel = ravel_pytree(params)
    _, hvp = jax.linearize(jax.grad(lambda y: fun(unravel(y), args)), x)
    return _lanczos_extremes(hvp, x.size, steps, True)


def _in_chunks(
    fun, params0, args, args_axes, options, log, nonnegative, per_chunk: int, element_options=None
) -> Solution:
    """:func:`minimise` on ``per_chunk`` elements at a time: fewer elements at once, not an out-of-memory error.
    Equal chunks (the last padded with copies of its first element), so that one compiled executable serves all."""
    batch = int(jax.tree.leaves(params0)[0].shape[0])
    parts = []
    for lo in range(0, batch, per_chunk):
        index = np.arange(lo, lo + per_chunk)
        index = np.where(index < batch, index, lo)
        parts.append(
            (
                min(per_chunk, batch - lo),
                minimise(
                    fun,
                    jax.tree.map(lambda a: jnp.asarray(a)[index], params0),
                    _take(args, args_axes, index),
                    args_axes=args_axes,
                    options=options,
                    log=log,
                    nonnegative=nonnegative,
                    element_options=None if element_options is None else [element_options[i] for i in index],
                ),
            )
        )
    return _concatenate(parts)


def _take(args, args_axes, index):
    """The elements ``index`` of the batched leaves of ``args`` (``args_axes`` as for ``jax.vmap``)."""
    if args_axes is None:
        return args
    if isinstance(args_axes, int):
        return jax.tree.map(lambda a: jnp.take(jnp.asarray(a), index, axis=args_axes), args)
    return jax.tree.map(
        lambda axis, sub: sub if axis is None else _take(sub, axis, index), args_axes, args, is_leaf=lambda a: a is None
    )


def _concatenate(parts) -> Solution:
    """One :class:`Solution` from ``(count, solution)`` chunks (the first ``count`` elements of each)."""
    first = parts[0][1]
    cat = lambda get: np.concatenate([np.asarray(get(sol))[:k] for k, sol in parts])
    return dataclasses.replace(
        first,
        params=jax.tree.map(
            lambda *a: np.concatenate([x[:k] for x, (k, _) in zip(a, parts)]), *[sol.params for _, sol in parts]
        ),
        loss=cat(lambda x: x.loss),
        grad_norm=cat(lambda x: x.grad_norm),
        rel_grad_norm=cat(lambda x: x.rel_grad_norm),
        steps=cat(lambda x: x.steps),
        status=cat(lambda x: x.status),
        min_eigenvalue=cat(lambda x: x.min_eigenvalue),
        compile_seconds=sum(sol.compile_seconds for _, sol in parts),
        solve_seconds=sum(sol.solve_seconds for _, sol in parts),
    )


def element_bytes(n_vars: int, options: SolverOptions, algebra: str | None = None, tangent_bytes: int = 0) -> int:
    """Estimated peak bytes of one batch element: a few dozen vectors (iterate, gradients, line-search trials,
    CG's and the L-BFGS phase's 10 pairs), plus, by the :func:`linear_algebra` that runs, the dense Hessian's
    :func:`dense_bytes` and its forward-over-reverse tangents (one per variable, ``tangent_bytes`` each: the
    objective's intermediates of one evaluation), or the Lanczos basis and one linearisation (residuals and a
    tangent: three times ``tangent_bytes``)."""
    n_vars, tangent_bytes = int(n_vars), int(tangent_bytes)
    algebra = linear_algebra(options, n_vars) if algebra is None else algebra
    if algebra in (DENSE_EIGH, DENSE_CHOLESKY):
        extra = dense_bytes(n_vars) + n_vars * tangent_bytes
    else:
        extra = 3 * tangent_bytes + (options.lanczos_steps * n_vars * 8 if algebra == MATRIX_FREE_LANCZOS else 0)
    return 40 * n_vars * 8 + extra


def peak_bytes(n_vars: int, batch: int, options: SolverOptions, data_bytes: int = 0, tangent_bytes: int = 0) -> int:
    """Estimated peak memory (bytes) of :func:`minimise` for ``batch`` elements of ``n_vars`` float64 variables:
    the elements solved at once (all of them, or as many as the memory budget allows: :func:`minimise` solves a
    larger batch in chunks) times :func:`element_bytes`, plus ``data_bytes``, the objective's own data (shared by
    the batch) and its largest intermediate, counted twice (value and gradient passes)."""
    n_vars, batch = int(n_vars), int(batch)
    budget = memory_budget_bytes() if options.max_memory_bytes is None else int(options.max_memory_bytes)
    per_element = element_bytes(n_vars, options, tangent_bytes=tangent_bytes)
    at_once = min(batch, max(1, budget // per_element))
    return at_once * per_element + 2 * int(data_bytes)


class MemoryBudgetExceeded(MemoryError):
    """One element's compiled solver needs more memory than the budget allows (raised before anything runs)."""

    def __init__(self, needed: int, budget: int, n_vars: int):
        self.needed, self.budget, self.n_vars = int(needed), int(budget), int(n_vars)
        super().__init__(
            f"the compiled solver for one element of {n_vars} variables needs {_size(needed)}, more "
            f"than the {_size(budget)} memory budget"
        )


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def compiled_bytes(executable) -> int:
    """Peak bytes XLA accounts for one compiled executable: arguments, outputs and temporaries (less the outputs
    that alias arguments); 0 where the backend gives no accounting."""
    try:
        stats = executable.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):  # pragma: no cover - backend without accounting
        return 0
    if stats is None:  # pragma: no cover
        return 0
    return int(
        stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    )


def memory_budget_bytes() -> int:
    """Memory a run may use: half of the machine's physical memory (what the CLI refuses beyond)."""
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        total = 8 * 2**30
    return int(total // 2)


def best_element(solution: Solution, rtol: float = 1e-10) -> int:
    """The best restart of a batch: the lowest converged element (a minimum), unless an element that did not
    converge (a saddle, a step budget run out) is lower beyond ``rtol`` (relative): then that one, so that the
    caller grades, and fails, the lowest point found instead of certifying a worse one. With no converged element,
    the lowest finite one. Non-finite losses are never chosen while a finite one exists."""
    finite = np.where(np.isfinite(solution.loss), solution.loss, np.inf)
    lowest = int(np.argmin(finite))
    converged = np.where(solution.converged, finite, np.inf)
    if not np.isfinite(converged).any():
        return lowest
    lowest_converged = int(np.argmin(converged))
    if converged[lowest_converged] <= finite[lowest] + rtol * max(1.0, abs(finite[lowest])):
        return lowest_converged
    return lowest
