"""Nonnegative features (Models 1, 2) and memorization-dilation (Model 3) against their closed forms and KKT."""

import dataclasses
import io
import math
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.checks import Verdict
from ufm.checks import nonnegative as nn_checks
from ufm.families import memorization_dilation as md
from ufm.families import nonnegative as family
from ufm.objectives.nonnegative import cross_entropy, smoothed_targets
from ufm.problems import InputError
from ufm.problems import nonnegative as nn_problems
from ufm.problems.nonnegative import MemorizationDilationProblem, NonnegProblem
from ufm.solver import CONVERGED, MAX_STEPS, SADDLE, STALLED
from ufm.theory import nonnegative as theory


def run(**kwargs):
    return family.run(NonnegProblem(**{"n": 2, "restarts": 4, **kwargs}), progress=False)


def failed(report):
    return [(c.name, c.value, c.tol) for c in report.failed_checks]


@pytest.mark.parametrize("K, d", [(2, 2), (3, 3), (3, 6), (5, 10)])
@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_model2_matches_closed_form(K, d, alpha):
    # objective 1e-12, geometry 1e-8, KKT 1e-8 (ufm.checks.nonnegative)
    report = run(C=K, d=d, model="ufm", alpha=alpha)
    assert report.passed, failed(report)
    assert next(c for c in report.checks if "margin" in c.name).graded


def test_model2_k10():
    report = run(C=10, d=20, model="ufm", restarts=2)
    assert report.passed, failed(report)


def test_model2_zero_solution_past_threshold():
    K, lam = 3, 0.3
    t = theory.model2_optimum(K, 4, lam, lam, 0.0)
    assert t["zero"]
    # n = 4: with H = G*G the zero solution is a degenerate (quartic) minimum in G, where Newton converges only
    # linearly; the default restarts reach the 1e-12 gradient there (n = 2 starts can stall at ~1e-9, reported).
    report = family.run(NonnegProblem(C=K, n=4, model="ufm", lambda_W=lam, lambda_H=lam), progress=False)
    assert report.passed, failed(report)
    assert abs(report.numbers["objective"] - np.log(K)) < 1e-12


@pytest.mark.parametrize("K", [2, 3, 5])
def test_model1_ce_matches_closed_form(K):
    report = run(C=K, model="lpm", E_W=1.0, E_H=1.0)
    assert report.passed, failed(report)
    M = theory.max_margin(K, 1.0, 1.0)
    assert abs(report.numbers["objective"] - np.log1p((K - 1) * np.exp(-M))) < 1e-12


def test_model1_ls_below_budget_threshold_is_unique():
    K, alpha = 3, 0.1
    t = theory.model1_optimum(K, 1.0, 1.0, alpha)
    assert t["unique"]
    report = run(C=K, model="lpm", alpha=alpha)
    assert report.passed, failed(report)


def test_model1_ls_beyond_budget_is_not_unique():
    """M_max > m*_alpha: the optimal value is the entropy of q, reached with different geometries (reported)."""
    K, alpha = 3, 0.3
    t = theory.model1_optimum(K, 10.0, 10.0, alpha)
    assert not t["unique"]
    report = run(C=K, model="lpm", alpha=alpha, E_W=10.0, E_H=10.0)
    assert report.passed, failed(report)
    assert abs(report.numbers["objective"] - theory.target_entropy(K, alpha)) <= 1e-12 * theory.target_entropy(K, alpha)
    nonunique = next(c for c in report.checks if "not unique" in c.name)
    assert nonunique.value == 1.0 and not nonunique.graded  # demonstrated, and not a failure


def test_equal_margin_loss_at_m_star_is_target_entropy():
    for K, alpha in ((3, 0.1), (10, 0.3)):
        m = theory.smoothing_margin(K, alpha)
        assert abs(theory.equal_margin_loss(K, alpha, m) - theory.target_entropy(K, alpha)) < 1e-14


def md_problem(**kwargs):
    return MemorizationDilationProblem(**{"C": 3, "n": 6, "noise": 0.34, "restarts": 2, **kwargs})


