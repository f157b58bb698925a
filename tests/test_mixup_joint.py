"""Issue 9: mixup with the classifier learned jointly. Expected values come from closed forms (Theorem 3.1 via
ufm.theory.mixup), from scipy (Beta moments, direct minimisation) or from the problem's symmetry, never from stored
solver output. Joint solves use C = 3 only (each costs a compilation of ~10 s on 2 cores)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from inprocess import assert_refused, run_main
from jax.test_util import check_grads
from scipy import optimize, stats

from ufm.etf import etf_gram_error, simplex_etf
from ufm.families import mixup_joint as family
from ufm.objectives.mixup_joint import JointData, JointParams, joint_mixup_loss
from ufm.problems.mixup_joint import MixupJointProblem
from ufm.solver import minimise
from ufm.theory import mixup as theory
from ufm.theory import mixup_joint as joint_theory

BASE = MixupJointProblem(C=3, alpha=1.0, lambda_W=5e-2, mu=5e-2, n_nodes=16, restarts=2)


def checks_by_name(report) -> dict:
    return {c.name: c for c in report.checks}


# ---------------------------------------------------------------- theory (numpy/scipy only)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
@pytest.mark.parametrize("n", [3, 8])
def test_beta_quadrature_exact_for_polynomials(alpha, n):
    """Gauss-Jacobi with n nodes integrates lam^k exactly for k <= 2n-1: compare with scipy's Beta moments.
    1e-12 relative: the weights come from an eigenvalue problem, accurate to a few ulps times n."""
    nodes, w = joint_theory.beta_quadrature(alpha, n)
    half = n // 2  # exact mirror symmetry (upper nodes are 1 - lower ones in floating point)
    assert np.all(nodes[n - half :] == 1.0 - nodes[:half][::-1])
    for k in range(2 * n):
        assert np.dot(w, nodes**k) == pytest.approx(stats.beta(alpha, alpha).moment(k), rel=1e-12)


def test_erm_quadrature_is_two_point():
    nodes, w = joint_theory.beta_quadrature(0.0, 16)
    assert nodes.tolist() == [0.0, 1.0] and w.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("lam", [1.0, 0.8, 0.5, 0.03])
def test_optimal_objective_matches_direct_minimisation(lam):
    """f*(lam) against scipy BFGS on f(h) in R^d with an ETF W (nothing of Theorem 3.1 used). BFGS to a gradient
    of 1e-11 leaves an objective error of order 1e-20: 1e-12 relative is rounding of the sums."""
    C, d, m, mu = 4, 5, 1.3, 0.07
    W = simplex_etf(C, d, m, seed=3)
    y = lam * np.eye(C)[0] + (1 - lam) * np.eye(C)[1]

    def f(h):
        z = W @ h
        p = np.exp(z - z.max())
        return z.max() + np.log(p.sum()) - y @ z + 0.5 * mu * h @ h, W.T @ (p / p.sum() - y) + mu * h

    res = optimize.minimize(f, np.zeros(d), jac=True, method="BFGS", options={"gtol": 1e-11})
    f_star, z2 = theory.optimal_objective(C, theory.kappa(C, m, mu), np.array([lam]))
    assert f_star[0] == pytest.approx(res.fun, rel=1e-12)
    z = W @ res.x
    assert z2[0] == pytest.approx(np.sum((z - z.mean()) ** 2), rel=1e-8)  # ||z*||^2; BFGS's x is good to ~1e-9


def test_reduction_derivative_is_the_envelope_formula():
    """dF/dkappa (envelope theorem) against a central difference of F: step 1e-4 relative gives a truncation error
    ~1e-8 and rounding ~1e-12 / 1e-4; 1e-6 relative separates a wrong formula (O(1) off) from both."""
    nodes, w = joint_theory.beta_quadrature(0.2, 8)
    kappa, h = 17.0, 17.0e-4
    F = lambda k: joint_theory.etf_objective(5, k, 1e-2, 3e-2, nodes, w)[0]
    dF = joint_theory.etf_objective(5, kappa, 1e-2, 3e-2, nodes, w)[1]
    assert dF == pytest.approx((F(kappa + h) - F(kappa - h)) / (2 * h), rel=1e-6)


def test_erm_reduction_against_same_class_closed_form():
    """ERM: F(kappa) = log(1 + (C-1) e^{CK}) + C(C-1) K^2/(2 kappa) + (C-1) lW lH kappa/2 with K the
    same-class root (no different-class machinery). Minimised by scipy's bounded Brent to xatol 1e-12 in
    log kappa: m agrees to 1e-7 (the issue's tolerance; Brent on F itself resolves log kappa to ~sqrt(eps))."""
    C, lW, lH = 5, 2e-2, 3e-2

    def F(u):
        k = np.exp(u)
        K = theory.same_class_root(C, k)
        return np.log1p((C - 1) * np.exp(C * K)) + C * (C - 1) * K**2 / (2 * k) + (C - 1) * lW * lH * k / 2

    u = optimize.minimize_scalar(F, bounds=(-5, 15), method="bounded", options={"xatol": 1e-12}).x
    kappa, F_min = joint_theory.optimal_etf_kappa(C, lW, lH, *joint_theory.beta_quadrature(0.0, 1))
    assert F_min == pytest.approx(F(u), rel=1e-13)
    assert joint_theory.multiplier(C, kappa, lH) == pytest.approx(joint_theory.multiplier(C, np.exp(u), lH), rel=1e-7)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_trivial_threshold(alpha):
    """W = 0 is optimal iff lambda_W mu >= E||Py||^2/(C-1): 10% on either side of the threshold flips the
    1-D answer; and the certificate at W = 0, H = 0 is sqrt(threshold / (lambda_W mu)) exactly (by symmetry
    E[P y y^T P] is a multiple of P), so it exposes W = 0 as non-global below the threshold."""
    C = 4
    problem = MixupJointProblem(C=C, alpha=alpha, n_nodes=6)
    nodes, w = problem.quadrature()
    thr = joint_theory.trivial_threshold(C, nodes, w)
    assert joint_theory.optimal_etf_kappa(C, np.sqrt(1.1 * thr), np.sqrt(1.1 * thr), nodes, w)[0] == 0.0
    assert joint_theory.optimal_etf_kappa(C, np.sqrt(0.9 * thr), np.sqrt(0.9 * thr), nodes, w)[0] > 0.0
    c, cp, lam, weight = problem.targets()
    Y = lam[:, None] * np.eye(C)[c] + (1 - lam)[:, None] * np.eye(C)[cp]
    s = 0.5 * thr
    cert = joint_theory.global_certificate(np.full_like(Y, 1 / C), Y, weight, np.sqrt(s), np.sqrt(s))
    assert cert == pytest.approx(np.sqrt(thr / s), rel=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_targets_merge_equal_soft_targets(alpha):
    """The distinct targets carry the summed probability of the ordered (c, c', node) they stand for."""
    p = MixupJointProblem(C=4, alpha=alpha, n_nodes=5)
    c, cp, lam, weight = p.targets()
    Y = lam[:, None] * np.eye(4)[c] + (1 - lam)[:, None] * np.eye(4)[cp]
    assert len(np.unique(np.round(Y, 12), axis=0)) == len(c)  # distinct
    assert len(c) == (4 if alpha == 0 else 4 + 6 * 5)
    co, cpo, k, wo = p.ordered_targets()
    nodes, _ = p.quadrature()
    Yo = nodes[k][:, None] * np.eye(4)[co] + (1 - nodes[k])[:, None] * np.eye(4)[cpo]
    for t in range(len(c)):
        same = np.all(np.abs(Yo - Y[t]) < 1e-12, axis=1)
        assert weight[t] == pytest.approx(wo[same].sum(), rel=1e-14)
    assert weight.sum() == pytest.approx(1.0, rel=1e-14)


def test_objective_gradients():
    """jax.test_util.check_grads (reverse mode to second order, as the Newton solver uses it) in float64."""
    rng = np.random.default_rng(0)
    p = MixupJointProblem(C=3, alpha=1.0, n_nodes=2)
    c, cp, lam, weight = p.targets()
    Y = lam[:, None] * np.eye(3)[c] + (1 - lam)[:, None] * np.eye(3)[cp]
    data = JointData(jnp.asarray(Y), jnp.asarray(weight), jnp.asarray(0.1), jnp.asarray(0.2))
    params = JointParams(jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.standard_normal((len(c), 4))))
    check_grads(jax.jit(lambda prm: joint_mixup_loss(prm, data)), (params,), order=2, modes=("rev",))


# ---------------------------------------------------------------- joint solves (C = 3)


@pytest.fixture(scope="module")
def mixup_report():
    return family.run(BASE, progress=False)


def test_joint_solve_is_etf_with_the_reduced_multiplier(mixup_report):
    """The issue's acceptance test: at the joint optimum (C = 3, alpha = 1), W W^T is a simplex-ETF Gram matrix
    to 1e-7 and the learned m equals the 1-D reduction's argmin to 1e-7 (observed ~1e-12)."""
    n = mixup_report.numbers
    assert n["etf_error"] < 1e-7
    assert abs(n["m"] - n["m_1d"]) / n["m_1d"] < 1e-7
    by_name = checks_by_name(mixup_report)
    assert by_name["solver converged at the best restart (0 = yes)"].passed
    assert mixup_report.arrays["grad_norm"][mixup_report.numbers["best"]] <= 1e-10
    assert mixup_report.passed, [c.to_dict() for c in mixup_report.failed_checks]


def test_quadrature_doubling_in_the_joint_solve(mixup_report):
    """Doubling the nodes (16 -> 32) moves the jointly learned m by less than 1e-6 relative (the 1-D reduction
    predicts ~2e-10 here) and leaves the ETF error at rounding."""
    doubled = family.run(dataclasses.replace(BASE, n_nodes=32, restarts=1), progress=False)
    assert doubled.numbers["etf_error"] < 1e-7
    assert abs(doubled.numbers["m"] - mixup_report.numbers["m"]) / mixup_report.numbers["m"] < 1e-6
    assert checks_by_name(mixup_report)["quadrature: m with 16 vs 32 nodes (rel)"].passed


def test_collapse_with_several_samples_per_pair():
    """Two separate feature variables per ordered (c, c', node): equal targets end at equal features (1e-8), and
    the result is the same ETF optimum as the collapsed problem (same quadrature: m to 1e-7)."""
    problem = dataclasses.replace(BASE, n_nodes=3, samples_per_target=2, restarts=1)
    report = family.run(problem, progress=False)
    by_name = checks_by_name(report)
    assert by_name["collapse: equal targets give equal features (rel spread)"].value < 1e-8
    assert report.numbers["etf_error"] < 1e-7
    assert abs(report.numbers["m"] - report.numbers["m_1d"]) / report.numbers["m_1d"] < 1e-7
    assert report.passed or [c.name for c in report.failed_checks] == ["quadrature: m with 3 vs 6 nodes (rel)"]


def test_erm_joint_solve():
    """alpha = 0 (ERM) through the same code path: ETF, and m equals the 1-D reduction."""
    report = family.run(dataclasses.replace(BASE, alpha=0.0, restarts=1), progress=False)
    assert report.numbers["etf_error"] < 1e-7
    assert abs(report.numbers["m"] - report.numbers["m_1d"]) / report.numbers["m_1d"] < 1e-7
    assert report.passed


def test_etf_error_detects_a_non_etf_optimum():
    """The ETF measurement can fail: with unequal class frequencies (0.6, 0.3, 0.1; ERM) the symmetry argument
    breaks and the joint optimum's W W^T is far from any ETF Gram (minority collapse): error > 1e-2."""
    C, weight = 3, np.array([0.6, 0.3, 0.1])
    data = JointData(jnp.eye(C), jnp.asarray(weight), jnp.asarray(5e-3), jnp.asarray(5e-3))
    rng = np.random.default_rng(1)
    params0 = JointParams(jnp.asarray(rng.standard_normal((1, C, C))), jnp.asarray(rng.standard_normal((1, C, C))))
    sol = minimise(joint_mixup_loss, params0, data, options=dataclasses.replace(family.SOLVER, progress=False))
    assert sol.converged.all()
    assert etf_gram_error(np.asarray(sol.params.W[0]))[0] > 1e-2


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--alpha", "-0.5"], "--alpha"),
        (["--alpha", "nan"], "--alpha"),
        (["--nodes", "0"], "--nodes"),
        (["--lambda-W", "0"], "--lambda-W"),
        (["--restarts", "0"], "--restarts"),
    ],
)
def test_cli_bad_input(tmp_path, args, flag):
    """Bad input exits 2 with one line on stderr naming the argument, and writes nothing (alpha = 0 is ERM)."""
    out = tmp_path / "out"
    assert_refused(
        run_main("ufm.solve", "--loss", "mixup-joint", "--C", "3", *args, "--out", str(out)), f"argument {flag}:"
    )
    assert not out.exists()


