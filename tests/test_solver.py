"""The shared solver on problems with known minimisers (independent of any family's theory; one regression case
uses the square-loss objective, where the failure was seen)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.objectives import square_loss as objective
from ufm.problems.square_loss import SquareLossProblem
from ufm.solver import CONVERGED, MAX_STEPS, NONFINITE, SADDLE, Solution, SolverOptions, best_element, minimise


def quadratic(x, args):
    A, b = args
    return 0.5 * x @ A @ x - b @ x


@pytest.mark.parametrize("linear_solver", ["cholesky", "eigh", "cg"])
def test_batched_quadratics_reach_exact_solution(linear_solver):
    rng = np.random.default_rng(0)
    n, d = 6, 5
    M = rng.standard_normal((n, d, d))
    A = M @ np.transpose(M, (0, 2, 1)) + np.eye(d)
    b = rng.standard_normal((n, d))
    sol = minimise(
        quadratic,
        jnp.zeros((n, d)),
        (jnp.asarray(A), jnp.asarray(b)),
        args_axes=0,
        options=SolverOptions(linear_solver=linear_solver, progress=False),
    )
    expected = np.linalg.solve(A, b[..., None])[..., 0]
    assert np.all(sol.status == CONVERGED)
    # cond(A) is at most a few hundred here: 1e-12 relative is well above rounding, far below any real error.
    assert np.max(np.abs(np.asarray(sol.params) - expected)) <= 1e-12 * np.max(np.abs(expected))


def test_rosenbrock_with_and_without_lbfgs_phase():
    def rosen(x, _):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    x0 = jnp.asarray([[-1.2, 1.0, 0.5], [0.0, 0.0, 0.0]])
    for qn in (0, 50):
        sol = minimise(
            rosen,
            x0,
            None,
            options=SolverOptions(linear_solver="eigh", damping=1.0, quasi_newton_steps=qn, progress=False),
        )
        assert np.all(sol.status == CONVERGED)
        # Rosenbrock's minimiser is (1, 1, 1), Hessian condition ~2500: 1e-12 is a few hundred ulps.
        np.testing.assert_allclose(np.asarray(sol.params), 1.0, atol=1e-12)


def test_pytree_params_and_shared_args():
    def fn(p, args):
        return jnp.sum((p["a"] - args) ** 2) + jnp.sum((p["b"] + 1.0) ** 2)

    p0 = {"a": jnp.zeros((3, 2)), "b": jnp.ones((3, 4))}
    sol = minimise(fn, p0, jnp.asarray([1.0, 2.0]), options=SolverOptions(progress=False))
    np.testing.assert_allclose(np.asarray(sol.params["a"]), [[1.0, 2.0]] * 3, atol=1e-14)
    np.testing.assert_allclose(np.asarray(sol.params["b"]), -1.0, atol=1e-14)


def test_unbounded_problem_is_reported_not_converged():
    # min -log(1 + x^2)-like drift: f = -x has no minimiser; the solver must say so.
    sol = minimise(
        lambda x, _: -jnp.sum(x) + 0.0 * jnp.sum(x**2),
        jnp.zeros((2, 1)),
        None,
        options=SolverOptions(linear_solver="eigh", damping=1.0, max_steps=10, progress=False),
    )
    assert not np.any(sol.converged)
    assert set(sol.status.tolist()) <= {MAX_STEPS, NONFINITE, 3}
    assert sol.report()["all_converged"] is False and sol.report()["failures"]


def test_nan_objective_is_reported_nonfinite():
    sol = minimise(lambda x, _: jnp.sum(jnp.log(x)), jnp.asarray([[-1.0]]), None, options=SolverOptions(progress=False))
    assert sol.status.tolist() == [NONFINITE]


def test_vmap_equals_loop():
    """A batched solve gives the same answers as solving each element alone."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 3, 3))
    A = A @ np.transpose(A, (0, 2, 1)) + np.eye(3)
    b = rng.standard_normal((4, 3))
    batch = minimise(
        quadratic,
        jnp.zeros((4, 3)),
        (jnp.asarray(A), jnp.asarray(b)),
        args_axes=0,
        options=SolverOptions(progress=False),
    )
    for i in range(4):
        one = minimise(
            quadratic,
            jnp.zeros((1, 3)),
            (jnp.asarray(A[i : i + 1]), jnp.asarray(b[i : i + 1])),
            args_axes=0,
            options=SolverOptions(progress=False),
        )
        np.testing.assert_allclose(np.asarray(one.params)[0], np.asarray(batch.params)[i], rtol=1e-14, atol=1e-15)