def test_md_coupling_active_and_kkt():
    report = md.run(md_problem(r=1.0), progress=False)
    assert report.passed, failed(report)
    D, M = report.numbers["D"], report.numbers["M"]
    assert np.max(np.abs(M - D) / D) <= 1e-8  # r = 1, every constraint active
    assert report.numbers["kkt"]["residual"] <= 1e-8
    # the convergence record counts every outer step's inner solve, not the last one's alone (seen: "steps <= 1,
    # compile 0.0 s" after 8 outer steps); each inner solve takes at least one Newton step, which tests curvature
    assert report.convergence["max_steps_taken"] >= report.numbers["outer_steps"] >= 2


def test_md_large_r_approaches_model2_with_memorised_noisy_labels():
    """Model 2 on the noisy labels collapses the clean features (D = 0) while memorising (M > 0), so the coupling
    stays active for every finite r; as r grows the Model 3 optimum must approach Model 2's objective from above
    and fit every noisy label."""
    import jax.numpy as jnp

    from ufm.objectives.nonnegative import smoothed_targets

    base = md_problem(r=1.0)
    nn = NonnegProblem(C=3, n=6, d=6, model="ufm", restarts=2)
    data = family.objective_data(nn)._replace(Q=smoothed_targets(jnp.asarray(base.labels), 3, 0.0))
    model2 = float(
        np.min(
            family.minimise(
                family.model2_loss,
                family.random_params(nn, "ufm"),
                data,
                options=family.SOLVER,
                nonnegative=family.BOUNDS["ufm"],
            ).loss
        )
    )
    gaps, fitted = [], []
    for r in (3.0, 20.0):  # 20: the top of the accepted range
        out = md.solve(dataclasses.replace(base, r=r))
        gaps.append(out["objective"] - model2)
        fitted.append(md.measures(dataclasses.replace(base, r=r), out["W"], out["H"])["noisy_fitted"])
    assert -1e-12 <= gaps[1] < gaps[0], gaps
    assert fitted[1] == 1.0 and fitted[0] <= fitted[1], fitted


def test_md_ce_and_ls_use_identical_data():
    a, b = md_problem(alpha=0.0), md_problem(alpha=0.3)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.noisy_mask, b.noisy_mask)


def _feasible_features(problem: MemorizationDilationProblem, rng, count: int) -> np.ndarray:
    """``count`` random H >= 0 (count x d x N) meeting the coupling M_k <= r D_k: clean features at random scales,
    each noisy feature a convex combination ``(1 - t) mu_k + t z`` (z >= 0) with t at most what the coupling
    allows (many near that limit), so nonnegative and feasible by construction."""
    d, N = problem.d, problem.N
    clean = ~problem.noisy_mask
    H = np.zeros((count, d, N))
    for k in range(problem.C):
        ci = np.flatnonzero(clean & (problem.true_labels == k))
        ni = np.flatnonzero(problem.noisy_mask & (problem.true_labels == k))
        scale = rng.choice([1e-3, 0.1, 1.0, 10.0], size=(count, 1, 1))
        offset = rng.exponential(size=(count, d, 1)) * (rng.uniform(size=(count, 1, 1)) < 0.8)
        H[:, :, ci] = scale * rng.exponential(size=(count, d, ci.size)) + offset
        mu = H[:, :, ci].mean(axis=2, keepdims=True)
        D = np.sqrt(np.mean(np.sum((H[:, :, ci] - mu) ** 2, axis=1), axis=1))
        z = rng.choice([0.1, 1.0, 10.0], size=(count, 1, 1)) * rng.exponential(size=(count, d, ni.size))
        dist = np.linalg.norm(z - mu, axis=1).mean(axis=1)
        t = np.minimum(1.0, problem.r * D / dist) * rng.uniform(size=count) ** 0.2
        H[:, :, ni] = (1 - t[:, None, None]) * mu + t[:, None, None] * z
    return H


