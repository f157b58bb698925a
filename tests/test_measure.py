"""``ufm measure FEATURES.npz`` (``python -m ufm.measure``, ``ufm.measure.measure``): features at a UFM optimum measure
distance ~ 0 and NC1 ~ 0, noise of known size the distance it implies, the NC metrics agree with independent
implementations of the peers' definitions (rank-deficient Sigma_B included), memorization and dilation with their
definitions on a configuration computed by hand, and bad input is refused in one line before anything is written.
"""

import json

import numpy as np
import pytest
from inprocess import assert_refused, run_main

import ufm
from ufm import measure, metrics
from ufm.etf import simplex_etf
from ufm.theory import mixup as theory

EPS = np.finfo(float).eps
C, D, M_ETF, MU = 4, 6, 1.3, 0.02


def write_npz(folder, name="features.npz", **arrays):
    path = folder / name
    np.savez(path, **arrays)
    return path


def optimum(C=C, d=D, m=M_ETF, mu=MU):
    """Features exactly at Theorem 3.1's optimum (closed form): 5 clean samples per class (target e_c, the
    same-class optimum) and every (c, c', lambda) of an 11-point grid as mixed inputs."""
    W = simplex_etf(C, d, m, 0)
    c, cp, lam = (a.ravel() for a in np.meshgrid(np.arange(C), np.arange(C), np.linspace(0, 1, 11), indexing="ij"))
    labels = np.repeat(np.arange(C), 5)
    features = theory.optimal_features(W, m, mu, labels, labels, np.ones(labels.size))
    mixed = theory.optimal_features(W, m, mu, c, cp, lam)
    return {
        "features": features,
        "labels": labels,
        "W": W,
        "mixed_features": mixed,
        "mixed_labels": np.stack([c, cp], axis=1),
        "mixed_lambda": lam,
    }


def rounding_tolerance(kappa: float) -> float:
    """What float64 delivers for the optimum's features: 100 eps (1 + kappa), the conditioning-scaled tolerance the
    mixup family grades its features with (the Hessian's condition number is ~ 1 + kappa)."""
    return 100 * EPS * (1 + kappa)


def summary_of(tmp_path, arrays, name="run"):
    path = write_npz(tmp_path, **arrays)
    out = run_main("ufm.measure", str(path), "--out", str(tmp_path / name), "--quiet")
    assert out.code == 0, out.stderr
    return json.loads((tmp_path / name / "summary.json").read_text()), out


# ---------------------------------------------------------------------------------------------------------------
# At the optimum, and near it
# ---------------------------------------------------------------------------------------------------------------


def test_closed_form_optimum_measures_distance_zero_nc1_zero_and_the_true_m_and_mu(tmp_path):
    summary, out = summary_of(tmp_path, optimum())
    kappa = theory.kappa(C, M_ETF, MU)
    tol = rounding_tolerance(kappa)
    fit = summary["numbers"]["mixup"]["fit"]
    assert fit["distance_relative"] <= tol and fit["distance_relative_different_class"] <= tol
    assert not fit["kappa_at_bound"]
    assert abs(fit["m"] - M_ETF) <= 10 * EPS * M_ETF  # the ETF's Gram matrix gives m to rounding
    assert abs(fit["mu"] - MU) <= tol * MU and abs(fit["kappa"] - kappa) <= tol * kappa
    # NC1 is quadratic in the within-class spread: each class's samples are the same vector to rounding.
    nc = summary["numbers"]["neural_collapse"]
    assert 0 <= nc["ufm"]["nc1"] <= (C - 1) * tol**2
    assert nc["ufm"]["nc3"] <= tol**2 and nc["ufm"]["nc4"] == 0.0 and nc["nc_toolbox"]["nc4_agreement"] == 1.0
    mix = summary["numbers"]["mixup"]
    assert mix["alignment_min"] >= 1 - tol and mix["lambda_spread"] <= tol and mix["span_residual_max"] <= tol
    assert mix["boundary_side_share"] == 1.0
    assert abs(mix["bulge_ratio"] - theory.half_mix_bulge_ratio(C, kappa)) <= tol
    for row in mix["boundary_distance_by_lambda"]:
        assert abs(row["measured"] - row["theory"]) <= tol * (1 + abs(row["theory"]))
    assert "distance to the optimum, relative" in out.stdout and (tmp_path / "run" / "measures.npz").exists()


