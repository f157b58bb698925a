"""Properties of the trained-network options over their whole input ranges: ``TrainConfig``'s label noise and
label smoothing (accepted exactly on [0, 1), refused by name elsewhere, NaN included), the noisy labels (exactly
``round(eta N)`` flipped, each to another class, reproducible from the seed) and the smoothed targets (rows of the
stated form). No training: these are the inputs the label-noise experiment builds from.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ufm import networks

# any float, NaN and the infinities included, with the interval's ends and their neighbours drawn often
shares = st.one_of(
    st.sampled_from([0.0, 1.0, -0.0, math.nextafter(1.0, 0.0), math.nextafter(0.0, -1.0), 1.5, -1e-300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0.0, 1.0),
)


@given(label_noise=shares, smoothing=shares)
def test_train_config_accepts_exactly_the_unit_interval(label_noise, smoothing):
    valid = {name: 0.0 <= v < 1.0 for name, v in (("label_noise", label_noise), ("smoothing", smoothing))}
    if all(valid.values()):
        config = networks.TrainConfig(label_noise=label_noise, smoothing=smoothing)
        assert (config.label_noise, config.smoothing) == (label_noise, smoothing)
        return
    first_bad = next(name for name, ok in valid.items() if not ok)  # checked in this order
    with pytest.raises(ValueError, match=f"^{first_bad} must lie in \\[0, 1\\)"):
        networks.TrainConfig(label_noise=label_noise, smoothing=smoothing)


@given(
    C=st.integers(2, 12),
    N=st.integers(1, 300),
    fraction=st.floats(0.0, 1.0, exclude_max=True),
    seed=st.integers(0, 2**32 - 1),
    labels_seed=st.integers(0, 3),
)
def test_noisy_labels_flip_the_stated_share_to_other_classes(C, N, fraction, seed, labels_seed):
    y = np.random.default_rng(labels_seed).integers(0, C, N)
    labels, mask = networks.noisy_labels(y, C, fraction, seed)
    assert labels.dtype == np.int64 and mask.dtype == bool and labels.shape == mask.shape == (N,)
    assert mask.sum() == round(fraction * N)
    assert np.all(labels[mask] != y[mask]) and np.array_equal(labels[~mask], y[~mask])
    assert labels.min() >= 0 and labels.max() < C
    again, mask_again = networks.noisy_labels(y, C, fraction, seed)
    assert np.array_equal(again, labels) and np.array_equal(mask_again, mask)


@given(C=st.integers(2, 12), alpha=st.floats(0.0, 1.0, exclude_max=True), seed=st.integers(0, 3))
def test_smoothed_targets_have_the_stated_rows(C, alpha, seed):
    labels = np.random.default_rng(seed).integers(0, C, 16)  # one shape: the jax ops compile once
    targets = np.asarray(networks.smoothed_targets(labels, C, alpha))
    expected = (1.0 - alpha) * np.eye(C)[labels] + alpha / C  # independent of the jax expression
    # a few operations on numbers in [0, 1]: a few ulps of 1
    np.testing.assert_allclose(targets, expected, rtol=0, atol=4 * np.finfo(float).eps)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=0, atol=4 * C * np.finfo(float).eps)
