"""The figure pipeline on reduced configurations: files exist and are valid, and the data behind each figure is
what the solver returns for that configuration (so a figure cannot plot stale or made-up data)."""

import importlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from inprocess import run_main
from scipy import special

from ufm.experiments.pipeline import load_data
from ufm.families import mixup as family
from ufm.problems.mixup import MixupProblem

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}
# Figure data vs a fresh solve of the same configuration: both are the same deterministic float64 computation
# at the rounding floor, so they agree to ~1e-15; 1e-12 absorbs summation-order differences only.
TOL = 1e-12


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    result = run_main("ufm.experiments", "--out", str(out), "--quick")
    assert result.code == 0, result.stderr
    return out, result


def mixup_problem(cfg, kappa):
    C, m = cfg["C"], cfg["m"]
    return MixupProblem(C=C, d=cfg["d"], m=m, mu=C * m**2 / ((C - 1) * kappa), n_lambdas=2, seed=cfg["seed"])


def test_every_figure_has_valid_files(figures):
    out, result = figures
    from ufm.experiments.__main__ import FIGURES, PENDING

    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (out / f"{name}.{ext}").read_bytes().startswith(MAGIC[ext]), (name, ext)
        assert (out / f"{name}.npz").stat().st_size > 0 and (out / f"{name}.json").stat().st_size > 0
    for name in PENDING:  # not landed: skipped with a message, never faked
        assert f"{name}: skipped" in result.stderr and not (out / f"{name}.png").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial files
    umask = os.umask(0)
    os.umask(umask)
    assert all((p.stat().st_mode & 0o777) == 0o666 & ~umask for p in out.iterdir())  # not tempfile's private mode


def test_mixup_geometry_data_is_the_solver_output(figures):
    data, cfg = load_data(figures[0], "mixup_geometry")
    C, m = cfg["C"], cfg["m"]
    problem = MixupProblem(
        C=C, d=cfg["d"], m=m, mu=C * m**2 / ((C - 1) * cfg["kappa"]), n_lambdas=cfg["n_lambdas"], seed=cfg["seed"]
    )
    out = family.solve(problem)
    # the plane coordinates preserve norms (h lies in span(W)) and inner products with the rows
    np.testing.assert_allclose(np.linalg.norm(data["h_plane"], axis=1), np.linalg.norm(out.h, axis=1), rtol=TOL)
    np.testing.assert_allclose(data["h_plane"] @ data["W_plane"].T, out.h @ out.W.T, atol=TOL * np.abs(out.h).max())


def test_mixup_geometry_colours_one_point_one_way_and_draws_the_chords(figures):
    """(c, c', lam) and (c', c, 1 - lam) are one target: the solver puts them on one point, and the figure gives
    that point one colour (the weight on the lower-numbered class); each chord joins the pair's two stars."""
    data, cfg = load_data(figures[0], "mixup_geometry")
    c, cp, lam, h, colour = data["c"], data["c_prime"], data["lam"], data["h_plane"], data["colour"]
    np.testing.assert_array_equal(colour, np.where(c <= cp, lam, 1 - lam))
    step = np.rint(lam * (cfg["n_lambdas"] - 1)).astype(int)  # lam's place on the uniform grid
    index = {(a, b, k): i for i, (a, b, k) in enumerate(zip(c, cp, step))}
    for i, (a, b, k) in enumerate(zip(c, cp, step)):
        if a == b:
            continue
        j = index[(b, a, cfg["n_lambdas"] - 1 - k)]  # the reversed order: weight 1 - lam on c
        assert colour[i] == pytest.approx(colour[j], abs=1e-15)
        np.testing.assert_allclose(h[i], h[j], atol=TOL * np.abs(h).max())
    same = c == cp
    for (a, b), chord in zip(data["theory_pairs"], data["chords"]):
        for end, k in zip(chord, (a, b)):
            stars = h[same & (c == k)]  # every lambda of the same-class target e_k: one point
            np.testing.assert_allclose(stars, np.tile(end, (len(stars), 1)), atol=TOL * np.abs(h).max())


def test_mixup_coefficients_data_is_the_solver_output(figures):
    data, cfg = load_data(figures[0], "mixup_coefficients")
    c, cp = cfg["pair"]
    lam = data["lam"]
    for k, kappa in enumerate(cfg["kappas"]):
        out = family.solve(mixup_problem(cfg, kappa), subproblems=(np.full(lam.size, c), np.full(lam.size, cp), lam))
        norm = np.linalg.norm(out.h, axis=1)
        np.testing.assert_allclose(data["norm"][k], norm / norm[-1], rtol=TOL)