def test_noise_outside_the_classifier_span_is_measured_exactly(tmp_path):
    """Noise orthogonal to W's row space: every h*(kappa) lies in that space, so the fit is unchanged and the RMS
    distance is the noise's own, to rounding (relative 1e-10: the subtraction h - h* is exact to eps ||h|| ~ 1e-16,
    against a distance of 1e-3)."""
    arrays = optimum()
    W = arrays["W"]
    basis = np.linalg.svd(W)[2][C - 1 :]  # (d - C + 1) x d, orthonormal, orthogonal to every w_c
    rng = np.random.default_rng(3)
    noise = 1e-3 * rng.standard_normal((len(arrays["mixed_features"]), basis.shape[0])) @ basis
    arrays["mixed_features"] = arrays["mixed_features"] + noise
    fit = summary_of(tmp_path, arrays)[0]["numbers"]["mixup"]["fit"]
    expected = np.sqrt(np.mean(np.sum(noise**2, axis=1)))
    assert abs(fit["distance_rms"] - expected) <= 1e-10 * expected
    assert abs(fit["mu"] - MU) <= rounding_tolerance(theory.kappa(C, M_ETF, MU)) * MU


def test_isotropic_noise_implies_its_distance_up_to_the_one_fitted_parameter(tmp_path):
    """Gaussian noise in every direction: at the true kappa the distance is the noise's RMS exactly, and the fit can
    only lower it, by the noise's component along the one direction d h*/d kappa (1 of M d = 1056 degrees of
    freedom: expected relative change 5e-4; bound 5e-2)."""
    arrays = optimum()
    rng = np.random.default_rng(4)
    noise = 1e-3 * rng.standard_normal(arrays["mixed_features"].shape)
    arrays["mixed_features"] = arrays["mixed_features"] + noise
    fit = measure.measure(**arrays).numbers["mixup"]["fit"]
    expected = np.sqrt(np.mean(np.sum(noise**2, axis=1)))
    assert expected * (1 - 5e-2) <= fit["distance_rms"] <= expected * (1 + 1e-9)


def test_solver_optimum_from_ufm_run_measures_distance_zero():
    report = ufm.run(ufm.MixupProblem(C=3, d=4, n_lambdas=5))
    a = report.arrays
    same = a["c"] == a["c_prime"]
    result = measure.measure(
        a["h"][same],
        a["c"][same],
        a["W"],
        mixed_features=a["h"],
        mixed_labels=np.stack([a["c"], a["c_prime"]], axis=1),
        mixed_lambda=a["lam"],
    )
    fit = result.numbers["mixup"]["fit"]
    kappa = report.config["kappa"]
    tol = rounding_tolerance(kappa)  # the tolerance the family itself grades these features with
    assert fit["distance_relative"] <= tol and abs(fit["mu"] - report.config["mu"]) <= tol * report.config["mu"]
    assert result.numbers["neural_collapse"]["ufm"]["nc1"] <= (3 - 1) * tol**2


# ---------------------------------------------------------------------------------------------------------------
# NC1-NC4 against independent implementations of the peers' documented definitions
# ---------------------------------------------------------------------------------------------------------------


def random_case(rank_deficient: bool, seed: int = 0):
    """Unbalanced classes (K = 5, 7..16 samples), d = 8; with ``rank_deficient`` the class means span 2 dimensions
    (e_1, e_2) only, so Sigma_B has rank 2 < K - 1 and its other eigenvalues are rounding noise (~1e-33)."""
    rng = np.random.default_rng(seed)
    K, d = 5, 8
    counts = rng.integers(7, 17, size=K)
    labels = np.repeat(np.arange(K), counts)
    means = rng.standard_normal((K, d))
    if rank_deficient:
        means[:, 2:] = 0.0
    noise = rng.standard_normal((labels.size, d))
    for k in range(K):  # exactly zero-mean within each class, up to rounding: the class means stay in the span
        noise[labels == k] -= noise[labels == k].mean(axis=0)
    H = means[labels] + noise
    return H, labels, rng.standard_normal((K, d)), rng.standard_normal(K), K


def pseudo_inverse(S: np.ndarray, rank_deficient: bool) -> np.ndarray:
    """Sigma_B^+ computed independently of ufm: in the known span (e_1, e_2) for the rank-deficient case,
    ``U (U^T S U)^{-1} U^T``; otherwise numpy's SVD pseudo-inverse (the K-1 real eigenvalues are >= 1e-3 of the
    largest, the null one ~ 1e-17)."""
    if rank_deficient:
        U = np.eye(S.shape[0])[:, :2]
        return U @ np.linalg.inv(U.T @ S @ U) @ U.T
    return np.linalg.pinv(S, rtol=1e-10)