# ---------------------------------------------------------------- regressions (user reports)


def _main(argv):
    import contextlib
    import io
    import tempfile
    import time
    from pathlib import Path

    from ufm.solve import main

    err = io.StringIO()
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        t0 = time.perf_counter()
        code = main([*argv, "--out", str(Path(tmp) / "out"), "--quiet"])
        seconds = time.perf_counter() - t0
        assert list(Path(tmp).iterdir()) == []
    return code, err.getvalue().strip().splitlines(), seconds


def test_one_node_quadrature_is_reported_not_failed():
    """--nodes 1 failed its own quadrature check: a 1-node Gauss-Jacobi rule is a valid rule (lam = 1/2, exact for
    degree 1), but it does not resolve the Beta law (m moves by 2e-2 with 2 nodes, C = 3). The check compares two
    1-D reductions (theory with theory), not the solver: it is reported (INFO), saying NOT resolved, and the run's
    graded checks are those of the n-node problem it solves. 16 nodes at the defaults: resolved (2e-10)."""
    from ufm.checks import mixup_joint as joint_checks

    problem = MixupJointProblem(C=3, n_nodes=1)
    check = joint_checks.quadrature_doubling(
        family.reduced_multiplier(problem)[0], family.reduced_multiplier(problem, 2)[0], 1
    )
    assert not check.graded and check.value > 1e-3 and "NOT resolved" in check.detail
    fine = dataclasses.replace(problem, n_nodes=16)
    check = joint_checks.quadrature_doubling(
        family.reduced_multiplier(fine)[0], family.reduced_multiplier(fine, 32)[0], 16
    )
    assert check.value < 1e-6 and " resolved" in check.detail