@pytest.mark.parametrize(
    "kwargs",
    [
        {"C": 2, "n": 3, "d": 2, "noise": 0.25, "r": 0.05},
        {"C": 3, "n": 10, "noise": 0.2, "r": 1.0},
        {"C": 4, "n": 5, "d": 4, "noise": 0.4, "r": 0.3, "alpha": 0.3},
        {"C": 3, "n": 4, "d": 3, "noise": 0.25, "r": 2.0},
    ],
)
def test_model3_zero_bound_holds_on_feasible_features(kwargs):
    """``sqrt(lambda_W lambda_H) >= bound`` proves W = H = 0 optimal through ``||A H^T|| <= bound ||H||`` on every
    feasible H (A the CE's gradient at 0, ufm.theory.nonnegative.coupled_zero_solution_bound): no random feasible H
    exceeds it, and at r = 0.05 they come within 0.5 % of it (the bound is exact as r -> 0)."""
    problem = MemorizationDilationProblem(**kwargs, restarts=1, seed=1)
    zero = theory.model3_zero_solution_optimal(problem.labels, problem.true_labels, 1.0, 1.0, problem.alpha, problem.r)
    A = 1.0 / problem.C - np.asarray(smoothed_targets(jnp.asarray(problem.labels), problem.C, problem.alpha))
    A /= problem.N
    H = _feasible_features(problem, np.random.default_rng(0), 20000)
    ratio = np.linalg.norm(np.einsum("kn,bdn->bkd", A, H), axis=(1, 2)) / np.linalg.norm(H, axis=(1, 2))
    assert zero["bound"] == min(zero["any_labels_bound"], zero["coupled_bound"])
    assert ratio.max() <= zero["bound"] * (1 + 1e-12), (ratio.max(), zero)
    if problem.r == 0.05:
        assert ratio.max() >= 0.995 * zero["coupled_bound"]


@pytest.mark.parametrize("K, n, alpha", [(2, 3, 0.0), (3, 5, 0.2), (5, 4, 0.0)])
def test_model3_zero_bound_without_noise_is_model2s(K, n, alpha):
    """Without noisy labels (confusion n I) the coupled bound is the Model 2 threshold (1 - alpha) sqrt(n (K-1)/K)
    / N: the nonnegative maximum of ||P rho|| is sqrt((K-1)/K), at a coordinate vector."""
    coupled = theory.coupled_zero_solution_bound(n * np.eye(K), 0, 1.0, alpha)
    assert coupled == pytest.approx(theory.zero_solution_bound(np.full(K, n), K * n, alpha), rel=1e-14)


