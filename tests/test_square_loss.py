"""Square loss with weight decay: solver vs closed forms (A1)-(A3), deep linear, networks; identities; R-B relations."""

import numpy as np
import pytest

from ufm.families import square_loss as family
from ufm.problems import InputError
from ufm.problems.square_loss import SquareLossProblem
from ufm.theory import square_loss as theory


def run(**kwargs):
    problem = SquareLossProblem(**{"n": 2, "restarts": 3, **kwargs})
    return family.run(problem, progress=False)


def check(report, fragment):
    return next(c for c in report.checks if fragment in c.name)


# Both sides of each side of the threshold rho = K sqrt(n lambda_W lambda_H) = 1 (n = 2): lambda 5e-3 and 0.1 are
# below it for K <= 10 except (K=10, 0.1); 0.5 is above for every K.
@pytest.mark.parametrize("C", [2, 3, 10])
@pytest.mark.parametrize("bias", ["none", "free", "0.1"])
@pytest.mark.parametrize("lam", [5e-3, 0.5])
def test_one_layer_ufm_matches_closed_form(C, bias, lam):
    if C == 10 and bias == "0.1" and lam == 0.5:
        pytest.skip("covered by the other threshold cases; keeps the suite short")
    report = run(C=C, bias=bias, lambda_W=lam, lambda_H=lam)
    assert report.passed, [(c.name, c.value, c.tol) for c in report.failed_checks]
    # the objective check is graded at 1e-12 (see ufm.checks.square_loss) and present in every linear case
    assert check(report, "objective = closed form").tol == 1e-12


@pytest.mark.parametrize("C, layers, bias", [(3, 2, "none"), (3, 2, "free"), (3, 3, "none"), (2, 3, "none"),
                                             (10, 3, "none"), (10, 3, "free")])
def test_deep_linear_ufm_matches_closed_form(C, layers, bias):
    report = run(C=C, layers=layers, bias=bias)
    assert report.passed, [(c.name, c.value, c.tol) for c in report.failed_checks]
    assert check(report, "every factor").graded


def test_balanced_starts_all_reach_the_deep_optimum():
    """C = 10, 4 factors: from Gaussian starts every restart ended rank-deficient (0.182, 0.217 vs 0.1466); the
    balanced orthogonal starts at and above the targets' scale (START_SCALES 2 and 1) must both reach the closed
    form (to 1e-10 relative, the restart-count criterion). The candidate W = H = 0 is a strict local minimum of
    m = 4 factors and ends there (objective 1/2, to the rounding of f/s times s), above them."""
    report = run(C=10, n=5, layers=3, restarts=2)
    losses = report.numbers["restart_losses"]
    assert report.numbers["restart_starts"][-1] == "candidate W = H = 0" and abs(losses[-1] - 0.5) <= 1e-15
    assert check(report, "restarts ending at the best objective").value == 2
    assert check(report, "objective = closed form").passed
    gaussian = SquareLossProblem(C=10, n=5, layers=3, restarts=3)
    start = family.gaussian_params(gaussian, 3, gaussian.seed)
    sol = family.minimise(family.square_loss, start, family.objective_data(gaussian), options=family.SOLVER)
    assert np.min(sol.loss) > report.numbers["closed_form"]["objective"] * (1 + 1e-3)  # why the balanced starts


def test_deep_linear_past_its_first_order_threshold_is_zero():
    K, n, lam = 3, 2, 0.2  # beta = K n^{1/3} lam > beta_c(3) = 0.397
    assert theory.deep_beta(K, n, [lam] * 3) > theory.deep_threshold(3)
    report = run(C=K, layers=2, lambda_W=lam, lambda_H=lam, restarts=2)
    assert report.passed
    assert report.numbers["closed_form"]["x"] == 0.0 and abs(report.numbers["eps"] - 1.0) < 1e-8


