"""proofs_check square_loss and nonnegative: the certificates pass on the closed forms and FAIL on planted wrong ones.

Every planted error goes through the certificate's public keyword arguments (the closed-form function, a formula,
a threshold), as a user would pass a candidate closed form. Grids are small (a few shapes) so that the JAX
compilations stay few; tolerances are the certificates' own (stated in proofs_check/square_loss.py and
proofs_check/nonnegative.py). A planted error must miss its bound by orders of magnitude, not marginally.
"""

from __future__ import annotations

import dataclasses

import pytest

from ufm import proofs_check
from ufm.proofs_check import nonnegative as pc_nonneg
from ufm.proofs_check import square_loss as pc_sq
from ufm.proofs_check.certificate import CONDITIONAL, FAIL, PASS
from ufm.theory import nonnegative as nn_theory
from ufm.theory import square_loss as sq_theory

# one-layer: (A2) below the threshold with d > K, (A1) past it with d = K, (A3) with g > 0; all C = 3 or 2
ONE_LAYER = (
    pc_sq.one_layer_problem(3, 2, 4, "free", 0.3),
    pc_sq.one_layer_problem(3, 2, 3, "none", 1.6),
    pc_sq.one_layer_problem(3, 2, 4, 5.0, 0.3),
    pc_sq.one_layer_problem(3, 2, 3, "none", 0.3),
)
DEEP = (pc_sq.deep_problem(3, 2, 4, 2, "none", 0.9), pc_sq.deep_problem(3, 2, 4, 2, "none", 1.1))


def rho_doubled(problem):
    """The (A1)-(A3) closed form with rho -> 2 rho (lambda_W x 4): a factor 2 in the threshold."""
    return sq_theory.closed_form(dataclasses.replace(problem, lambda_W=4 * problem.lambda_W))


def bias_flipped(problem):
    t = sq_theory.closed_form(problem)
    return {**t, "b": -t["b"]}


def test_square_loss_closed_forms_are_certified():
    cert = pc_sq.one_layer_optimality(problems=ONE_LAYER)
    assert cert.verdict == PASS, [m.to_dict() for m in cert.failures]
    # strict local minimum up to the rotations: positive on the complement, null count = orbit dimension
    assert cert.min_hessian_eig > 0
    numbers = [r["numbers"] for r in cert.instances]
    # free bias, d = 4, rank r = K-1 = 2: dim O(d) - dim O(d - r) = 6 - 1
    assert numbers[0]["orbit_dim"] == 5 and numbers[0]["near_zero"] == 5
    assert numbers[1]["orbit_dim"] == 0  # zero solution: the orbit is a point
    deep = pc_sq.deep_optimality(problems=DEEP)
    assert deep.verdict == PASS, [m.to_dict() for m in deep.failures]


@pytest.mark.parametrize("wrong", [rho_doubled, bias_flipped])
def test_square_loss_planted_wrong_closed_form_fails(wrong):
    cert = pc_sq.one_layer_optimality(problems=ONE_LAYER, closed_form=wrong)
    assert cert.verdict == FAIL
    first_order = cert.measurements[0]
    assert not first_order.passed and first_order.value > 1e8 * first_order.tol
    assert first_order.worst_at["C"] == 3  # the failing instance is named


def test_square_loss_planted_saddle_fails_second_order():
    """Claiming W = H = 0 below the threshold (rho x 4): a critical point, so first order passes, but a saddle."""
    zero = lambda p: sq_theory.closed_form(dataclasses.replace(p, lambda_W=16 * p.lambda_W))
    cert = pc_sq.one_layer_optimality(problems=ONE_LAYER[3:], closed_form=zero)
    assert cert.measurements[0].passed  # gradient exactly 0 at the zero point
    assert cert.verdict == FAIL
    second = next(m for m in cert.measurements if m.name.startswith("second order"))
    assert not second.passed and second.value < -1e-3


def test_deep_planted_wrong_x_fails():
    """A wrong deep closed form (the x* of a problem with lambda_H doubled, still nonzero) is not critical."""
    wrong = lambda p: sq_theory.closed_form(dataclasses.replace(p, lambda_H=2 * p.lambda_H))
    cert = pc_sq.deep_optimality(problems=(pc_sq.deep_problem(3, 2, 4, 2, "none", 0.3),), closed_form=wrong)
    assert cert.verdict == FAIL and cert.measurements[0].value > 1e-6