def test_settings_that_differ_only_in_value_share_one_compilation():
    """Tolerances and step budgets (``ufm.solver.TRACED_SETTINGS``) are data of the compiled programs: solves that
    differ only in them compile once, and each still obeys its own settings (a budget of 1 Newton step ends
    MAX_STEPS; the looser rtol stops earlier, at a larger gradient)."""
    from ufm.solver import _solver_functions

    rosenbrock = lambda x, _: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
    start = jnp.asarray([[-1.2, 1.0]])
    base = SolverOptions(progress=False, linear_solver="eigh", damping=1.0)
    variants = [
        base,
        dataclasses.replace(base, rtol=1e-6, xtol=1e-5, damping=0.5),
        dataclasses.replace(base, max_steps=1),
    ]
    before = _solver_functions.cache_info().currsize
    solutions = [minimise(rosenbrock, start, options=opts) for opts in variants]
    assert _solver_functions.cache_info().currsize == before + 1
    strict, loose, one_step = solutions
    assert strict.status.tolist() == loose.status.tolist() == [CONVERGED] and one_step.status.tolist() == [MAX_STEPS]
    assert strict.rel_grad_norm[0] <= 1e-12 < loose.rel_grad_norm[0] <= 1e-6 and one_step.steps.tolist() == [1]


def test_polish_tolerates_evaluation_noise_of_large_sums():
    """Two evaluations of a large sum at nearly the same point can differ by far more than a few eps|f| (a
    different fusion or summation order under vmap: 83 eps was seen on a 1e6-variable joint problem). Here that
    noise is planted: f reads 1000 eps|f| higher anywhere but at the start, while its gradient and Hessian are
    exact. The step from the start only halves the gradient; the line search must take it (the noise allowance
    grows like sqrt(#variables), here 64 * 100 eps), not backtrack to a stall."""
    n = 10_000
    rng = np.random.default_rng(0)
    target = jnp.asarray(rng.standard_normal(n))
    x0 = target + 1e-10 * jnp.asarray(rng.standard_normal(n))  # relative gradient ~1e-10, above rtol

    def noisy(x, start):
        f = 0.5 * jnp.sum((x - target) ** 2) + 1.0
        moved = jnp.any(x != start)
        return f + jax.lax.stop_gradient(jnp.where(moved, 1000 * np.finfo(float).eps, 0.0))

    sol = minimise(noisy, x0[None], x0, options=SolverOptions(linear_solver="cg", rtol=1e-13, progress=False))
    assert sol.status[0] == CONVERGED and sol.rel_grad_norm[0] <= 1e-13


def test_lbfgs_phase_never_ends_above_its_start():
    """optax's zoom line search still steps when it fails; on ReLU kinks such steps compounded (f 2.35 -> 1e24 on
    restart 5 below). The phase must return its lowest iterate: bounded by the start's objective, exactly."""
    problem = SquareLossProblem(C=3, n=2, d=6, layers=2, activation="relu", bias="free", restarts=6)
    parts = [
        objective.balanced_orthogonal_params(problem, 3, problem.seed),
        objective.gaussian_params(problem, 3, problem.seed),
    ]
    start = jax.tree.map(lambda *a: jnp.concatenate(a), *parts)
    data = objective.objective_data(problem)
    f0 = np.asarray(jax.vmap(objective.square_loss, in_axes=(0, None))(start, data))
    sol = minimise(objective.square_loss, start, data, options=dataclasses.replace(objective.SOLVER, max_steps=0))
    assert np.all(sol.loss <= f0)