def test_unconverged_restarts_are_not_graded_as_minima():
    """lambda_W = mu = 1e-6 (C = 10): one of three restarts stalled at grad 5.2e-10 with ETF error 7.6e-5,
    2.2e-13 above the others (ETF to 2e-12). Only converged restarts are graded as minima; the stalled one is
    named in the convergence check's detail; the best (lowest converged) is graded."""
    from ufm.checks import mixup_joint as joint_checks
    from ufm.solver import CONVERGED, STALLED, Solution

    loss = np.array([0.45006062169337474, 0.4500606216932735, 0.45006062169327343])
    sol = Solution(
        params=None,
        loss=loss,
        grad_norm=np.array([5.2e-10, 1.3e-15, 1.3e-15]),
        rel_grad_norm=np.array([5.2e-10, 1.3e-15, 1.3e-15]),
        steps=np.array([59, 48, 47]),
        status=np.array([STALLED, CONVERGED, CONVERGED]),
        compile_seconds=0.0,
        solve_seconds=0.0,
        rtol=1e-11,
    )
    best = family.best_element(sol)
    assert best == 2 and family.graded_restarts(sol, best).tolist() == [1, 2]
    check = joint_checks.converged(sol, best, ("random",) * 3)
    assert check.passed and "stalled" in check.detail
    # every restart failed: the check fails and says why
    failed = dataclasses.replace(sol, status=np.array([STALLED] * 3))
    check = joint_checks.converged(failed, family.best_element(failed), ("random",) * 3)
    assert not check.passed and "stalled" in check.detail and family.graded_restarts(failed, 2).tolist() == [2]