def test_deep_local_but_not_global_is_caught_only_by_restarts():
    """Below beta_c, W = H = 0 is a strict local minimum of the deep model (m >= 3): every local certificate passes
    on it; the restarts find the lower nonzero optimum."""
    zero = lambda p: sq_theory.closed_form(dataclasses.replace(p, lambda_H=4 * p.lambda_H))
    local = pc_sq.deep_optimality(problems=DEEP[:1], closed_form=zero)
    assert local.verdict == PASS and local.instances[0]["numbers"]["nonzero_optimum"] is False
    glob = pc_sq.restarts_never_below(problems=DEEP[:1], closed_form=zero, restarts=4)
    assert glob.verdict == FAIL and glob.measurements[0].value > 1e-3


def test_deep_threshold_and_planted_factor_two():
    assert pc_sq.deep_threshold_jump(depths=(3, 4), n_grid=20_001).verdict == PASS
    wrong = pc_sq.deep_threshold_jump(
        depths=(3, 4), n_grid=20_001, threshold=lambda m: 2 * sq_theory.deep_threshold(m) if m > 2 else 1.0
    )
    assert wrong.verdict == FAIL
    names = {m.name for m in wrong.failures}
    assert any("independent root" in n for n in names) and any("phi(x_c; beta_c)" in n for n in names)


def test_rb_relations_and_planted_wrong_formulas():
    problems = (pc_sq.one_layer_problem(3, 2, 4, "free", 0.5), pc_sq.one_layer_problem(3, 2, 4, "none", 0.5))
    cert = pc_sq.rb_relations(problems=problems)
    assert cert.verdict == PASS, [m.to_dict() for m in cert.failures]
    seed_err = cert.instances[1]["numbers"]["seed_formula_rel_error"]
    assert seed_err == pytest.approx(1 / 3**0.5, rel=1e-12)  # misses by exactly 1/sqrt(K) (orthogonal frame)
    # the paper's classifier without its 1/(K-1): fails with a free bias
    no_k = lambda K, eps, lam, means, bias: (
        sq_theory.rb_classifier(K, eps, lam, means, bias) * ((K - 1) if bias == "free" else 1)
    )
    assert pc_sq.rb_relations(problems=problems, classifier=no_k).verdict == FAIL
    # using the paper's (free-bias) norm formula bias-free too: the correction check fails
    seed_everywhere = lambda K, eps, lam, bias: sq_theory.rb_classifier_norm_sq(K, eps, lam, "free")
    bad = pc_sq.rb_relations(problems=problems, norm_sq=seed_everywhere)
    assert bad.verdict == FAIL and any("bias-free correction" in m.name for m in bad.failures)


def test_square_loss_restarts_and_planted_suboptimal_point():
    problems = (pc_sq.one_layer_problem(3, 2, 4, "none", 0.5),)
    good = pc_sq.restarts_never_below(problems=problems, restarts=2)
    assert good.verdict == PASS and good.restarts == 2
    bad = pc_sq.restarts_never_below(problems=problems, restarts=2, closed_form=rho_doubled)
    assert bad.verdict == FAIL and bad.measurements[0].value > 1e-3  # the solver beats the wrong closed form


# ------------------------------------------------------------------------------------------------ nonnegative

MODEL2 = (
    pc_nonneg.model2_problem(3, 2, 3, 0.0, 0.3),
    pc_nonneg.model2_problem(3, 2, 5, 0.1, 0.4),
    pc_nonneg.model2_problem(3, 2, 5, 0.0, 1.5),
)