def double_well(x, _):
    """x^2 + (y^2 - 1)^2: minima (0, +-1) at f = 0, a saddle at the origin (Hessian diag(2, -4)). On the line y = 0
    the gradient has no y component, so Newton from any (x, 0) converges to the saddle unless it uses curvature."""
    return x[0] ** 2 + (x[1] ** 2 - 1.0) ** 2


# Dense (the Hessian's spectrum) and matrix-free (CG, with a Lanczos estimate of the smallest eigenvalue at
# tolerance) nonconvex modes must both tell a saddle from a minimum.
CURVATURE = pytest.mark.parametrize("dense_max_vars", [1500, 0], ids=["dense", "matrix-free"])


@CURVATURE
def test_saddle_is_escaped_not_reported_converged(dense_max_vars):
    x0 = jnp.asarray([[0.5, 0.0], [0.0, 0.0], [0.3, 0.2]])  # on the invariant line, at the saddle itself, generic
    sol = minimise(
        double_well,
        x0,
        options=SolverOptions(linear_solver="eigh", damping=1.0, progress=False, dense_max_vars=dense_max_vars),
    )
    assert sol.linear_algebra == (
        "dense eigh (saddle-free)" if dense_max_vars else "matrix-free CG + Lanczos curvature test"
    )
    assert np.all(sol.status == CONVERGED), sol.status
    # every element reaches a minimum: f at rounding level, |y| = 1 (quadratic convergence: 1e-12 is loose)
    assert np.max(sol.loss) <= 1e-24 and np.allclose(np.abs(np.asarray(sol.params)[:, 1]), 1.0, atol=1e-12, rtol=0)
    # the curvature there is positive (eigenvalues 2 and 8)
    assert np.all(sol.min_eigenvalue > 1.0)


@CURVATURE
def test_unescapable_saddle_is_reported_saddle(dense_max_vars):
    # x^2 - y^2 + 4|y| with the derivative of |y| taken as sign(y) (0 at the kink): at the origin the gradient is 0
    # and the Hessian reads diag(2, -2), yet every step along y increases f (the kink dominates). The solver must
    # not call it a minimum, and the escape cannot succeed: SADDLE.
    @jax.custom_jvp
    def kink(y):
        return 4.0 * jnp.abs(y)

    kink.defjvp(lambda primals, tangents: (kink(primals[0]), 4.0 * jnp.sign(primals[0]) * tangents[0]))

    def kinked(x, _):
        return x[0] ** 2 - x[1] ** 2 + kink(x[1])

    sol = minimise(
        kinked,
        jnp.asarray([[0.5, 0.0]]),
        options=SolverOptions(linear_solver="eigh", damping=1.0, progress=False, dense_max_vars=dense_max_vars),
    )
    assert sol.status[0] == SADDLE and not sol.converged[0]
    assert sol.min_eigenvalue[0] == pytest.approx(-2.0, rel=1e-12)
    assert "saddle" in "".join(sol.report()["failures"])


def _solution(loss, status):
    n = len(loss)
    return Solution(
        params=None,
        loss=np.asarray(loss, float),
        grad_norm=np.zeros(n),
        rel_grad_norm=np.zeros(n),
        steps=np.zeros(n, int),
        status=np.asarray(status),
        compile_seconds=0.0,
        solve_seconds=0.0,
        rtol=1e-12,
    )


def test_best_element_rule():
    # lowest converged; a saddle above it is never chosen
    assert best_element(_solution([1.0, 0.5, 0.7], [SADDLE, CONVERGED, CONVERGED])) == 1
    assert best_element(_solution([0.3, 0.5, 0.7], [SADDLE, CONVERGED, CONVERGED])) == 0  # lower beyond rounding
    assert best_element(_solution([0.5 - 1e-14, 0.5], [MAX_STEPS, CONVERGED])) == 1  # equal to rounding
    assert best_element(_solution([np.nan, 2.0], [NONFINITE, MAX_STEPS])) == 1