@pytest.mark.parametrize("factor, zero", [(1.1, True), (0.9, False)])
def test_zero_start_where_the_zero_solution_can_be_optimal(factor, zero):
    """W = H = 0 (always a critical point) is added as a start iff lambda_W mu >= the trivial threshold."""
    problem = MixupJointProblem(C=4, n_nodes=3, restarts=2)
    thr = joint_theory.trivial_threshold(4, *problem.quadrature())
    problem = dataclasses.replace(problem, lambda_W=np.sqrt(factor * thr), mu=np.sqrt(factor * thr))
    assert family.start_kinds(problem) == ("random", "random") + (("zero",) if zero else ())


def test_cli_refusals_nodes_and_sizes():
    """--nodes does not apply to ERM; at most MAX_NODES (scipy's nodes cost O(n^2)); huge sizes of every size flag
    refused by the memory estimate (exit 2, one line naming the flag) in well under 5 s."""
    code, lines, _ = _main(["--loss", "mixup-joint", "--alpha", "0", "--nodes", "3"])
    assert code == 2 and len(lines) == 1 and "argument --nodes:" in lines[0]
    code, lines, _ = _main(["--loss", "mixup-joint", "--nodes", "1001"])
    assert code == 2 and "argument --nodes:" in lines[0] and "at most 1000" in lines[0]
    for argv, flag in (
        (["--C", "1000000"], "--C"),
        (["--C", "3", "--d", "100000000000"], "--d"),
        (["--C", "3", "--restarts", "100000000"], "--restarts"),
        (["--C", "3", "--samples-per-target", "100000000"], "--samples-per-target"),
        (["--C", "2000", "--nodes", "1000"], "--C"),
    ):
        code, lines, seconds = _main(["--loss", "mixup-joint", *argv])
        assert code == 2 and len(lines) == 1 and f"argument {flag}:" in lines[0] and "needs about" in lines[0], lines
        assert seconds < 5.0
