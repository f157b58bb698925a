"""MLPs on the digits (ufm.networks) and the figure that compares them with the model (network_mixup): seeded
reproducibility, training to a stated accuracy, the fixed ETF left exactly as drawn, and ufm.measure on a dumped
features file reproducing the numbers the figure records."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("sklearn")  # the digits ship with scikit-learn (the test extra installs it)

from ufm import networks  # noqa: E402
from ufm.etf import etf_gram_error, simplex_etf  # noqa: E402
from ufm.experiments import network_mixup  # noqa: E402
from ufm.measure import measure, measure_file  # noqa: E402

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


# Label noise and label smoothing.


def test_noisy_labels_are_reproducible_with_the_stated_fraction(data):
    y = data["y_train"]
    labels, mask = networks.noisy_labels(y, 10, 0.2, seed=5)
    again, mask_again = networks.noisy_labels(y, 10, 0.2, seed=5)
    assert np.array_equal(labels, again) and np.array_equal(mask, mask_again)
    assert mask.sum() == round(0.2 * len(y)) == 269
    assert np.array_equal(labels != y, mask)  # every noisy label is a different class, every clean one kept
    assert labels.min() >= 0 and labels.max() <= 9 and labels.dtype == np.int64
    # uniform over the 9 other classes: each offset (labels - y) mod 10 in 1..9 is drawn; 269 draws, each
    # offset expected 29.9 times, so every one appears (the chance that one is missing is below 1e-10)
    assert set(np.unique((labels - y)[mask] % 10)) == set(range(1, 10))
    other, other_mask = networks.noisy_labels(y, 10, 0.2, seed=6)
    assert not np.array_equal(mask, other_mask)
    assert not networks.noisy_labels(y, 10, 0.0, seed=5)[1].any()


def test_smoothed_targets_sum_to_one_and_match_optax():
    optax = pytest.importorskip("optax")
    labels = np.array([0, 3, 9, 3])
    for alpha in (0.0, 0.1, 0.3):
        t = np.asarray(networks.smoothed_targets(labels, 10, alpha))
        # a sum of 10 float64 terms: rounding below 10 ulps of 1
        np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=0, atol=1e-15)
        np.testing.assert_allclose(t[np.arange(4), labels], 1 - alpha + alpha / 10, rtol=1e-15)
        assert np.all(np.delete(t, labels + 10 * np.arange(4)) == alpha / 10)
        reference = np.asarray(optax.smooth_labels(np.eye(10)[labels], alpha))
        np.testing.assert_allclose(t, reference, rtol=0, atol=1e-16)
    assert np.array_equal(np.asarray(networks.smoothed_targets(labels, 10, 0.0)), np.eye(10)[labels])


def test_training_on_noisy_smoothed_labels_uses_them_in_the_loss(data):
    """The first recorded loss is the objective at the initial parameters: recomputed here in numpy from the
    same initialisation with the noisy labels and the smoothed targets. Both are one float64 evaluation of the
    same sum in a different order: 1e-12 relative."""
    cfg = networks.TrainConfig(objective="erm", **dict(SMALL, steps=2), label_noise=0.2, smoothing=0.1, seed=7)
    run = networks.train(cfg, data)
    labels, mask = networks.noisy_labels(data["y_train"], 10, 0.2, seed=7)
    assert np.array_equal(run["noisy_mask"], mask) and np.array_equal(run["labels"], labels)
    assert np.array_equal(run["true_labels"], data["y_train"])
    k_init, k_head = jax.random.split(jax.random.PRNGKey(7))
    body = [{k: np.asarray(v) for k, v in layer.items()} for layer in networks.init_params(k_init, (64, 32, 32))]
    W0 = np.asarray(jax.random.normal(k_head, (10, 32), dtype=jnp.float64)) / np.sqrt(32)
    h = data["x_train"]
    for layer in body:
        h = np.maximum(h @ layer["W"].T + layer["b"], 0)
    z = h @ W0.T
    targets = 0.9 * np.eye(10)[labels] + 0.01
    ce = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - (targets * z).sum(1))
    l2 = sum(np.sum(layer["W"] ** 2) + np.sum(layer["b"] ** 2) for layer in body) + np.sum(W0**2)
    assert run["losses"][0] == pytest.approx(ce + 0.5 * 5e-3 * l2, rel=1e-12)
    assert run["train_accuracy"] != run["train_accuracy_true"]


def test_label_noise_arrays_measure_the_noisy_samples(data):
    cfg = networks.TrainConfig(objective="erm", **SMALL, label_noise=0.2, seed=1)
    arrays = networks.label_noise_arrays(networks.train(cfg, data))
    numbers = measure(**arrays).numbers["label_noise"]
    assert numbers["noisy"] == 269 and numbers["clean"] == 1347 - 269
    assert np.isfinite(numbers["memorization"]) and np.isfinite(numbers["dilation_std"])


def test_bad_noise_and_smoothing_are_refused():
    for field in ("label_noise", "smoothing"):
        for value in (-0.1, 1.0):
            with pytest.raises(ValueError, match=field):
                networks.TrainConfig(**{field: value})