def nc_toolbox_definitions(H, L, W, b, K, rank_deficient):
    """felixsh/nc-toolbox (nc_toolbox.metrics, statistic, util) written from its definitions."""
    mu_c = np.stack([H[L == c].mean(axis=0) for c in range(K)])
    mu_g = H.mean(axis=0)
    diff = mu_c - mu_g
    sigma_b = diff.T @ diff / K
    centred = H - mu_c[L]
    sigma_w = centred.T @ centred / H.shape[0]
    idx0, idx1 = np.triu_indices(K, k=1)
    log_dist = np.log(np.linalg.norm(diff, axis=1))
    unit = diff / np.linalg.norm(diff, axis=1)[:, None]
    cossim = (unit @ unit.T)[np.triu_indices(K, k=1)]
    lin = np.argmax(H @ W.T + b, axis=1)
    ncc = np.array([np.argmin(np.linalg.norm(mu_c - h, axis=1)) for h in H])
    return {
        "nc1": float(np.trace(sigma_w @ pseudo_inverse(sigma_b, rank_deficient)) / K),
        "nc2_equinormness": float(np.mean(log_dist[idx0] - log_dist[idx1])),
        "nc2_equiangularity": float(np.mean(cossim + 1 / (K - 1))),
        "nc3": float(np.linalg.norm(W / np.linalg.norm(W) - diff / np.linalg.norm(diff))),
        "nc4_agreement": float(np.mean(lin == ncc)),
    }


def rhubarbwu_definitions(H, L, W, K, rank_deficient):
    """rhubarbwu/neural-collapse (measure.covariance_ratio 'pinv', simplex_etf_error, self_duality_error,
    DecAccumulator + clf_ncc_agreement) written from its definitions: m_G the unweighted mean of class means."""
    M = np.stack([H[L == c].mean(axis=0) for c in range(K)])
    M_centred = M - M.mean(axis=0)
    V_inter = M_centred.T @ M_centred / K
    diff = H - M[L]
    V_intra = diff.T @ diff / H.shape[0]

    def structure_error(A, B):
        struct = B @ A.T
        struct = struct / np.linalg.norm(struct)
        struct = struct + 1 / K / np.sqrt(K - 1)
        struct[np.diag_indices(K)] -= 1 / np.sqrt(K - 1)
        return float(np.linalg.norm(struct))

    dists = (H**2).sum(axis=1)[:, None] + (M**2).sum(axis=1)[None, :] - 2 * H @ M.T
    agree = np.argmax(H @ W.T, axis=1) == np.argmin(dists, axis=1)
    return {
        "nc1": float(np.trace(pseudo_inverse(V_inter, rank_deficient) @ V_intra) / K),
        "nc2_gram_error": structure_error(M_centred, M_centred),
        "nc3_gram_error": structure_error(M_centred, W),
        "nc4_agreement": float(np.mean(agree)),
    }


@pytest.mark.parametrize("rank_deficient", [False, True])
def test_peer_conventions_agree_with_independent_implementations(rank_deficient):
    """Agreement to 1e-12 relative (the issue's bound; every quantity is a few float64 reductions of O(1) numbers,
    so rounding is ~1e-15); the agreement shares exactly."""
    H, L, W, b, K = random_case(rank_deficient)
    ours = metrics.peer_conventions(W, b, H, L, K)
    expected = {
        "nc_toolbox": nc_toolbox_definitions(H, L, W, b, K, rank_deficient),
        "rhubarbwu": rhubarbwu_definitions(H, L, W, K, rank_deficient),
    }
    for library, values in expected.items():
        for name, value in values.items():
            assert ours[library][name] == pytest.approx(value, rel=1e-12, abs=1e-15), (library, name)
    # ufm's own conventions map onto the peers' exactly as documented
    assert ours["nc_toolbox"]["nc3"] == pytest.approx(np.sqrt(metrics.nc3(W, H, L, K)), rel=1e-12)
    assert ours["nc_toolbox"]["nc4_agreement"] == 1 - metrics.nc4(W, b, H, L, K)
    assert ours["nc_toolbox"]["nc1"] == metrics.nc1(H, L, K)


