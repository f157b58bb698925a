"""Several problems in one solve (``ufm.algorithms.batched``, ``ufm.driver.run_batch``): each problem's part of a
joint solve equals its solve alone, with its own tolerances and step budget; shared data stay shared; what cannot
be joined is refused or solved alone."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm import driver
from ufm.algorithms.batched import (
    SolveRequest,
    drive,
    drive_together,
    join,
    join_key,
    minimise_together,
    solve,
)
from ufm.families import square_loss
from ufm.solver import CONVERGED, MAX_STEPS, SolverOptions, element_bytes, minimise


def scaled_rosenbrock(x, args):
    """(a - x0)^2 + b (x1 - x0^2)^2 + c |x|^2 / 2: ``a`` shared by the problems, ``b`` and ``c`` their own."""
    a, b, c = args
    return (a - x[0]) ** 2 + b * (x[1] - x[0] ** 2) ** 2 + 0.5 * c * jnp.sum(x * x)


BASE = SolverOptions(progress=False, linear_solver="eigh", damping=1.0)


def request(b: float, c: float, starts, options: SolverOptions) -> SolveRequest:
    args = (jnp.asarray(1.0), jnp.asarray(b), jnp.asarray(c))
    return SolveRequest(scaled_rosenbrock, jnp.asarray(starts), args, options)


REQUESTS = [
    request(100.0, 0.0, [[-1.2, 1.0], [0.5, 0.5]], BASE),
    request(10.0, 1e-3, [[2.0, -1.0]], dataclasses.replace(BASE, rtol=1e-6, xtol=1e-5)),
    request(1.0, 0.1, [[-3.0, 3.0], [0.0, 0.0]], dataclasses.replace(BASE, max_steps=1)),
]


def test_each_part_of_a_joint_solve_equals_its_solve_alone():
    """Elements are independent under the solver's vmap: the same steps, statuses and points as alone (to 1e-14:
    the last bits may differ with the batch size), and each problem keeps its own tolerance and step budget."""
    parts = minimise_together(REQUESTS)
    assert [part.loss.shape for part in parts] == [(2,), (1,), (2,)]
    for part, req in zip(parts, REQUESTS):
        one = solve(req)
        assert part.status.tolist() == one.status.tolist() and part.steps.tolist() == one.steps.tolist()
        assert part.rtol == req.options.rtol
        np.testing.assert_allclose(np.asarray(part.params), np.asarray(one.params), rtol=1e-14, atol=1e-15)
    strict, loose, one_step = parts
    assert strict.status.tolist() == [CONVERGED, CONVERGED] and np.all(strict.rel_grad_norm <= 1e-12)
    assert loose.status.tolist() == [CONVERGED] and 1e-12 < loose.rel_grad_norm[0] <= 1e-6
    assert one_step.status.tolist() == [MAX_STEPS, MAX_STEPS] and one_step.steps.tolist() == [1, 1]


def test_shared_data_stay_shared_and_the_rest_is_batched_per_element():
    params0, args, axes, counts = join(REQUESTS[:2])
    assert counts == [2, 1] and params0.shape == (3, 2)
    assert axes == (None, 0, 0) and np.shape(args[0]) == ()  # a = 1 in both: one copy
    np.testing.assert_array_equal(args[1], [100.0, 100.0, 10.0])  # b repeated for each start of its problem


def test_what_cannot_share_one_program_is_refused():
    first = REQUESTS[0]
    other = first._replace(fun=lambda x, args: jnp.sum(x * x))
    cg = first._replace(options=dataclasses.replace(BASE, linear_solver="cg"))
    with pytest.raises(ValueError, match="share their objective"):
        join([first, other])
    with pytest.raises(ValueError, match="TRACED_SETTINGS only"):
        minimise_together([first, cg])
    # drive_together never joins them: each is solved alone, as drive would solve it
    assert len({join_key(first), join_key(other), join_key(cg)}) == 3


def test_a_joint_batch_over_the_memory_budget_is_solved_in_chunks_with_each_element_s_settings():
    # too small for the five elements' compiled programs (whose fixed overhead dominates at 2 variables), enough
    # for four: the batch is cut into chunks, each element keeping its own settings
    budget = dataclasses.replace(BASE, max_memory_bytes=6 * element_bytes(2, BASE, "eigh"))
    lines: list[str] = []
    params0, args, axes, counts = join(REQUESTS)
    chunked = minimise(
        scaled_rosenbrock,
        params0,
        args,
        args_axes=axes,
        options=budget,
        log=lines.append,
        element_options=[r.options for r, k in zip(REQUESTS, counts) for _ in range(k)],
    )
    assert any("fewer elements at once" in line for line in lines)
    whole = minimise_together(REQUESTS)
    assert chunked.status.tolist() == [s for part in whole for s in part.status.tolist()]
    assert chunked.steps.tolist() == [s for part in whole for s in part.steps.tolist()]


# mse, C = 3, n = 5, lambda_W = 0.1 (as tests/test_sweep.py): rho = 0.47 and 1.16 (W = H = 0 at the second)
def test_run_batch_joins_problems_of_one_shape_and_reports_each_as_run_does():
    problems = [
        ufm.SquareLossProblem(C=3, lambda_W=0.1, lambda_H=0.05),
        ufm.SquareLossProblem(C=2, lambda_W=0.1, lambda_H=0.05),  # another shape: solved alone
        ufm.SquareLossProblem(C=3, lambda_W=0.1, lambda_H=0.3),
    ]
    reports = driver.run_batch(square_loss.FAMILY, problems, progress=False)
    assert [r.convergence.get("problems_in_solve") for r in reports] == [2, None, 2]
    for problem, report in zip(problems, reports):
        single = ufm.run(problem)
        assert report.passed and single.passed
        assert [str(c.verdict) for c in report.checks] == [str(c.verdict) for c in single.checks]
        # the objective to rounding (the batch size may change the last bits of batched products)
        assert report.numbers["objective"] == pytest.approx(single.numbers["objective"], rel=1e-13, abs=1e-15)
    assert reports[2].numbers["zero_solution"] and not reports[0].numbers["zero_solution"]


def two_passes(req: SolveRequest):
    """Steps of a solve in two calls: the request, then from its end points with a tenfold tighter tolerance."""
    first = yield req
    options = dataclasses.replace(req.options, rtol=req.options.rtol / 10)
    second = yield req._replace(params0=jnp.asarray(first.params), options=options)
    return first.steps.tolist(), second


def test_steps_in_lockstep_join_each_round_and_equal_their_drive_alone():
    requests = REQUESTS[:2] + [REQUESTS[0]._replace(fun=lambda x, a: scaled_rosenbrock(x, a) + 0.0)]
    results, joined = drive_together([two_passes(r) for r in requests])
    assert joined == [2, 2, 1]  # the third has an objective of its own: solved alone, each round
    for (steps, second), req in zip(results, requests):
        alone_steps, alone_second = drive(two_passes(req))
        assert steps == alone_steps and second.status.tolist() == alone_second.status.tolist()
        assert second.rtol == req.options.rtol / 10
        np.testing.assert_allclose(np.asarray(second.params), np.asarray(alone_second.params), rtol=1e-14, atol=1e-15)


# Two problems of one shape per family, tiny sizes: their solver calls joined, round by round (the augmented
# Lagrangian's inner solves, the continuation's stages, the loss-relative passes, mixup's three solves)
PAIRS = {
    "mixup": [ufm.MixupProblem(C=3, n_lambdas=3, mu=mu) for mu in (1e-2, 1e-1)],
    "mixup-deep": [
        ufm.MixupDeepProblem(C=2, d0=3, d1=2, n_nodes=1, restarts=1, eval_lambdas=1, classifier="fixed", mu=mu)
        for mu in (1e-2, 2e-2)
    ],
    "mixup-joint": [ufm.MixupJointProblem(C=3, n_nodes=4, mu=lam) for lam in (0.05, 0.1)],
    "nonneg-ufm": [ufm.NonnegProblem(C=3, n=2, restarts=2, lambda_H=lam) for lam in (1e-3, 1e-2)],
    "md": [ufm.MemorizationDilationProblem(C=2, n=4, d=2, restarts=1, r=r) for r in (1.0, 0.5)],
    "ce": [ufm.CEProblem(C=3, n=2, restarts=2, lambda_H=lam) for lam in (1e-3, 1e-2)],
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_every_family_s_joint_solve_passes_its_checks(name):
    """``ufm.run_batch`` joins the pair's solver calls (``problems_in_solve`` 2), and each joint report passes
    every check against the theory, as its single run does (the single runs of these families are tested in their
    own files; here the joint path alone, to keep the suite's time)."""
    for report in ufm.run_batch(PAIRS[name]):
        assert report.convergence["problems_in_solve"] == 2
        assert report.passed, [(c.name, c.value, c.tol) for c in report.failed_checks]