def test_model2_certified_with_multipliers_and_cone():
    cert = pc_nonneg.model2_optimality(problems=MODEL2)
    assert cert.verdict == PASS, [m.to_dict() for m in cert.failures]
    n = [r["numbers"] for r in cert.instances]
    assert n[0]["weakly_active"] == 0 and n[0]["strongly_active"] > 0  # d = K: strict complementarity
    assert n[1]["weakly_active"] == 2 * 6 and abs(n[1]["copositive_min_rel"]) < 1e-10  # padding: minimum 0
    # zero solution: every H coordinate weakly active; copositivity margin as the analytic value
    assert n[2]["support"] == 0 and n[2]["copositive_min"] == pytest.approx(n[2]["copositive_min_analytic"], rel=1e-6)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda K, n, lw, lh, a: nn_theory.model2_optimum(K, n, 4 * lw, lh, a),  # gamma doubled
        lambda K, n, lw, lh, a: {
            **nn_theory.model2_optimum(K, n, lw, lh, a),  # classifier sign flipped
            "classifier_scale": -nn_theory.model2_optimum(K, n, lw, lh, a)["classifier_scale"],
        },
    ],
)
def test_model2_planted_wrong_closed_form_fails(wrong):
    cert = pc_nonneg.model2_optimality(problems=MODEL2[:2], optimum=wrong)
    assert cert.verdict == FAIL and cert.measurements[0].value > 1e8 * cert.measurements[0].tol


def test_model2_planted_zero_below_threshold_fails_on_the_cone():
    """W = H = 0 claimed below the threshold is a KKT point (gradient 0) but not copositive on the cone."""
    zero = lambda K, n, lw, lh, a: nn_theory.model2_optimum(K, n, 100 * lw, lh, a)
    cert = pc_nonneg.model2_optimality(problems=MODEL2[:1], optimum=zero)
    assert cert.measurements[0].passed and cert.verdict == FAIL
    cone = next(m for m in cert.measurements if m.name.startswith("critical cone"))
    assert not cone.passed and cone.value < -1e-3


def test_model1_budget_condition_is_conditional_and_ignoring_it_fails():
    K, alpha = 3, 0.1
    m_star = nn_theory.smoothing_margin(K, alpha)
    inside = (pc_nonneg.model1_problem(K, 2, 5, alpha, 0.5 * m_star),)
    beyond = (pc_nonneg.model1_problem(K, 2, 5, alpha, 2.0 * m_star),)
    assert pc_nonneg.model1_ls_budget_condition(problems=inside).verdict == PASS
    cert = pc_nonneg.model1_ls_budget_condition(problems=inside + beyond)
    assert cert.verdict == CONDITIONAL and "M_max <= m*_alpha" in cert.condition
    witness = cert.instances[1]["numbers"]["second_minimiser"]
    assert witness["max_abs_cos_means"] > 0.1  # a minimiser whose class means are not orthogonal

    # claiming the CE geometry (on the budgets, value ell(M_max)) without the condition: not a KKT point
    def unconditional(K, E_W, E_H, alpha):
        t = nn_theory.model1_optimum(K, E_W, E_H, alpha)
        return {
            **t,
            "unique": True,
            "margin": t["M_max"],
            "objective": float(nn_theory.equal_margin_loss(K, alpha, t["M_max"])),
        }

    bad = pc_nonneg.model1_ls_budget_condition(problems=beyond, optimum=unconditional)
    assert bad.verdict == FAIL
    assert any("multipliers nu" in m.name or "stationarity" in m.name for m in bad.failures)


def test_model1_ce_and_margin_facts():
    problems = (pc_nonneg.model1_problem(3, 2, 3, 0.0, 2.0), pc_nonneg.model1_problem(2, 3, 4, 0.0, 0.5))
    assert pc_nonneg.model1_ce_optimality(problems=problems).verdict == PASS
    assert pc_nonneg.margin_facts(classes=(3,)).verdict == PASS
    wrong = pc_nonneg.margin_facts(classes=(3,), margin=lambda K, a: 2 * nn_theory.smoothing_margin(K, a))
    assert wrong.verdict == FAIL


def test_families_registered_one_line_each():
    assert proofs_check.FAMILIES["square_loss"] == "ufm.proofs_check.square_loss"
    assert proofs_check.FAMILIES["nonnegative"] == "ufm.proofs_check.nonnegative"
    for name in ("square_loss", "nonnegative"):
        module = proofs_check.load(name)
        assert module.FAMILY == name and module.CERTIFICATES
