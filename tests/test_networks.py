"""MLPs on the digits (ufm.networks) and the figure that compares them with the model (network_mixup): seeded
reproducibility, training to a stated accuracy, the fixed ETF left exactly as drawn, and ufm.measure on a dumped
features file reproducing the numbers the figure records."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the digits ship with scikit-learn (the test extra installs it)

from ufm import networks  # noqa: E402
from ufm.etf import etf_gram_error, simplex_etf  # noqa: E402
from ufm.experiments import network_mixup  # noqa: E402
from ufm.measure import measure_file  # noqa: E402

# A reduced configuration: seconds per run on one core.
SMALL = dict(hidden=(32, 32), steps=150, lr=3e-3, weight_decay=5e-3)
# The figure's numbers come from the same float64 arrays ufm measure reads back from the file, so they agree to
# rounding; 1e-12 relative leaves room for a different summation order only.
RTOL = 1e-12


@pytest.fixture(scope="module")
def data():
    return networks.load_digits()


def test_split_is_stratified_and_standardised(data):
    assert data["x_train"].shape == (1347, 64) and data["x_test"].shape == (450, 64)
    assert np.array_equal(
        np.bincount(data["y_train"]) + np.bincount(data["y_test"]), np.bincount(np.r_[data["y_train"], data["y_test"]])
    )
    assert abs(data["x_train"].mean()) < 1e-12 and set(np.unique(data["y_test"])) == set(range(10))


def test_same_seed_gives_bit_identical_features(data):
    cfg = networks.TrainConfig(objective="mixup", **SMALL, seed=3)
    a, b = networks.train(cfg, data), networks.train(cfg, data)
    for key in ("features", "W", "bias", "losses"):
        assert np.array_equal(a[key], b[key]), key
    other = networks.train(networks.TrainConfig(objective="mixup", **SMALL, seed=4), data)
    assert not np.array_equal(a["features"], other["features"])


def test_erm_reaches_the_stated_train_accuracy(data):
    run = networks.train(networks.TrainConfig(objective="erm", **SMALL), data)
    assert run["train_accuracy"] >= 0.98 and run["test_accuracy"] >= 0.9, (run["train_accuracy"], run["test_accuracy"])
    assert run["features"].dtype == np.float64 and run["features"].shape == (1347, 32)


def test_fixed_etf_stays_the_etf_exactly(data):
    cfg = networks.TrainConfig(objective="mixup_etf", **SMALL, m=2.0, seed=1)
    run = networks.train(cfg, data)
    assert np.array_equal(run["W"], simplex_etf(10, 32, 2.0, 1)) and not run["bias"].any()
    error, m = etf_gram_error(run["W"])
    assert error < 1e-15 and m == pytest.approx(2.0, rel=1e-15)
    assert run["train_accuracy"] >= 0.95


def test_ufm_measure_on_the_dumped_file_reproduces_the_figure(data, tmp_path):
    cfg = dict(
        network_mixup.config(True), objectives=["mixup", "mixup_etf"], hidden=[32, 32], train_steps=150, per_pair=1
    )
    recorded = network_mixup.compute(cfg, progress=type("P", (), {"step": lambda self: None})())
    assert str(recorded["verdict"]) in ("holds", "does not hold") or "of 1 seeds" in str(recorded["verdict"])
    for objective in ("mixup", "mixup_etf"):
        run = networks.train(network_mixup.train_config(cfg, objective, 0), data)
        path = tmp_path / f"{objective}.npz"
        np.savez(path, **networks.measure_arrays(run, cfg["lambdas"], cfg["per_pair"], 0))
        numbers = measure_file(path).numbers
        for key, keys, _ in network_mixup.MEASURES:
            value = numbers
            for k in keys:
                value = value[k]
            np.testing.assert_allclose(recorded[f"{objective}_{key}"][0], value, rtol=RTOL, atol=0, err_msg=key)
        assert recorded[f"{objective}_train_accuracy"][0] == run["train_accuracy"]