def test_max_on_nonnegative_sphere_matches_sampling():
    """Exact by its supports: never below a dense sample of the nonnegative unit sphere, and within 1 % above it
    (K = 3); a PSD matrix with a positive top eigenvector gives lambda_max."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        B = rng.standard_normal((3, 3))
        S = B.T @ B
        x = np.abs(rng.standard_normal((200000, 3)))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        sampled = np.max(np.einsum("bi,ij,bj->b", x, S, x))
        exact = theory._max_on_nonnegative_sphere(S)
        assert sampled <= exact * (1 + 1e-12) and exact <= 1.01 * sampled, (sampled, exact)
    S = np.ones((4, 4)) + np.eye(4)
    assert theory._max_on_nonnegative_sphere(S) == pytest.approx(np.linalg.eigvalsh(S)[-1], rel=1e-14)


@pytest.mark.parametrize(
    "cls, kwargs, field",
    [
        (NonnegProblem, {"C": 1}, "C"),
        (NonnegProblem, {"C": 4, "d": 3}, "d"),
        (NonnegProblem, {"E_W": 0.0}, "E_W"),
        (NonnegProblem, {"lambda_H": -1.0}, "lambda_H"),
        (NonnegProblem, {"alpha": 1.0}, "alpha"),
        (MemorizationDilationProblem, {"noise": 1.0}, "noise"),
        (MemorizationDilationProblem, {"r": 0.0}, "r"),
        (MemorizationDilationProblem, {"alpha": -0.1}, "alpha"),
    ],
)
def test_bad_input(cls, kwargs, field):
    with pytest.raises(InputError) as info:
        cls(**kwargs)
    assert info.value.field == field


# ------------------------------------------------------------------------------------------ regression tests
# Shapes are shared where possible (K = 3, n = 2, d = 6, 3 restarts; md: K = 2, n = 4, d = 4, 3 restarts) so that one
# compiled solve serves several tests.


EPS = float(np.finfo(np.float64).eps)


def small(**kwargs):
    return NonnegProblem(**{"C": 3, "n": 2, "d": 6, "restarts": 3, **kwargs})


def check(report, prefix):
    return next(c for c in report.checks if c.name.startswith(prefix))


def cli(argv, tmp_path):
    from ufm.solve import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(argv + ["--quiet", "--out", str(tmp_path / "out")])
    return code, err.getvalue().strip()


@pytest.mark.parametrize("margin", [12.0, 40.0, 300.0])
def test_cross_entropy_is_relatively_accurate_at_large_margins(margin):
    """Logits with every margin m: the CE is log1p((K-1) e^{-m}) (numpy's log1p, independent) and its derivative at
    the true logit is -(K-1)e^{-m}/(1 + (K-1)e^{-m}); both to 4 eps relative (the old log_softmax form: 4e-12 at
    m = 12, exactly 0 at m = 40; its true-logit derivative carries an absolute error eps)."""
    K = 3
    Z = jnp.asarray(np.array([[margin, 0.0, 0.0], [0.0, margin, 0.0]]).T)  # columns: samples of classes 0, 1
    Q = smoothed_targets(jnp.array([0, 1]), K, 0.0)
    x = (K - 1) * math.exp(-margin)
    assert abs(float(cross_entropy(Z, Q)) - math.log1p(x)) <= 4 * EPS * math.log1p(x)
    g = np.asarray(jax.grad(cross_entropy)(Z, Q))
    true = -x / (1 + x) / 2  # mean over the 2 samples
    assert abs(g[0, 0] - true) <= 4 * EPS * abs(true) and abs(g[1, 1] - true) <= 4 * EPS * abs(true)


def test_cross_entropy_label_smoothing_matches_logsumexp():
    """LS targets and random logits: ``logsumexp(z) - q.z`` (numpy, independent) to 1e-15 relative."""
    rng = np.random.default_rng(3)
    K, N = 4, 9
    Z = rng.standard_normal((K, N)) * 5
    labels = rng.integers(0, K, N)
    Q = np.asarray(smoothed_targets(jnp.asarray(labels), K, 0.3))
    top = Z.max(axis=0)
    expected = np.mean(top + np.log(np.sum(np.exp(Z - top), axis=0)) - np.sum(Q * Z, axis=0))
    assert abs(float(cross_entropy(jnp.asarray(Z), jnp.asarray(Q))) - expected) <= 1e-15 * expected


def test_model1_large_budgets_objective_within_float64():
    """Reported: --loss nonneg-lpm --C 3 --n 2 --E-W 10 --E-H 10 failed the objective at 4.4e-12 (log_softmax's
    absolute rounding of a loss ~1e-5); now within 1e-12 relative."""
    report = family.run(small(model="lpm", E_W=10.0, E_H=10.0), progress=False)
    assert report.passed, failed(report)
    assert check(report, "objective").value <= 1e-12


def test_model1_huge_budgets_loss_does_not_underflow(tmp_path):
    """Reported: --E-W 100 --E-H 100 gave the loss -0 (closed form 1.29e-53) and 'converged' 70 % off the margins.
    At M_max = 49 (loss 2e-21, also 0 in the old form) the CE keeps its relative accuracy and the loss-scaled
    passes make the gradient test relative to it; M_max = 122 itself is refused (the relative gradient's rounding
    floor reaches the tolerance there: restarts stall)."""
    report = family.run(small(model="lpm", E_W=40.0, E_H=40.0), progress=False)
    assert report.passed, failed(report)
    assert 0 < report.numbers["objective"] < 1e-20 and check(report, "objective").value <= 1e-12
    code, err = cli(["--loss", "nonneg-lpm", "--C", "3", "--n", "2", "--E-W", "100", "--E-H", "100"], tmp_path)
    assert code == 2 and "M_max" in err and len(err.splitlines()) == 1


def test_model1_tiny_budgets_are_refused(tmp_path):
    """Reported: --E-W 1e-6 --E-H 1e-6 'converged' 94 % off the optimum (the geometry is decided at order
    M_max^2 = 1.5e-12 of the loss, under the gradient tolerance): now refused, exit 2, one line."""
    with pytest.raises(InputError) as info:
        NonnegProblem(model="lpm", C=3, E_W=1e-6, E_H=1e-6)
    assert info.value.field == "E_W" and "M_max" in info.value.message
    code, err = cli(["--loss", "nonneg-lpm", "--C", "3", "--n", "2", "--E-W", "1e-6", "--E-H", "1e-6"], tmp_path)
    assert code == 2 and len(err.splitlines()) == 1 and "--E-W" in err
    low, high = nn_problems.M_MAX_RANGE
    K = 3
    NonnegProblem(model="lpm", C=K, E_W=1.0, E_H=low**2 * (K - 1) / K * (1 + 1e-12))  # the ends are accepted
    NonnegProblem(model="lpm", C=K, E_W=1.0, E_H=high**2 * (K - 1) / K * (1 - 1e-12))


def test_model2_tiny_weight_decay_objective_within_float64():
    """Reported: --loss nonneg-ufm at weight decays 1e-9 failed the objective at 1.8e-9 and left the geometry at
    8.7e-9 of its 1e-8 tolerance; now the objective to 1e-12 and the geometry far inside."""
    report = family.run(small(model="ufm", lambda_W=1e-9, lambda_H=1e-9), progress=False)
    assert report.passed, failed(report)
    assert check(report, "objective").value <= 1e-12
    assert check(report, "classifier").value <= 1e-10


def test_model2_unbalanced_weight_decays():
    """lambda_W / lambda_H = 1e-15: the balanced solve (exact rescaling) certifies it (unbalanced: every restart ran
    out of steps 1.6 % above the optimum)."""
    report = family.run(small(model="ufm", lambda_W=1e-12, lambda_H=1e3), progress=False)
    assert report.passed, failed(report)


def test_model2_weight_decay_range_and_threshold_band():
    with pytest.raises(InputError) as info:
        NonnegProblem(model="ufm", lambda_W=1e-16)
    assert info.value.field == "lambda_W"
    K, n = 3, 2
    threshold = (K - 1) / K / math.sqrt(n * K * (K - 1))  # lambda at gamma = (K-1)/K
    with pytest.raises(InputError) as info:  # margin ~ K 1e-6 < 1e-3
        NonnegProblem(model="ufm", C=K, n=n, lambda_W=threshold * (1 - 1e-6), lambda_H=threshold * (1 - 1e-6))
    assert info.value.field == "lambda_W" and "threshold" in info.value.message
    NonnegProblem(model="ufm", C=K, n=n, lambda_W=threshold, lambda_H=threshold)  # the zero solution itself: fine


def test_model2_zero_solution_from_the_zero_start_with_void_geometry():
    """Past the threshold the zero start W = G = 0 is exact (objective log K to the last bit), the geometry checks
    are VOID with their reason, objective and KKT graded; n = 2 random starts alone stalled near 1e-9."""
    p = small(model="ufm", lambda_W=1.0, lambda_H=1.0)
    assert family.zero_start(p) and family.batch_size(p) == p.restarts + 1
    report = family.run(p, progress=False)
    assert report.passed, failed(report)
    assert abs(report.numbers["objective"] - math.log(3)) <= 4 * EPS * math.log(3)  # log1p(K-1) vs log K: 1 ulp
    void = [c for c in report.checks if c.verdict is Verdict.VOID]
    assert {c.name for c in void} == set(family.GEOMETRY_NAMES) and all("W = H = 0" in c.void for c in void)
    assert check(report, "objective").graded and check(report, "KKT").graded


def test_model2_zero_start_below_the_threshold_is_a_saddle_escaped_or_named():
    """Below the threshold W = G = 0 is a saddle; it is a start all the same (one batch size on both sides of the
    threshold: a decay sweep compiles once). The solver leaves it along negative curvature (here to the optimum:
    all four starts end at 0.0994249) or reports it SADDLE; it is never the best restart unless it reached the
    best objective."""
    p = small(model="ufm")
    assert family.zero_start(p) and family.batch_size(p) == p.restarts + 1
    report = family.run(p, progress=False)
    assert report.passed, failed(report)
    losses, status = report.numbers["restart_losses"], report.numbers["restart_status"]
    assert status[-1] in (CONVERGED, SADDLE)
    if status[-1] == CONVERGED:
        assert abs(losses[-1] - report.numbers["objective"]) <= 1e-12 * report.numbers["objective"]
    else:
        assert report.numbers["best"] != len(losses) - 1


def test_converged_check_names_saddles_and_non_convergence():
    rel = np.array([1e-13, 1e-13, 1e-13])
    every_saddle = nn_checks.converged("c", np.array([SADDLE] * 3), rel, 0, 1e-12)
    assert not every_saddle.passed and np.isfinite(every_saddle.value)
    assert "every element ended at a saddle point" in every_saddle.detail and "3 saddle point" in every_saddle.detail
    none = nn_checks.converged("c", np.array([STALLED, MAX_STEPS, SADDLE]), rel, 1, 1e-12)
    assert not none.passed and "no element converged" in none.detail and "maximum number of steps" in none.detail
    lower = nn_checks.converged("c", np.array([CONVERGED, STALLED, CONVERGED]), rel, 1, 1e-12)
    assert not lower.passed and "lowest point found did not converge" in lower.detail
    assert nn_checks.converged("c", np.array([CONVERGED, STALLED, CONVERGED]), rel, 0, 1e-12).passed


def test_run_without_a_converged_restart_is_a_named_failure(monkeypatch):
    """One Newton step and no L-BFGS phase: no restart converges; the run reports it (finite values), no traceback."""
    from ufm.objectives import nonnegative as objective

    one_step = dataclasses.replace(objective.MODEL2_SOLVER, quasi_newton_steps=0, max_steps=1)
    monkeypatch.setattr(objective, "MODEL2_SOLVER", one_step)
    report = family.run(NonnegProblem(C=2, n=1, d=2, restarts=2, model="ufm"), progress=False)
    conv = check(report, "solver converged")
    assert not conv.passed and "no element converged" in conv.detail
    assert all(np.isfinite(c.value) for c in report.checks if c.graded)


def test_unused_flags_are_refused(tmp_path):
    assert family.UNUSED_FLAGS == {"nonneg-lpm": {"lambda_W", "lambda_H"}, "nonneg-ufm": {"E_W", "E_H"}}
    code, err = cli(["--loss", "nonneg-lpm", "--lambda-W", "0.1"], tmp_path)
    assert code == 2 and "--lambda-W" in err and len(err.splitlines()) == 1
    code, err = cli(["--loss", "nonneg-ufm", "--E-H", "2"], tmp_path)
    assert code == 2 and "--E-H" in err


def test_memory_estimate_from_sizes_only():
    import time

    t0 = time.perf_counter()
    huge = NonnegProblem(C=10**6, model="ufm")  # constructing allocates nothing
    needed, field = family.memory_estimate(huge)
    assert time.perf_counter() - t0 < 0.5 and field == "C" and needed > 2**50  # petabytes
    assert family.memory_estimate(NonnegProblem(C=3, n=10**5))[1] == "n"
    assert family.memory_estimate(NonnegProblem(C=2, n=1, restarts=10**7))[1] == "restarts"
    default, _ = family.memory_estimate(NonnegProblem())
    assert default < 1.5e9  # matrix-free at the default size (1000 variables): the estimate is tens of MB
    md_needed, md_field = md.memory_estimate(MemorizationDilationProblem(C=10**5, n=10))
    assert md_field == "C" and md_needed > 2**60


def test_no_ufm_module_imports_experiments():
    """Reported: the md sweep imported experiments.pipeline, which calls matplotlib.use("Agg") (a notebook user's
    backend switched). No ufm module imports experiments; importing the md family loads neither."""
    root = Path(__file__).resolve().parents[1] / "ufm"
    layers = [p for p in root.rglob("*.py") if p.parent.name not in ("experiments", "proofs_check")]
    offenders = [
        str(p)
        for p in layers
        if any(
            line.strip().startswith(("import ufm.experiments", "from ufm.experiments"))
            for line in p.read_text().splitlines()
        )
    ]
    assert not offenders
    code = (
        "import sys, ufm.families.memorization_dilation as m; "
        "assert 'ufm.experiments' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root.parent)


def md_small(**kwargs):
    return MemorizationDilationProblem(**{"C": 2, "n": 4, "d": 4, "restarts": 3, **kwargs})


def test_md_constraint_residual_has_the_absolute_value():
    """Slack (c = -0.1) with multiplier 1: not a KKT point; the old max(c, -nu/rho) = -0.1 passed."""
    c, nu, scale = np.array([[-0.1, 0.0]]), np.array([[1.0, 0.0]]), np.array([1.0])
    assert md.constraint_residual(c, nu, 10.0, scale)[0] == pytest.approx(0.1)
    assert md.constraint_residual(np.array([[-0.1, 0.0]]), np.array([[0.0, 2.0]]), 10.0, scale)[0] == 0.0
    assert md.constraint_residual(np.array([[0.01, 0.0]]), np.array([[0.0, 0.0]]), 10.0, scale)[0] == pytest.approx(
        0.01
    )


def test_md_stops_only_when_complementary():
    """Reported: --loss md --C 2 --n 4 --lambda-W 0.1 --lambda-H 0.1 stopped with both multipliers 0.088 > 0 and the
    coupling slack by 1e-4 relative; now every constraint with a multiplier is active to 1e-8."""
    report = md.run(md_small(lambda_W=0.1, lambda_H=0.1), progress=False)
    assert report.passed, failed(report)
    comp = check(report, "complementarity")
    assert comp.graded and comp.value <= 1e-8


def test_md_tiny_weight_decay_converges():
    """Reported: --loss md --C 2 --n 4 --lambda-W 1e-7 --lambda-H 1e-7 crashed (np.ptp of no converged restart):
    with the objective in its own units (7.5e-6) every restart converges and the point is certified."""
    report = md.run(md_small(lambda_W=1e-7, lambda_H=1e-7), progress=False)
    assert report.passed, failed(report)


def test_md_zero_solution_is_the_candidate_with_void_checks():
    """Reported: --loss md --C 2 --n 4 --lambda-W 1 --lambda-H 1: the optimum W = H = 0 (proved: sqrt(lambda_W
    lambda_H) = 1 >= the bound) made the ratio checks 0/0; now they are VOID with the reason, the objective (log K)
    and the KKT of f graded."""
    report = md.run(md_small(lambda_W=1.0, lambda_H=1.0), progress=False)
    assert report.passed, failed(report)
    assert report.numbers["best_is_zero"] and abs(report.numbers["objective"] - math.log(2)) <= 4 * EPS * math.log(2)
    void = [c for c in report.checks if c.verdict is Verdict.VOID]
    assert len(void) >= 5 and all("W = H = 0" in c.void for c in void)
    assert check(report, "objective = log K").graded and check(report, "KKT").graded


def test_md_without_convergence_is_a_named_failure(monkeypatch):
    """One outer step: nothing converges; checks and the sweep report it by name (the sweep crashed on np.ptp)."""
    p = md_small(lambda_W=1e-7, lambda_H=1e-7)
    out = md.solve(p, outer_steps=1)
    result, _ = md.solution_checks(p, out)
    conv = next(c for c in result if c.name == md.CONVERGED_NAME)
    assert not conv.passed and "no element converged" in conv.detail
    assert all(np.isfinite(c.value) for c in result if c.graded)
    spread = next(c for c in result if c.name.startswith("restarts: spread"))
    assert spread.verdict is Verdict.VOID
    one_step = md.solve_steps  # the sweep's solves, written as steps (joined across its points)
    monkeypatch.setattr(md, "solve_steps", lambda problem, **options: one_step(problem, outer_steps=1, **options))
    curve, failures, seconds = md.sweep(p, r_values=(1.0,), alphas=(0.0,), progress=False)
    assert seconds[0] > 0 and seconds[1] > 0  # the solver's own compile and solve time (compile was 0.0 before)
    assert failures and md.CONVERGED_NAME in failures[0] and np.isnan(curve["D_restart_spread"][0])


def test_md_ranges_and_sweep_flags():
    with pytest.raises(InputError) as info:
        MemorizationDilationProblem(C=3, n=5, r=1e6)
    assert info.value.field == "r"
    with pytest.raises(InputError):
        MemorizationDilationProblem(C=3, n=5, r=1e-6)
    import argparse

    parser = argparse.ArgumentParser()
    md.add_arguments(parser)
    assert md.problem_from_args(parser.parse_args(["--sweep", "r"])).r == 1.0
    for flags, field in ((["--r", "2"], "r"), (["--ls-alpha", "0.1"], "alpha")):
        with pytest.raises(InputError) as info:
            md.problem_from_args(parser.parse_args(["--sweep", "r", *flags]))
        assert info.value.field == field


# --------------------------------------------------- defects found by the property tests (tests/test_properties_*)


def test_md_penalty_rises_only_for_the_constraint_residual():
    assert md.next_penalty(10.0, worst=1e-3, previous=2e-3, tol=1e-11) == 100.0  # residual stalls: raise
    assert md.next_penalty(10.0, worst=1e-4, previous=1e-3, tol=1e-11) == 10.0  # residual falls fast: keep
    assert md.next_penalty(1e3, worst=2e-14, previous=1e-14, tol=1e-11) == 1e3  # only inner solves unfinished
    assert md.next_penalty(1e6, worst=1.0, previous=1.0, tol=1e-11) == md.RHO_MAX


def test_accept_rounding_floor():
    """A STALLED element at a minimum with gradient below sqrt(2 lambda_max delta_f) and relative gradient <= 1e-8
    is accepted; on negative curvature, or above FLOOR_RTOL, it is not."""
    from ufm.solver import Solution

    def fun(params, args):
        x = params["x"]
        return 1.0 + jnp.sum(args * x**2)

    x = jnp.asarray([[1e-9, 0.0], [1e-9, 0.0], [1e-6, 0.0], [1e-9, 0.0]])
    g = np.array([2e-9, 2e-9, 2e-6, 2e-9])
    sol = Solution(
        params={"x": x},
        loss=np.ones(4),
        grad_norm=g,
        rel_grad_norm=g,
        steps=np.ones(4, int),
        status=np.array([STALLED, STALLED, STALLED, MAX_STEPS]),
        compile_seconds=0.0,
        solve_seconds=0.0,
        rtol=1e-12,
        min_eigenvalue=np.zeros(4),
    )
    curvature = [jnp.asarray([1.0, 1.0]), jnp.asarray([1.0, -1.0]), jnp.asarray([1.0, 1.0]), jnp.asarray([1.0, 1.0])]
    accepted_sol, accepted = family.accept_rounding_floor(sol, fun, None, lambda i: curvature[i])
    assert list(accepted) == [0] and accepted[0][0] <= accepted[0][1]
    assert list(accepted_sol.status) == [CONVERGED, STALLED, STALLED, MAX_STEPS]


def test_kkt_residual_scales_each_block():
    """Model 1 at E_W = 1.9e-6, E_H = 1e3 (W ~ 1e-3, H ~ 30): a W-gradient of 3e-9 is rounding of terms ~ max|H|/N,
    not a violation (the shared scale (1 + max|W|)/N made it 2.4e-8 > 1e-8)."""
    N = 8
    W, H = np.full((4, 4), 1e-3), np.full((4, N), 30.0)
    out = nn_checks.kkt_residual(np.full((4, 4), 3e-9), W, np.zeros((4, N)), H, budgets=False)
    assert out["residual"] == pytest.approx(3e-9 / (31.0 / N))
    assert out["residual"] < 1e-8


def test_label_smoothing_corners_are_refused():
    """Model 1 with LS far beyond the budget condition (M_max = 1e4 m*: stalled, KKT 1.7e-8) and Model 2 with LS at
    a weight-decay term gamma m* below 1e-6 of the loss (alpha = 0.984, lambda_W lambda_H = 1e-12: converged 1.3e-5
    off the geometry) are refused; CE at the same weight decays is not."""
    with pytest.raises(InputError) as info:
        NonnegProblem(
            model="lpm", C=4, alpha=0.999, E_W=1.0, E_H=(1e4 * theory.smoothing_margin(4, 0.999)) ** 2 * 3 / 4
        )
    assert "m*_alpha" in info.value.message
    with pytest.raises(InputError) as info:
        NonnegProblem(model="ufm", C=2, n=1, alpha=0.984375, lambda_W=1e-15, lambda_H=1e3)
    assert "gamma m*" in info.value.message
    NonnegProblem(model="ufm", C=2, n=1, alpha=0.0, lambda_W=1e-15, lambda_H=1e3)
    NonnegProblem(model="ufm", C=2, n=1, alpha=0.5, lambda_W=1e-6, lambda_H=1e-6)  # share 2e-6: accepted
