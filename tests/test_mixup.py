"""Mixup solver (full dimension d, no ETF structure used) against Theorem 3.1's closed forms, and the properties."""

import dataclasses

import numpy as np
import pytest

from ufm.checks import mixup as checks
from ufm.families import mixup as family
from ufm.problems import InputError
from ufm.problems.mixup import MixupProblem
from ufm.theory import mixup as theory

# Solver features vs closed form: 1e-10 relative (the bar). At the rounding floor the error is about
# cond(Hessian) * eps <= (1 + kappa) * 2.2e-16, i.e. <= 2.2e-13 for kappa <= 1000, so 1e-10 is met with margin
# while any wrong constant in the closed form would show up at >= 1e-3.
TOL = 1e-10


def mu_for_kappa(C, m, kappa):
    return C * m**2 / ((C - 1) * kappa)


@pytest.mark.parametrize("C", [2, 3, 10])
@pytest.mark.parametrize("d_of_C", ["C-1", "C", "2C+1"])
@pytest.mark.parametrize("m, kappa", [(0.5, 0.1), (1.0, 15.0), (2.0, 1000.0)])
def test_solver_matches_closed_form(C, d_of_C, m, kappa):
    d = {"C-1": C - 1, "C": C, "2C+1": 2 * C + 1}[d_of_C]
    problem = MixupProblem(C=C, d=d, m=m, mu=mu_for_kappa(C, m, kappa), n_lambdas=5, seed=C + d)  # lam 0, .25, .5, .75, 1
    out = family.solve(problem)
    assert out.solution.converged.all()
    assert np.max(out.solution.rel_grad_norm) <= 1e-12
    h_theory = theory.optimal_features(out.W, m, problem.mu, out.c, out.c_prime, out.lam)
    scale = (C - 1) * abs(theory.same_class_root(C, problem.kappa)) / m
    err = checks.relative_errors(out.h, h_theory, scale)
    assert np.max(err) <= TOL, (np.max(err), out.c[np.argmax(err)], out.c_prime[np.argmax(err)], out.lam[np.argmax(err)])


@pytest.mark.parametrize("C, d, kappa", [(3, 3, 15.0), (2, 4, 5.0), (10, 9, 200.0)])
def test_every_property_check_passes(C, d, kappa):
    problem = MixupProblem(C=C, d=d, m=1.0, mu=mu_for_kappa(C, 1.0, kappa), n_lambdas=11, seed=1)
    report = family.run(problem, progress=False)
    names = [check.name for check in report.checks]
    assert report.passed, [(c.name, c.value) for c in report.failed_checks]
    for fragment in ("closed form", "independent of lambda", "along w_c", "odd about", "independent of d",
                     "linear in lambda", "bulge"):
        assert any(fragment in name for name in names), fragment
    if C >= 3:
        bulge = next(c for c in report.checks if "bulge" in c.name)
        assert bulge.graded and bulge.value <= TOL


def test_a_wrong_closed_form_fails_the_check():
    """The feature check can fail: a factor 2 in kappa (a plausible normalisation slip) is caught."""
    problem = MixupProblem(C=3, d=3, m=1.0, mu=0.1, n_lambdas=5)
    out = family.solve(problem)
    wrong = theory.optimal_features(out.W, problem.m, problem.mu / 2, out.c, out.c_prime, out.lam)
    check = checks.feature_error(checks.relative_errors(out.h, wrong, 1.0), out.c, out.c_prime, out.lam)
    assert not check.passed and check.value > 1e-2


def test_same_class_optimum_does_not_depend_on_d_or_embedding():
    base = MixupProblem(C=4, d=3, m=1.0, mu=0.05, n_lambdas=3)
    other = dataclasses.replace(base, d=11, seed=5)
    norms = [np.linalg.norm(family.solve(p).h, axis=1) for p in (base, other)]
    np.testing.assert_allclose(norms[0], norms[1], rtol=1e-12)


@pytest.mark.parametrize("field, value", [("C", 1), ("d", 1), ("m", 0.0), ("m", -1.0), ("mu", 0.0),
                                          ("n_lambdas", 1), ("mu", float("nan"))])
def test_problem_validation(field, value):
    kwargs = {"C": 3, "d": 3, **{field: value}}
    with pytest.raises(InputError) as info:
        MixupProblem(**kwargs)
    assert info.value.field == field


def test_unconverged_solver_fails_the_run(monkeypatch):
    """A solver stopped early must make the run fail, never produce a silent table."""
    import dataclasses as dc

    monkeypatch.setattr(family, "SOLVER", dc.replace(family.SOLVER, max_steps=1))
    report = family.run(MixupProblem(C=3, d=3, m=1.0, mu=1e-3, n_lambdas=3), progress=False)
    assert not report.passed
    assert any("converged" in check.name for check in report.failed_checks)
    assert report.convergence["failures"]


def test_kappa_outside_float64_range_is_rejected():
    with pytest.raises(InputError) as info:
        MixupProblem(C=3, m=1e200)
    assert info.value.field == "mu" and "kappa" in info.value.message


def test_tolerance_follows_conditioning_only_beyond_1e5():
    assert checks.feature_tolerance(1e3) == 1e-10
    assert checks.feature_tolerance(1e9) == pytest.approx(100 * np.finfo(float).eps * (1 + 1e9))