def test_rank_deficient_nc1_is_finite_and_right_where_a_top_k_minus_1_inverse_explodes():
    """The class means span 2 of the K - 1 = 4 directions a top-(K-1) inverse assumes: inverting the two rounding-
    noise eigenvalues (as rhubarbwu's 'svd' metric does) gives a value > 1e10 times too large; ufm's NC1 equals the
    exact value in the known span to 1e-12."""
    H, L, _, _, K = random_case(True, seed=5)
    means = metrics.class_means(H, L, K)
    centred = means - H.mean(axis=0)
    sigma_b = centred.T @ centred / K
    within = H - means[L]
    sigma_w = within.T @ within / H.shape[0]
    exact = np.trace(sigma_w @ pseudo_inverse(sigma_b, True)) / K
    value, vectors = np.linalg.eigh(sigma_b)
    top = np.argsort(value)[::-1][: K - 1]
    naive = np.trace(sigma_w @ (vectors[:, top] / value[top]) @ vectors[:, top].T) / K
    assert np.isfinite(metrics.nc1(H, L, K)) and metrics.nc1(H, L, K) == pytest.approx(exact, rel=1e-12)
    assert abs(naive) > 1e10 * exact  # the case does exercise the failure the truncation guards against


# ---------------------------------------------------------------------------------------------------------------
# Memorization and dilation on a configuration computed by hand
# ---------------------------------------------------------------------------------------------------------------


def two_class_noise(a=0.5, b=0.2):
    """C = 2 in the plane: clean samples of class k at mu_k + (+-a, 0), mu_k + (0, +-b) with mu_0 = (-1, 0),
    mu_1 = (1, 0) (distances a, a, b, b); one noisy sample of true class 0 trained as 1 at p = (0.5, 0), one of
    true class 1 trained as 0 at q = (0.2, 0.3)."""
    offsets = np.array([[a, 0], [-a, 0], [0, b], [0, -b]])
    clean0, clean1 = np.array([-1.0, 0]) + offsets, np.array([1.0, 0]) + offsets
    p, q = np.array([0.5, 0.0]), np.array([0.2, 0.3])
    features = np.vstack([clean0, clean1, p, q])
    labels = np.array([0] * 4 + [1] * 4 + [1, 0])
    noisy = np.array([False] * 8 + [True, True])
    return features, labels, noisy, p, q, clean0, clean1


def test_memorization_and_dilation_in_both_definitions():
    a, b = 0.5, 0.2
    features, labels, noisy, p, q, clean0, clean1 = two_class_noise(a, b)
    W = np.array([[-1.0, 0.0], [1.0, 0.0]])
    n = measure.measure(features, labels, W, noisy_mask=noisy).numbers["label_noise"]
    mu0, mu1 = np.array([-1.0, 0]), np.array([1.0, 0])
    # ufm Model 3: RMS distance of the clean samples; mean distance of the noisy ones to their TRUE class mean
    assert n["dilation"] == pytest.approx(np.sqrt((a**2 + b**2) / 2), rel=1e-14)
    assert n["memorization"] == pytest.approx((np.linalg.norm(p - mu0) + np.linalg.norm(q - mu1)) / 2, rel=1e-14)
    # the paper's code: std of the distances; noisy mean minus the mean of ALL samples labelled k, projected
    assert n["dilation_std"] == pytest.approx(abs(a - b) / 2, rel=1e-14)
    m0, m1 = (clean0.sum(axis=0) + q) / 5, (clean1.sum(axis=0) + p) / 5
    u = (m1 - m0) / np.linalg.norm(m1 - m0)
    assert n["memorization_projection"] == pytest.approx(((q - m0) @ u + (p - m1) @ -u) / 2, rel=1e-14)
    assert n["class_mean_distance"] == pytest.approx(2.0, rel=1e-15)
    for name in ("dilation", "dilation_std", "memorization", "memorization_projection"):
        assert n[f"{name}_relative"] == pytest.approx(n[name] / 2.0, rel=1e-15)
    assert n["noisy_fitted"] == 0.5  # p on class 1's side (fitted as trained), q too (not fitted as 0)


def test_memorization_needs_true_labels_beyond_two_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 4)
    noisy = np.zeros(12, dtype=bool)
    noisy[[0, 5]] = True
    features, W = rng.standard_normal((12, 3)), rng.standard_normal((3, 3))
    rows = {
        row.name: row
        for _, section in measure.measure(features, labels, W, noisy_mask=noisy).sections
        for row in section
    }
    assert rows["memorization M (Model 3), raw"].void and "true_labels" in rows["memorization M (Model 3), raw"].void
    true = labels.copy()
    true[[0, 5]] = [1, 2]
    n = measure.measure(features, labels, W, noisy_mask=noisy, true_labels=true).numbers["label_noise"]
    mu = metrics.class_means(features[~noisy], labels[~noisy], 3)
    expected = np.mean([np.linalg.norm(features[0] - mu[1]), np.linalg.norm(features[5] - mu[2])])
    assert n["memorization"] == pytest.approx(expected, rel=1e-14)