def test_mixup_calibration_data_is_the_solver_output(figures):
    data, cfg = load_data(figures[0], "mixup_calibration")
    lam = data["lam"]
    out = family.solve(
        mixup_problem(cfg, cfg["curve_kappas"][0]), subproblems=(np.zeros(lam.size, int), np.ones(lam.size, int), lam)
    )
    confidence = special.softmax(out.h @ out.W.T, axis=1).max(axis=1)
    np.testing.assert_allclose(data["confidence"][0], confidence, rtol=TOL)


def test_quadrature_of_the_calibration_error_is_converged():
    """Doubling the Gauss-Jacobi nodes does not move the calibration error (relative 1e-10)."""
    from ufm.experiments.mixup_calibration import calibration_error, half_interval_nodes
    from ufm.theory import mixup as theory

    for alpha in (0.2, 1.0, 2.0):
        lam, w = half_interval_nodes(alpha, 32)
        # a known moment of Beta(alpha, alpha): E[lam (1 - lam)] = alpha / (2 (2 alpha + 1)); scipy's Gauss-Jacobi
        # rule for the singular weight (alpha = 0.2) carries ~4e-13 relative rounding, hence 1e-12
        exact = alpha / (2 * (2 * alpha + 1))
        assert abs(np.sum(w * lam * (1 - lam)) - exact) <= 1e-12 * exact
        values = [
            calibration_error(theory.confidence(10, 30.0, l), l, w)
            for l, w in (half_interval_nodes(alpha, n) for n in (32, 64))
        ]
        assert abs(values[0] - values[1]) <= 1e-10 * values[1]


