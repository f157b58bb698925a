"""proofs_check: certificates pass on the published closed forms and FAIL on planted wrong ones.

Every planted error goes through the same public path a user would take: a different closed-form function is
passed into the certificate function. Tolerances are the certificates' own (proofs_check/*.py states them); the
tests assert verdicts and that a wrong closed form misses its bound by orders of magnitude, not marginally.
"""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest
from inprocess import assert_refused, run_main

from ufm import proofs_check
from ufm.checks import Check
from ufm.problems.mixup import MixupProblem
from ufm.proofs_check import lemmas
from ufm.proofs_check import mixup as pc_mixup
from ufm.proofs_check.__main__ import main
from ufm.proofs_check.certificate import CONDITIONAL, FAIL, PASS, Certificate
from ufm.theory import mixup as theory

# Small grid for speed: the minimal dimension and C = 2 (gauge a + b = 0) beside a generic C = 3.
SMALL = (
    MixupProblem(C=2, d=1, m=1.0, mu=1e-2, n_lambdas=5, seed=0),
    MixupProblem(C=3, d=4, m=2.0, mu=1e-3, n_lambdas=5, seed=1),
)


def sign_flipped(W, m, mu, c, c_prime, lam):
    return -theory.optimal_features(W, m, mu, c, c_prime, lam)


def kappa_doubled(W, m, mu, c, c_prime, lam):
    """The closed form with kappa -> 2 kappa (e.g. the other ETF normalisation applied twice)."""
    return theory.optimal_features(W, m, mu / 2, c, c_prime, lam)


@pytest.mark.parametrize("certify", [pc_mixup.same_class_optimality, pc_mixup.different_class_optimality])
def test_closed_form_is_certified(certify):
    cert = certify(problems=SMALL)
    assert cert.verdict == PASS, [m.to_dict() for m in cert.failures]
    # smallest Hessian eigenvalue is reported and is mu (d > C-1 for the C = 3 instance): strict minimum
    assert cert.min_hessian_eig == pytest.approx(1e-3, rel=1e-10)


@pytest.mark.parametrize("certify", [pc_mixup.same_class_optimality, pc_mixup.different_class_optimality])
@pytest.mark.parametrize("wrong", [sign_flipped, kappa_doubled])
def test_planted_wrong_closed_form_fails_first_order(certify, wrong):
    cert = certify(problems=SMALL, features=wrong)
    assert cert.verdict == FAIL
    first_order = cert.measurements[0]
    assert not first_order.passed
    # not a marginal miss: a wrong closed form is off at O(1e-3) or more, the bound is 64 eps
    assert first_order.value > 1e6 * first_order.tol
    assert first_order.worst_at["C"] in (2, 3)  # the failing instance is named


def test_planted_wrong_closed_form_is_beaten_by_restarts():
    """Global evidence: solver restarts reach a lower objective than a wrong closed form."""
    problems = (MixupProblem(C=3, d=7, m=1.0, mu=1e-2, n_lambdas=5, seed=0),)
    good = pc_mixup.convexity(problems=problems, restarts=1)
    assert good.verdict == PASS and good.restarts == good.restarts_converged > 0
    bad = pc_mixup.convexity(problems=problems, restarts=1, features=kappa_doubled)
    assert bad.verdict == FAIL
    assert not bad.measurements[0].passed and bad.measurements[0].value > 1e-6


def test_root_certificate_and_planted_wrong_root():
    assert pc_mixup.same_class_root_unique(problems=SMALL, n_grid=20_001).verdict == PASS
    wrong = pc_mixup.same_class_root_unique(
        problems=SMALL, n_grid=20_001, root=lambda C, k: theory.same_class_root(C, 2 * k)
    )
    assert wrong.verdict == FAIL
    names = {m.name for m in wrong.failures}
    assert any("Newton correction" in n for n in names) and any("sign-change cell" in n for n in names)


def test_symmetry_certificate_and_planted_wrong_gaps():
    assert pc_mixup.gap_symmetry(problems=SMALL).verdict == PASS
    # swapping a and b keeps b(lam) = a(1-lam) true but moves the lam = 1 endpoint: the endpoint check must catch it
    swapped = pc_mixup.gap_symmetry(problems=SMALL, gaps=lambda C, k, lam: theory.different_class_gaps(C, k, lam)[::-1])
    assert swapped.verdict == FAIL