@CURVATURE
def test_small_step_into_tolerance_on_negative_curvature_is_not_converged(dense_max_vars):
    # From (1e-10, 0) on the double well's invariant line one Newton step lands within tolerance of the saddle;
    # the Hessian formed for that step already shows curvature -4 (matrix-free: the point is tested at tolerance
    # before it can be called converged), so the point must not be called converged.
    sol = minimise(
        double_well,
        jnp.asarray([[1e-10, 0.0]]),
        options=SolverOptions(linear_solver="eigh", damping=1.0, progress=False, dense_max_vars=dense_max_vars),
    )
    assert sol.status[0] == CONVERGED and abs(abs(float(sol.params[0, 1])) - 1.0) <= 1e-12


def test_lanczos_finds_the_smallest_eigenvalue_of_a_large_saddle():
    """n = 200 with one negative eigenvalue -1e-3 among [1, 10]: clearly negative (below -1e-6 max|eig|); the
    matrix-free mode must escape to a minimum, the dense mode gives the reference answer."""
    rng = np.random.default_rng(1)
    n = 200
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = np.concatenate([[-1e-3], rng.uniform(1.0, 10.0, n - 1)])
    A = jnp.asarray((Q * eig) @ Q.T)
    v = jnp.asarray(Q[:, 0])

    def quartic_saddle(x, _):  # the quadratic's negative direction capped by a quartic: minima at x = +-c v
        return 0.5 * x @ A @ x + 0.25 * (x @ v) ** 4

    sols = {
        k: minimise(
            quartic_saddle,
            jnp.zeros((1, n)),
            options=SolverOptions(linear_solver="eigh", damping=1.0, progress=False, dense_max_vars=k),
        )
        for k in (1500, 0)
    }
    for sol in sols.values():
        assert sol.converged[0] and abs(abs(float(np.asarray(sol.params[0]) @ Q[:, 0])) - np.sqrt(1e-3)) <= 1e-9
        assert sol.loss[0] == pytest.approx(-0.25 * 1e-6, rel=1e-9)


def test_batch_is_solved_in_chunks_within_the_memory_budget():
    """A budget below the whole batch's estimate: chunks of the same size, one compilation, the same answer."""
    rng = np.random.default_rng(0)
    n, d = 7, 5
    M = rng.standard_normal((n, d, d))
    A = M @ np.transpose(M, (0, 2, 1)) + np.eye(d)
    b = rng.standard_normal((n, d))
    args = (jnp.asarray(A), jnp.asarray(b))
    whole = minimise(quadratic, jnp.zeros((n, d)), args, args_axes=0, options=SolverOptions(progress=False))
    from ufm.solver import element_bytes

    options = SolverOptions(progress=False, max_memory_bytes=3 * element_bytes(d, SolverOptions()))
    lines = []
    chunked = minimise(quadratic, jnp.zeros((n, d)), args, args_axes=0, options=options, log=lines.append)
    assert any("in chunks of 3" in line for line in lines)
    np.testing.assert_array_equal(np.asarray(chunked.params), np.asarray(whole.params))
    np.testing.assert_array_equal(chunked.status, whole.status)
    assert chunked.loss.shape == (n,)