def test_network_on_orthonormal_inputs_is_a_deep_ufm():
    report = family.run(SquareLossProblem(C=3, n=2, model="net", layers=2, restarts=3), progress=False)
    assert report.passed, [(c.name, c.value) for c in report.failed_checks]


def test_identities_hold_at_relu_solutions():
    """(I1)-(I3) hold at any critical point, ReLU included: a sanity test of the solver."""
    report = run(C=3, layers=2, act="relu", bias="free", d=6)
    for name in ("(I1)", "(I2)", "(I3)"):
        c = check(report, name)
        assert c.graded and c.passed, (c.name, c.value)


def test_seed_relations_fail_bias_free_and_corrected_forms_hold():
    report = run(C=3, bias="none")
    assert check(report, "seed R-B W_L formula fails bias-free").passed  # rel err >= 1e-3
    assert check(report, "corrected bias-free: W_L^c").value < 1e-8
    nc3 = report.numbers["nc"]["NC3"]
    assert abs(nc3 - (2 - 2 * np.sqrt(2 / 3))) < 1e-8  # 0.36701 for C = 3 (note)
    free = run(C=3, bias="free")
    assert check(free, "seed R-B: W_L^c").value < 1e-8 and free.numbers["nc"]["NC3"] < 1e-8


def test_lemma1_value_and_minimum():
    for K in (2, 3, 10):
        alpha, value = theory.lemma1_minimum(K)
        grid = np.linspace(0, 2, 200001)
        assert abs(theory.lemma1_loss(K, grid).min() - 1 / (2 * K)) < 1e-10  # independent grid minimisation
        assert abs(theory.lemma1_loss(K, alpha) - value) < 1e-15 and value > 0


def test_lemma1_loss_by_evaluation():
    """Lemma 1's loss equals 1/(2N)||W M - Y||^2 for collapsed features with W M = alpha K/(K-1)(I - 11^T/K)."""
    rng = np.random.default_rng(0)
    for K in (2, 3, 7):
        alpha = rng.uniform(0, 2)
        outputs = alpha * K / (K - 1) * (np.eye(K) - 1.0 / K)
        n = 3
        F, Y = np.repeat(outputs, n, axis=1), np.repeat(np.eye(K), n, axis=1)
        assert abs(0.5 / (K * n) * np.sum((F - Y) ** 2) - theory.lemma1_loss(K, alpha)) < 1e-14


def test_deep_fit_is_the_global_minimiser_of_phi():
    x = np.linspace(0, 1, 2000001)
    for m in (2, 3, 4):
        for beta in (0.05, 0.2, 0.35, 0.5):
            best = x[np.argmin(theory.deep_phi(x, m, beta))]
            assert abs(theory.deep_fit(m, beta) - best) < 1e-6


def test_gradient_descent_trajectory_records_collapse():
    problem = SquareLossProblem(C=3, n=2, bias="free", lambda_W=5e-3, lambda_H=5e-3)
    traj = family.gradient_descent(problem, steps=4000, lr=0.5, momentum=0.9, record_every=1000)
    assert traj["step"].tolist() == [0, 1000, 2000, 3000, 4000]
    assert traj["loss"][-1] < traj["loss"][0] and traj["NC1"][-1] < 1e-3 * max(traj["NC1"][0], 1e-12) + 1e-6
    optimum = theory.ufm_optimum(3, 2, 5e-3, 5e-3, "free")["objective"]
    assert traj["loss"][-1] >= optimum - 1e-12  # GD cannot beat the global optimum


@pytest.mark.parametrize("field, kwargs", [("C", {"C": 1}), ("lambda_W", {"lambda_W": -1.0}),
                                           ("lambda_H", {"lambda_H": 0.0}), ("layers", {"layers": 0}),
                                           ("act", {"act": "tanh"}), ("bias", {"bias": "sometimes"}),
                                           ("bias", {"bias": "-0.1"}), ("n", {"n": 0})])
def test_bad_input(field, kwargs):
    with pytest.raises(InputError) as info:
        SquareLossProblem(**kwargs)
    assert info.value.field == field
