"""The cross-entropy UFM (``ce``; Zhu, Ding, Zhou, Li, You, Sulam, Qu, NeurIPS 2021): the closed form of
``ufm.theory.ce`` against an independent minimisation (scipy L-BFGS-B on the full objective, numpy), its scalar
reduction, the stable JAX objective, validation, the checks' power to reject a wrong closed form, and the CLI.

Solver runs share two compiled shapes (C = 3, n = 2, d = 3 without and with a bias)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from ufm.checks import ce as checks
from ufm.families import ce as family
from ufm.objectives.ce import CEData, ce_loss, cross_entropy
from ufm.problems import InputError
from ufm.problems.ce import CEProblem
from ufm.proofs_check import ce as proofs_check_ce
from ufm.solve import main
from ufm.theory import ce as theory


def objective_and_gradient(x, K, n, d, lambda_W, lambda_H, lambda_b, bias):
    """The full objective and its gradient in numpy, written here from the definition (nothing of the theory)."""
    N = K * n
    W, H = x[: K * d].reshape(K, d), x[K * d : K * d + N * d].reshape(N, d)
    b = x[K * d + N * d :] if bias else np.zeros(K)
    Y = np.repeat(np.eye(K), n, axis=0)
    Z = H @ W.T + b
    m = Z.max(axis=1, keepdims=True)
    E = np.exp(Z - m)
    S = E.sum(axis=1, keepdims=True)
    f = float(
        np.mean(np.log(S[:, 0]) + m[:, 0] - np.sum(Y * Z, axis=1))
        + 0.5 * lambda_W * np.sum(W * W)
        + 0.5 * lambda_H * np.sum(H * H)
        + (0.5 * lambda_b * np.sum(b * b) if bias else 0.0)
    )
    G = (E / S - Y) / N
    grads = [(G.T @ H + lambda_W * W).ravel(), (G @ W + lambda_H * H).ravel()]
    if bias:
        grads.append(G.sum(axis=0) + lambda_b * b)
    return f, np.concatenate(grads)


def lbfgs_minimum(K, n, d, lambda_W, lambda_H, lambda_b, bias, starts=3, seed=0) -> float:
    """Lowest objective of scipy L-BFGS-B from seeded Gaussian starts (gtol 1e-13, no ftol stop)."""
    rng = np.random.default_rng(seed)
    size = (K + K * n) * d + (K if bias else 0)
    best = np.inf
    for _ in range(starts):
        res = optimize.minimize(
            objective_and_gradient,
            rng.standard_normal(size),
            method="L-BFGS-B",
            jac=True,
            args=(K, n, d, lambda_W, lambda_H, lambda_b, bias),
            options={"maxiter": 20000, "ftol": 0.0, "gtol": 1e-13, "maxcor": 30},
        )
        best = min(best, res.fun)
    return best


# (K, n, d, lambda_W, lambda_H): small decays, unbalanced decays, near and past the threshold rho = 1
CASES = [
    (2, 3, 2, 1e-3, 1e-3),
    (2, 3, 3, 0.05, 0.3),
    (2, 3, 2, 0.3, 0.3),
    (3, 2, 3, 1e-3, 4e-3),
    (3, 2, 2, 0.1, 0.5),
    (3, 2, 3, 0.3, 0.4),
    (10, 1, 9, 2e-3, 2e-3),
    (10, 1, 10, 0.04, 0.04),
    (10, 1, 10, 0.2, 0.1),
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("K, n, d, lambda_W, lambda_H", CASES)
def test_closed_form_is_the_independent_minimum(K, n, d, lambda_W, lambda_H, bias):
    t = theory.optimum(K, n, lambda_W, lambda_H)
    assert t["zero"] == (t["rho"] >= 1.0)
    found = lbfgs_minimum(K, n, d, lambda_W, lambda_H, 0.1, bias)
    assert abs(found - t["objective"]) <= 1e-10 * t["objective"], (found, t)
    if t["zero"]:
        assert t["objective"] == pytest.approx(math.log(K), rel=1e-15)


def test_the_grid_has_both_regimes_for_every_K():
    for K in (2, 3, 10):
        zero = {theory.optimum(K, n, lw, lh)["zero"] for k, n, _, lw, lh in CASES if k == K}
        assert zero == {True, False}


@pytest.mark.parametrize("K, n, d, lambda_W, lambda_H", CASES)
def test_closed_form_point_is_critical_and_has_the_formula_objective(K, n, d, lambda_W, lambda_H):
    W, H, b = theory.optimal_point(K, n, d, lambda_W, lambda_H, seed=3)
    x = np.concatenate([W.ravel(), H.ravel(), b])
    f, g = objective_and_gradient(x, K, n, d, lambda_W, lambda_H, 1.0, True)
    t = theory.optimum(K, n, lambda_W, lambda_H)
    assert f == pytest.approx(t["objective"], rel=1e-13)
    assert np.linalg.norm(g) <= 1e-13 * max(1.0, np.linalg.norm(x))
    assert np.linalg.norm(W) == pytest.approx(t["W_norm"], rel=1e-13, abs=1e-300)
    assert np.linalg.norm(H) == pytest.approx(t["H_norm"], rel=1e-13, abs=1e-300)


@pytest.mark.parametrize("K", [2, 3, 10])
def test_scalar_reduction(K):
    """Explicit root = Brent root of g'; g' vanishes there; the threshold is where g'(0) = rho - 1 changes sign;
    the optimum is continuous across it (t* -> 0, f* -> log K)."""
    for rho in (1e-8, 1e-3, 0.3, 0.9, 0.999):
        t = theory.optimal_product(K, rho)
        assert t == pytest.approx(theory.optimal_product(K, rho, method="brentq"), rel=1e-13)
        assert abs(theory.scalar_derivative(t, K, rho)) <= 1e-13 * rho
        assert theory.scalar_derivative(0.0, K, rho) == pytest.approx(rho - 1.0, rel=1e-14)
        assert theory.scalar_objective(t, K, rho) <= theory.scalar_objective([0.0, 0.5 * t, 2 * t], K, rho).min()
    for rho in (1.0, 1.5):
        assert theory.optimal_product(K, rho) == 0.0 and theory.scalar_derivative(0.0, K, rho) >= 0
    n = 2
    lam = (1 - 1e-12) / (K * math.sqrt(n))
    assert theory.optimum(K, n, lam, lam)["objective"] == pytest.approx(math.log(K), rel=1e-11)


def test_jax_objective_matches_numpy_and_keeps_small_losses():
    rng = np.random.default_rng(1)
    K, n, d = 3, 2, 4
    W, H, b = rng.standard_normal((K, d)), rng.standard_normal((K * n, d)), rng.standard_normal(K)
    data = CEData(jnp.asarray(np.repeat(np.eye(K), n, axis=0)), jnp.asarray(0.3), jnp.asarray(0.2), jnp.asarray(0.1))
    f = float(jax.jit(ce_loss)({"W": jnp.asarray(W), "H": jnp.asarray(H), "b": jnp.asarray(b)}, data))
    assert f == pytest.approx(theory.full_objective(W, H, b, np.repeat(np.arange(K), n), 0.3, 0.2, 0.1), rel=1e-14)
    # a confident sample: CE = log1p(exp(-40)) = 4.25e-18, which log(sum exp) - z_y rounds to 0; a large logit
    Z = jnp.asarray([[40.0, 0.0], [0.0, 800.0]])
    ce = np.asarray(jax.jit(cross_entropy)(Z, jnp.asarray([[1.0, 0.0], [1.0, 0.0]])))
    assert ce[0] == pytest.approx(math.log1p(math.exp(-40.0)), rel=1e-15) and ce[1] == pytest.approx(800.0, rel=1e-15)


def test_problem_validation_names_the_field():
    assert CEProblem(C=4, d=3).d == 3 and CEProblem().d == 4 and CEProblem(bias="0.5").lambda_b == 0.5
    for kwargs, field in [
        ({"C": 1}, "C"),
        ({"d": 2}, "d"),
        ({"n": 0}, "n"),
        ({"lambda_W": 0.0}, "lambda_W"),
        ({"lambda_H": 1e7}, "lambda_H"),
        ({"bias": "free"}, "bias"),
        ({"bias": 0.0}, "bias"),
        ({"bias": 1e4}, "bias"),
        ({"restarts": 0}, "restarts"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(InputError) as err:
            CEProblem(**kwargs)
        assert err.value.field == field and "\n" not in str(err.value)


def test_checks_reject_a_wrong_closed_form():
    """The closed-form point passes; the same point against a planted wrong formula (margin K t instead of
    K t/(K-1); ratio sqrt(lambda_H/lambda_W) without n) fails the checks that test that formula."""
    problem = CEProblem(C=3, n=2, d=3, lambda_W=1e-2, lambda_H=2e-2)
    t = theory.optimum(3, 2, 1e-2, 2e-2)
    W, H, b = theory.optimal_point(3, 2, 3, 1e-2, 2e-2)
    f = theory.full_objective(W, H, b, problem.labels, 1e-2, 2e-2)
    assert all(c.passed for c in checks.solution_checks(problem, W, H, b, f, t)[0])
    wrong = {**t, "margin": 3 * t["t"], "ratio": math.sqrt(2.0)}
    failed = {c.name for c in checks.solution_checks(problem, W, H, b, f, wrong)[0] if not c.passed}
    assert failed == {checks.GEOMETRY[3], checks.GEOMETRY[4]}


def test_scalar_certificate_passes_and_rejects_a_wrong_reduction():
    """proofs_check's scalar certificate (numpy only, ~0.1 s): PASS as shipped; a root without the (K-1)/K factor,
    or a threshold at rho = 1/2, turns it FAIL."""
    assert proofs_check_ce.scalar_reduction().verdict == "PASS"
    no_factor = lambda K, rho, method="explicit": 0.0 if rho >= 1 else math.log1p((1 - rho) * K / rho)
    assert proofs_check_ce.scalar_reduction(root=no_factor).verdict == "FAIL"
    early = lambda K, rho, method="explicit": 0.0 if rho >= 0.5 else theory.optimal_product(K, rho)
    assert proofs_check_ce.scalar_reduction(root=early).verdict == "FAIL"


def test_family_runs_both_regimes_and_a_bias():
    """The trivial W = H = 0 (geometry VOID, nothing failed) and a nonzero optimum, both with a decayed bias
    (b = 0; one compiled shape; the bias-free one is the CLI test's)."""
    trivial = family.run(CEProblem(C=3, n=2, d=3, lambda_W=0.4, lambda_H=0.4, bias=0.1, restarts=2), progress=False)
    assert trivial.passed and trivial.numbers["zero_solution"], [c for c in trivial.checks if not c.passed]
    assert {c.name for c in trivial.checks if c.verdict == "VOID"} == set(checks.GEOMETRY)
    biased = family.run(CEProblem(C=3, n=2, d=3, lambda_W=1e-3, lambda_H=1e-3, bias=1e-2, restarts=2), progress=False)
    assert biased.passed and not biased.numbers["zero_solution"], [c for c in biased.checks if not c.passed]
    assert "bias b = 0 (abs, max |b_k|)" in {c.name for c in biased.checks if c.graded}


def test_cli_in_process(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--loss", "ce", "--C", "3", "--n", "2", "--restarts", "2", "--out", str(out), "--quiet"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stdout + stderr
    assert "ALL CHECKS PASS" in stdout and stderr == ""
    summary = json.loads((out / "summary.json").read_text())
    t = theory.optimum(3, 2, 5e-3, 5e-3)
    assert summary["passed"] and summary["config"]["C"] == 3 and summary["config"]["d"] == 3
    assert summary["numbers"]["objective"] == pytest.approx(t["objective"], rel=1e-10)
    arrays = np.load(out / "solution.npz")
    assert arrays["W"].shape == (3, 3) and arrays["H"].shape == (6, 3)
    assert np.linalg.norm(arrays["W"]) == pytest.approx(t["W_norm"], rel=1e-8)
    assert main(["--loss", "ce", "--C", "3", "--d", "1", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "argument --d:" in capsys.readouterr().err


def test_restarts_certificate_runs_on_one_instance():
    """The restarts certificate (a name clash once made it a NameError, so `python -m ufm.proofs_check` crashed):
    one instance, two restarts, PASS."""
    problem = proofs_check_ce.problem_at(3, 2, 3, "none", 0.05, restarts=2)
    assert proofs_check_ce.restarts_never_below(problems=(problem,)).verdict == "PASS"