# ---------------------------------------------------------------------------------------------------------------
# The command line: bad input refused in one line, before anything is written; the output files
# ---------------------------------------------------------------------------------------------------------------


def _base():
    rng = np.random.default_rng(1)
    return {"features": rng.standard_normal((12, 4)), "labels": np.arange(12) % 3, "W": rng.standard_normal((3, 4))}


BAD = {
    "NaN in features": ({"features": np.full((12, 4), np.nan)}, "features"),
    "labels out of range": ({"labels": np.arange(12) % 4}, "labels"),
    "float labels": ({"labels": (np.arange(12) % 3).astype(float)}, "labels"),
    "a class without samples": ({"labels": np.arange(12) % 2}, "labels"),
    "W of another dimension": ({"W": np.ones((3, 5))}, "'W'"),
    "bias of the wrong length": ({"bias": np.ones(4)}, "bias"),
    "mixed data incomplete": (
        {"mixed_features": np.ones((2, 4)), "mixed_labels": np.zeros((2, 2), int)},
        "mixed_lambda",
    ),
    "lambda outside [0, 1]": (
        {
            "mixed_features": np.ones((2, 4)),
            "mixed_labels": np.zeros((2, 2), int),
            "mixed_lambda": np.array([0.5, 1.5]),
        },
        "mixed_lambda",
    ),
    "noisy mask of the wrong length": ({"noisy_mask": np.zeros(11, bool)}, "noisy_mask"),
    "true labels that contradict the mask": (
        {"noisy_mask": np.zeros(12, bool), "true_labels": (np.arange(12) + 1) % 3},
        "true_labels",
    ),
    "an unknown key": ({"weights": np.ones(3)}, "FEATURES"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arrays_are_refused_in_one_line_and_nothing_is_written(tmp_path, case):
    change, named = BAD[case]
    path = write_npz(tmp_path, **{**_base(), **change})
    outcome = run_main("ufm.measure", str(path), "--out", str(tmp_path / "run"))
    assert_refused(outcome, named)
    assert not (tmp_path / "run").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["features.npz"]


def test_missing_and_unreadable_files_are_refused(tmp_path):
    assert_refused(run_main("ufm.measure", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "r")), "FEATURES")
    text = tmp_path / "text.npz"
    text.write_text("not an archive\n")
    assert_refused(run_main("ufm.measure", str(text), "--out", str(tmp_path / "r")), "FEATURES")
    assert_refused(run_main("ufm.measure", str(tmp_path), "--out", str(tmp_path / "r")), "FEATURES")
    np.savez(tmp_path / "partial.npz", features=np.ones((3, 2)), labels=np.zeros(3, int))
    assert_refused(run_main("ufm.measure", str(tmp_path / "partial.npz"), "--out", str(tmp_path / "r")), "'W'")
    np.savez(
        tmp_path / "objects.npz", features=np.array([None, 1], dtype=object), labels=np.zeros(2, int), W=np.ones((2, 1))
    )
    assert_refused(run_main("ufm.measure", str(tmp_path / "objects.npz"), "--out", str(tmp_path / "r")), "FEATURES")
    assert not (tmp_path / "r").exists()


def test_output_folder_rules_and_files(tmp_path):
    path = write_npz(tmp_path, **_base())
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine\n")
    assert_refused(run_main("ufm.measure", str(path), "--out", str(taken)), "--out")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    assert_refused(run_main("ufm.measure", str(path), "--out", str(link)), "--out")
    assert (taken / "keep.txt").read_text() == "mine\n" and not (tmp_path / "elsewhere").exists()
    out = run_main("ufm.__main__", "measure", str(path), "--out", str(tmp_path / "run"))  # the console script
    assert out.code == 0 and "ufm.measure: neural collapse" in out.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["measures.npz", "summary.json", "table.txt"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["command"] == "measure" and summary["config"]["C"] == 3 and "mixup" not in summary["numbers"]
    assert summary["config"]["bias"] is False and "bias no" in out.stdout
    assert all(row["verdict"] in ("info", "VOID") for row in summary["rows"])
    assert (tmp_path / "run" / "table.txt").read_text().strip() == out.stdout.split("results:")[0].strip()