def test_large_kappa_limit_and_sign_flip():
    assert pc_mixup.large_kappa_limit(classes=(3,)).verdict == PASS
    assert pc_mixup.large_kappa_limit(classes=(3,), features=sign_flipped).verdict == FAIL


def test_lemma_1_of_seed_003():
    # the formula agrees with the matrix loss and its minimum is 1/(2C) at alpha = (C-1)/C
    assert lemmas.nc_loss_identity().verdict == PASS
    assert lemmas.nc_cannot_interpolate().verdict == PASS
    assert float(lemmas.nc_square_loss(2 / 3, 3)) == pytest.approx(1 / 6, rel=1e-15)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda a, C: 0.5 * ((1 - a) ** 2 + a**2),  # the 1/(C-1) dropped
        lambda a, C: (1 - a) ** 2 + a**2 / (C - 1),  # the 1/2 dropped
    ],
)
def test_planted_wrong_lemma_fails(wrong):
    assert lemmas.nc_loss_identity(formula=wrong).verdict == FAIL
    assert lemmas.nc_cannot_interpolate(formula=wrong).verdict == FAIL


def test_verdict_rules():
    ok = Check("x", 1e-16, 1e-14)
    assert Certificate("f", "t", "s", "st", "m", [ok], []).verdict == PASS
    assert Certificate("f", "t", "s", "st", "m", [ok], [], condition="budget").verdict == CONDITIONAL
    nan = Check("x", math.nan, 1e-14)
    assert Certificate("f", "t", "s", "st", "m", [ok, nan], [], condition="budget").verdict == FAIL
    assert not Check("eig", 0.5, 1.0, sense=">=").passed and Check("eig", 0.5, None, sense=">=").passed
    assert Check("eig", 1.5, 1.0, sense=">=").passed and not Check("eig", math.nan, 1.0, sense=">=").passed


def test_cli_lemmas_writes_certificates(tmp_path):
    out = tmp_path / "certs.json"
    r = run_main("ufm.proofs_check", "lemmas", "--out", str(out), "--quiet")
    assert r.code == 0, r.stderr
    assert "ALL CERTIFICATES PASS" in r.stdout and "Lemma 1 (R-B 2022)" in r.stdout
    data = json.loads(out.read_text())
    assert data["passed"] and data["verdicts"]["PASS"] == 2 and data["families"] == ["lemmas"]
    assert all(c["instances"] and c["measurements"] for c in data["certificates"])
    assert [p.name for p in tmp_path.iterdir()] == ["certs.json"]  # no staging file left behind


@pytest.mark.parametrize("args, flag", [(["nosuchfamily"], "FAMILY"), (["--out", "/nonexistent/dir/c.json"], "--out")])
def test_cli_bad_input(tmp_path, monkeypatch, args, flag):
    monkeypatch.chdir(tmp_path)
    assert_refused(run_main("ufm.proofs_check", *args), flag)  # one line naming the argument
    assert not any(tmp_path.iterdir())


def test_a_new_family_is_one_module_and_one_line(tmp_path, monkeypatch, capsys):
    """Registering a family is one entry in FAMILIES; a FAIL anywhere makes the run exit 1 and is named."""
    family = types.ModuleType("proofs_check_fake")
    family.FAMILY = "fake"
    family.CERTIFICATES = [
        lambda: Certificate(
            "fake",
            "planted",
            "test",
            "1 = 2",
            "evaluation",
            [Check("|1 - 2|", 1.0, 1e-14, worst_at={"C": 3})],
            [{"C": 3}],
        )
    ]
    monkeypatch.setitem(sys.modules, "proofs_check_fake", family)
    monkeypatch.setitem(proofs_check.FAMILIES, "fake", "proofs_check_fake")
    out = tmp_path / "c.json"
    assert main(["fake", "--out", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "1 CERTIFICATE(S) FAIL" in captured.out and "FAIL fake / planted" in captured.err
    data = json.loads(out.read_text())
    assert not data["passed"] and data["certificates"][0]["failures"][0]["worst_at"] == {"C": 3}
    assert np.isclose(data["certificates"][0]["measurements"][0]["value"], 1.0)