def test_compiled_memory_accounting_chunks_the_batch_or_refuses():
    """The compiled programs' own memory accounting (XLA's arguments, outputs and temporaries) is read before
    anything runs. Per-element data the element estimate does not count (a 300 x 300 matrix, 0.7 MB, per element):
    over the budget the batch is solved fewer elements at once, with the same answer; a budget one element cannot
    fit raises MemoryBudgetExceeded, naming what it needs."""
    from ufm.solver import MemoryBudgetExceeded

    rng = np.random.default_rng(0)
    n, d = 4, 300
    M = rng.standard_normal((n, d, d))
    args = (jnp.asarray(M @ np.transpose(M, (0, 2, 1)) + np.eye(d)), jnp.asarray(rng.standard_normal((n, d))))
    lines = []
    chunked = minimise(
        quadratic,
        jnp.zeros((n, d)),
        args,
        args_axes=0,
        log=lines.append,
        options=SolverOptions(progress=False, max_memory_bytes=6 * 10**6),
    )
    assert any("fewer elements at once" in line for line in lines), lines
    # the minimisers A^-1 b, independently: well conditioned (A = M M^T + I), so to 1e-9 relative
    expected = np.linalg.solve(np.asarray(args[0]), np.asarray(args[1])[..., None])[..., 0]
    np.testing.assert_allclose(np.asarray(chunked.params), expected, rtol=1e-9, atol=1e-12)
    assert (chunked.status == CONVERGED).all()
    with pytest.raises(MemoryBudgetExceeded, match="300 variables needs") as err:
        minimise(
            quadratic,
            jnp.zeros((n, d)),
            args,
            args_axes=0,
            options=SolverOptions(progress=False, max_memory_bytes=10**5),
        )
    assert err.value.needed > d * d * 8 > err.value.budget


def test_linear_algebra_is_chosen_by_size_and_memory():
    from ufm.solver import dense_bytes, linear_algebra

    eigh = SolverOptions(linear_solver="eigh")
    assert linear_algebra(eigh, 500) == "dense eigh (saddle-free)"
    assert linear_algebra(eigh, 501) == "matrix-free CG + Lanczos curvature test"
    assert linear_algebra(eigh, 1000, budget_bytes=dense_bytes(1000) - 1) == "matrix-free CG + Lanczos curvature test"
    assert linear_algebra(SolverOptions(), 10**6) == "matrix-free CG"
    assert linear_algebra(SolverOptions(linear_solver="cg"), 2) == "matrix-free CG"


def test_extreme_eigenvalues_dense_and_lanczos_agree():
    from ufm.solver import extreme_eigenvalues

    for dense_max_vars in (1500, 0):
        low, top = extreme_eigenvalues(
            double_well, jnp.zeros(2), None, SolverOptions(linear_solver="eigh", dense_max_vars=dense_max_vars)
        )
        assert low == pytest.approx(-4.0, rel=1e-12) and top == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("linear_solver, dense_max_vars", [("cholesky", 1500), ("eigh", 1500), ("eigh", 0)])
def test_nonnegative_bounds_reach_the_nnls_solution(linear_solver, dense_max_vars):
    """Projected Newton against scipy's active-set NNLS (Lawson-Hanson), an independent method: 30 x 20, a third
    of the solution's entries at the bound. The solution is unique (A has full column rank) and its conditioning
    is moderate, so both agree to ~1e-15; 1e-12 allows for the rounding of either."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((30, 20)), rng.standard_normal(30)
    expected, _ = nnls(A, b)
    assert 3 <= np.sum(expected == 0) <= 17  # the bounds are active somewhere, not everywhere

    def least_squares(params, args):
        return 0.5 * jnp.sum((args[0] @ params["x"] - args[1]) ** 2) + 0.5 * jnp.sum(params["free"] ** 2)

    start = {"x": jnp.asarray(rng.standard_normal((3, 20))), "free": jnp.asarray(rng.standard_normal((3, 2)))}
    sol = minimise(
        least_squares,
        start,
        (jnp.asarray(A), jnp.asarray(b)),
        nonnegative={"x": True, "free": False},
        options=SolverOptions(linear_solver=linear_solver, damping=1.0, progress=False, dense_max_vars=dense_max_vars),
    )
    assert np.all(sol.converged), sol.status
    assert np.max(np.abs(np.asarray(sol.params["x"]) - expected)) <= 1e-12
    assert np.max(np.abs(np.asarray(sol.params["free"]))) <= 1e-12 and np.all(np.asarray(sol.params["x"]) >= 0)
    assert np.max(sol.steps) <= 30  # quadratic once the active set is found (measured 9-12)