def test_unknown_figure_exits_2(tmp_path):
    """The one run of ``python -m ufm.experiments`` as a user starts it (the figures above run in-process)."""
    result = subprocess.run(
        [sys.executable, "-m", "ufm.experiments", "--only", "nope", "--out", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2 and "--only" in result.stderr and not (tmp_path / "f").exists()


def test_nonneg_data_is_the_solver_output(figures):
    from ufm.families import nonnegative
    from ufm.problems.nonnegative import NonnegProblem

    data, cfg = load_data(figures[0], "nonneg")
    lam = cfg["lambdas"][0]
    p = NonnegProblem(
        C=cfg["K"],
        n=cfg["n"],
        d=cfg["d"],
        model="ufm",
        alpha=cfg["alphas"][0],
        lambda_W=lam,
        lambda_H=lam,
        restarts=cfg["restarts"],
    )
    sol, _, _ = nonnegative.solve(p)
    np.testing.assert_allclose(data["objective"][0, 0], sol.loss.min(), rtol=TOL)


def test_square_loss_data_is_the_solver_output(figures):
    from ufm.families import square_loss
    from ufm.problems.square_loss import SquareLossProblem

    data, cfg = load_data(figures[0], "square_loss")
    lam = cfg["lambdas"][-1]
    p = SquareLossProblem(C=cfg["C"], n=cfg["n"], bias="free", lambda_W=lam, lambda_H=lam, restarts=cfg["restarts"])
    found = square_loss.solve(p)
    np.testing.assert_allclose(
        data["W_norm_sq"][1, -1], np.sum(np.asarray(found.params["layers"][-1]) ** 2), rtol=TOL, atol=1e-20
    )


def test_memorization_dilation_data_is_the_solver_output(figures):
    from ufm.families import memorization_dilation as md
    from ufm.problems.nonnegative import MemorizationDilationProblem

    data, cfg = load_data(figures[0], "memorization_dilation")
    p = MemorizationDilationProblem(
        C=cfg["C"],
        n=cfg["n"],
        noise=cfg["noise"],
        restarts=cfg["restarts"],
        r=cfg["r_values"][0],
        alpha=cfg["alphas"][0],
    )
    out = md.solve(p)
    # the augmented-Lagrangian path is deterministic; D is a smooth function of the solution: 1e-9
    np.testing.assert_allclose(data["D"][0], md.measures(p, out["W"], out["H"])["D"].mean(), rtol=1e-9)


def test_local_linearity_data_is_the_solver_output(figures):
    from ufm.experiments.local_linearity import _mixes, _problem
    from ufm.objectives.mixup import mixed_soft_target

    data, cfg = load_data(figures[0], "local_linearity")
    k, kappa = cfg["points"][-1], cfg["solver_kappas"][-1]
    classes, lam = _mixes(cfg, k)
    np.testing.assert_array_equal(data[f"classes_k{k}"], classes)
    y = np.asarray(mixed_soft_target(cfg["C"], classes, lam))
    problem = _problem(cfg, k, kappa)
    W = problem.classifier()
    h, sol = family.solve_targets(problem, W, np.concatenate([y, np.eye(cfg["C"])]))
    assert sol.converged.all() and data[f"solver_converged_k{k}"].all()
    summary = family.nonlinearity_summary(h[: len(y)], h[len(y) :], classes, lam, y, cfg["C"])
    np.testing.assert_allclose(data[f"solver_nonlin_k{k}"][-1], summary["nonlin"], rtol=TOL)
    # and the closed-form line through the same kappa (independent of the solver) agrees to the solver's accuracy
    # (the solver converges to rel. grad 1e-12, so features agree to ~1e-12 and NonLin to 1e-10 with margin)
    i = int(np.argmin(np.abs(np.log(data["theory_kappas"] / kappa))))
    assert np.isclose(data["theory_kappas"][i], kappa)
    assert abs(data[f"theory_nonlin_k{k}"][i] - summary["nonlin"]) <= 1e-10


def test_mixup_joint_data_is_the_solver_output(figures):
    from ufm.families import mixup_joint
    from ufm.problems.mixup_joint import MixupJointProblem

    data, cfg = load_data(figures[0], "mixup_joint")
    C, alpha = cfg["classes"][0], cfg["solver_alphas"][-1]
    p = MixupJointProblem(
        C=C,
        alpha=alpha,
        lambda_W=cfg["lambda_W"],
        mu=cfg["mu"],
        n_nodes=cfg["n_nodes"],
        restarts=cfg["restarts"],
        seed=cfg["seed"],
    )
    report = mixup_joint.run(p, progress=False)
    assert report.passed and data[f"solver_passed_C{C}"].all()
    np.testing.assert_allclose(data[f"solver_m_C{C}"][-1], report.numbers["m"], rtol=TOL)
    np.testing.assert_allclose(data[f"solver_m_1d_C{C}"][-1], report.numbers["m_1d"], rtol=TOL)


# The configuration values a caption states, by configuration key: the texts that must appear in it. Every key of
# every figure's configuration is here or in NOT_STATED, so a new configuration key needs a decision.
def _listed(values):
    return [", ".join(f"{v:g}" for v in values)]


def _grid(values):
    return (
        [f"{len(values)} values from {values[0]:.3g} to {values[-1]:.3g}"] if len(values) > 1 else [f"{values[0]:.3g}"]
    )


STATED = {
    "C": lambda v: [f"C = {v}"],
    "K": lambda v: [f"K = {v}"],
    "n": lambda v: [f"n = {v}"],
    "d": lambda v: [f"d = {v}"],
    "m": lambda v: [f"m = {v:g}"],
    "kappa": lambda v: [f"kappa = {v:g}"],
    "noise": lambda v: [f"{100 * v:g} % noisy labels"],
    "restarts": lambda v: [f"{v} restarts"],
    "lambda_W": lambda v: [f"lambda_W = {v:g}"],
    "mu": lambda v: [f"mu = {v:g}"],
    "n_lambdas": lambda v: [f"{v} lambdas"],
    "n_mixes": lambda v: [f"{v} Dirichlet"],
    "alpha": lambda v: [f"Dirichlet({v:g})"],
    "n_nodes": lambda v: [f"{v} quadrature nodes"],
    "quadrature_nodes": lambda v: [f"{v}-node"],
    "pair": lambda v: [f"class pair ({v[0]}, {v[1]})"],
    "picture": lambda v: [f"K = {v['K']} nonnegative features (n = {v['n']}, d = {v['d']})"],
    "gd_steps": lambda v: [f"{v} steps"],
    "gd_record_every": lambda v: [f"recorded every {v} steps"],
    "gd_lr": lambda v: [f"learning rate {v:g}"],
    "gd_momentum": lambda v: [f"momentum {v:g}"],
    "gd_lambda": lambda v: [f"lambda = {v:g}"],
    "alphas": lambda v: _listed([a for a in v if a != 0]) + (["CE"] if 0 in v else []),
    "seeds": lambda v: [f"seeds {', '.join(str(s) for s in v)}"],
    "objectives": lambda v: [
        {"erm": "ERM", "mixup": "mixup with a learned classifier", "mixup_etf": "fixed simplex ETF"}[o] for o in v
    ],
    "hidden": lambda v: [f"hidden widths {', '.join(str(w) for w in v)}"],
    "train_steps": lambda v: [f"{v} full-batch Adam steps"],
    "lr": lambda v: [f"learning rate {v:g}"],
    "weight_decay": lambda v: [f"weight decay {v:g}"],
    "ce_weight_decays": lambda v: [f"CE also at weight decays {', '.join(f'{w:g}' for w in v)}"],
    "beta_alpha": lambda v: [f"Beta({v:g})"],
    "per_pair": lambda v: [f"{v} sample pairs per class pair"],
    "held_out": lambda v: [f"{100 * v:g} % held out"],
    "noise_rates": lambda v: [f"{', '.join(f'{100 * r:g}' for r in v)} % noisy labels"],
    "smoothing": lambda v: [f"LS alpha = {v:g}"],
    "chords": lambda v: [f"{v} chords"],
    **{key: _listed for key in ("kappas", "curve_kappas", "solver_kappas", "classes", "r_values", "solver_alphas")},
    **{key: _listed for key in ("points", "deep_layers", "model2_alpha")},
    **{
        key: _grid for key in ("lambdas", "chord_lambdas", "theory_kappas", "theory_alphas", "square", "deep", "model2")
    },
}
NOT_STATED = {"seed", "theory_points"}  # the random seed; the number of points a closed-form line is drawn with
# an author-year citation: "Fisher, Meng, Papyan 2024", "Rangamani, Banburski-Fahey 2022"
CITATION = re.compile(r"\b[A-Z][A-Za-z-]+(, [A-Z][A-Za-z-]+)* (19|20)[0-9]{2}\b")


def figure_modules():
    from ufm.experiments.__main__ import FIGURES

    return {name: importlib.import_module(module) for name, module in FIGURES.items()}


def missing_from_caption(caption: str, cfg: dict) -> list[str]:
    """The configuration's stated values (and keys neither stated nor exempt) that the caption lacks."""
    missing = [f"{key} (no rule)" for key in cfg if key not in STATED and key not in NOT_STATED]
    for key, value in cfg.items():
        if key in STATED:
            missing += [f"{key}: {text!r}" for text in STATED[key](value) if text not in caption]
    return missing


@pytest.mark.parametrize("quick", [True, False])
def test_every_caption_cites_its_paper_and_states_its_configuration(quick):
    """No solve: each module's caption of the quick and of the full configuration."""
    for name, module in figure_modules().items():
        cfg = json.loads(json.dumps(module.config(quick)))  # as the JSON file holds it
        caption = module.caption(cfg)
        assert CITATION.search(caption), (name, caption)
        assert "\n" not in caption and "|" not in caption, name  # one cell of the docs' table
        if name == "memorization_dilation":  # Model 3 names its classes K, as the paper does
            caption = caption.replace(f"K = {cfg['C']}", f"C = {cfg['C']}")
        assert missing_from_caption(caption, cfg) == [], (name, caption)


def test_quick_and_full_configurations_have_their_own_captions():
    for name, module in figure_modules().items():
        assert module.caption(module.config(True)) != module.caption(module.config(False)), name


def test_every_figure_json_holds_the_caption_of_its_configuration(figures):
    for name, module in figure_modules().items():
        record = json.loads((figures[0] / f"{name}.json").read_text())
        assert record["quick"] is True and record["caption"] == module.caption(record["config"]), name


def test_network_mixup_records_its_verdict_and_numbers(figures):
    """The JSON's summary (verdict, mean and spread over seeds) is the npz's data summarised; train accuracy is
    high enough for the features to be terminal-phase ones."""
    from ufm.experiments import network_mixup

    data, cfg = load_data(figures[0], "network_mixup")
    record = json.loads((figures[0] / "network_mixup.json").read_text())["summary"]
    assert record == json.loads(json.dumps(network_mixup.summary(data, cfg)))
    etf, learned = data["mixup_etf_distance"], data["mixup_distance"]
    assert record["verdict"] == network_mixup.verdict(etf, learned)
    for objective in cfg["objectives"]:
        assert data[f"{objective}_train_accuracy"].min() >= 0.95, objective
    assert data["mixup_etf_etf_gram_error"].max() < 1e-14  # the fixed classifier is the ETF


def test_network_label_noise_records_its_verdicts_and_numbers(figures):
    """The JSON's summary is the npz's data summarised, each verdict recomputed here from the recorded per-seed
    numbers; the matched comparison recomputed by independent interpolation (numpy's interp of CE's points)."""
    from ufm.experiments import network_label_noise as fig
    from ufm.report import to_json

    data, cfg = load_data(figures[0], "network_label_noise")
    record = json.loads((figures[0] / "network_label_noise.json").read_text())["summary"]
    assert record == json.loads(to_json(fig.summary(data, cfg)))  # as the pipeline writes it: NaN as null
    assert data["ce_train_accuracy"].shape == (len(cfg["noise_rates"]), len(cfg["seeds"]))
    # the held-out accuracy is measured on true labels: it is a share of the 450 held-out samples
    assert np.allclose(data["ls_test_accuracy"] * 450, np.round(data["ls_test_accuracy"] * 450), rtol=0, atol=1e-9)
    verdicts = {claim["claim"]: claim["verdict"] for claim in record["claims"]}
    ce, ls = data["ce_test_accuracy"], data["ls_test_accuracy"]
    assert verdicts["LS generalises better (held-out accuracy, true labels)"] == fig.count_verdict(np.all(ls > ce, 0))
    M_ce, D_ce = data["ce_memorization"][:, 0], data["ce_dilation"][:, 0]
    M_ls, D_ls = data["ls_memorization"][:, 0], data["ls_dilation"][:, 0]
    lo, hi = M_ce.min(), M_ce.max()
    for i in range(len(M_ls)):
        got = data["matched_dilation"][i, 0]
        if lo <= M_ls[i] <= hi:
            order = np.argsort(M_ce)
            assert got == pytest.approx(D_ls[i] - np.interp(M_ls[i], M_ce[order], D_ce[order]), rel=1e-12)
        else:
            assert np.isnan(got)
    name = "LS lowers dilation at matched memorization (Model 3, raw)"
    assert verdicts[name] == fig.matched_verdict(data["matched_dilation"])
    # matched within one noise rate: CE's points over its weight decays (the figure's own first), interpolated at
    # LS's memorization of that noise rate and seed
    for i in range(len(cfg["noise_rates"])):
        for j in range(len(cfg["seeds"])):
            M = [data["ce_memorization"][i, j]] + [data[f"ce_decay{k}_memorization"][i, j] for k in range(2)]
            D = [data["ce_dilation"][i, j]] + [data[f"ce_decay{k}_dilation"][i, j] for k in range(2)]
            got, order = data["decay_matched_dilation"][i, j], np.argsort(M)
            if min(M) <= data["ls_memorization"][i, j] <= max(M):
                expected = data["ls_dilation"][i, j] - np.interp(
                    data["ls_memorization"][i, j], np.take(M, order), np.take(D, order)
                )
                assert got == pytest.approx(expected, rel=1e-12)
            else:
                assert np.isnan(got)
    name = "LS lowers dilation at memorization matched by CE's weight decay (Model 3, raw)"
    assert verdicts[name] == fig.matched_verdict(data["decay_matched_dilation"])
    assert len(cfg["ce_weight_decays"]) == 2 and min(cfg["ce_weight_decays"]) > cfg["weight_decay"]
    ratio = data["ls_ratio_dilation"]
    np.testing.assert_allclose(ratio, data["ls_dilation"] / data["ls_memorization"], rtol=1e-15)


def test_network_linearity_records_its_verdicts_and_numbers(figures):
    """The JSON's summary is the npz's data summarised; the input layer (the identity, exactly linear) has
    unnormalised non-linearity 0 up to rounding (1e-14 relative to the end points' norm: a few ulps of each
    mix), and every hidden layer a larger one."""
    from ufm.experiments import network_linearity as fig
    from ufm.report import to_json

    data, cfg = load_data(figures[0], "network_linearity")
    record = json.loads((figures[0] / "network_linearity.json").read_text())["summary"]
    assert record == json.loads(to_json(fig.summary(data, cfg)))  # as the pipeline writes it: NaN as null
    for objective in cfg["objectives"]:
        for prefix in ("", "heldout_"):
            assert data[f"{objective}_{prefix}input_unnormalised"].max() < 1e-14
            assert data[f"{objective}_{prefix}hidden1_unnormalised"].min() > 1e-3
            assert data[f"{objective}_{prefix}input_excess"].min() >= 0  # the floor is a lower bound for any map
    # two chord sets (training, held-out) x two measures x mixup objectives x (hidden layers + logits)
    assert len(record["claims"]) == 2 * 2 * (len(cfg["objectives"]) - 1) * (len(cfg["hidden"]) + 1)
    assert {claim["chords"] for claim in record["claims"]} == set(fig.CHORD_SETS)
    for claim in record["claims"]:
        objective, layer, key = claim["objective"], claim["layer"], claim["measure"]
        prefix = fig.CHORD_SETS[claim["chords"]][2]
        flags = data[f"{objective}_{prefix}{layer}_{key}"] < data[f"erm_{prefix}{layer}_{key}"]
        assert claim["verdict"] == fig.count_verdict(flags), claim["claim"]
