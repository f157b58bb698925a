"""Simplex ETF construction against its defining Gram matrix (Fisher, Meng, Papyan, ICLR 2024, Sec. 3)."""

import numpy as np
import pytest

from ufm.etf import centring_basis, etf_gram, etf_gram_error, simplex_etf


@pytest.mark.parametrize("C", [2, 3, 10])
@pytest.mark.parametrize("extra", [-1, 0, 11])  # d = C-1, C, 2C+1 (for C = 10)
@pytest.mark.parametrize("m", [0.5, 1.0, 3.0])
def test_gram_matrix(C, extra, m):
    d = C + extra if extra != 11 else 2 * C + 1
    W = simplex_etf(C, d, m, seed=3)
    # Entries are O(m^2); a handful of float64 roundings per entry: 1e-14 relative is rounding level.
    np.testing.assert_allclose(W @ W.T, etf_gram(C, m), rtol=0, atol=1e-14 * m**2)
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), m, rtol=1e-14)
    np.testing.assert_allclose(W.sum(axis=0), 0.0, atol=1e-14 * m)
    rel, m_fit = etf_gram_error(W)
    assert rel < 1e-14 and abs(m_fit - m) < 1e-14 * m


def test_centring_basis_is_orthonormal_complement_of_ones():
    B = centring_basis(7)
    np.testing.assert_allclose(B.T @ B, np.eye(6), atol=1e-15)
    np.testing.assert_allclose(B @ B.T, np.eye(7) - 1 / 7, atol=1e-15)


def test_embeddings_differ_by_seed_but_not_gram():
    W1, W2 = simplex_etf(4, 9, 1.0, seed=0), simplex_etf(4, 9, 1.0, seed=1)
    assert np.abs(W1 - W2).max() > 1e-3
    np.testing.assert_allclose(W1 @ W1.T, W2 @ W2.T, atol=1e-14)


def test_gram_error_detects_a_non_etf():
    W = simplex_etf(5, 5, 1.0, seed=0)
    W[0] *= 1.01  # one row 1% longer: no longer an ETF
    assert etf_gram_error(W)[0] > 1e-3


@pytest.mark.parametrize("C, d", [(1, 3), (4, 2)])
def test_bad_sizes_raise(C, d):
    with pytest.raises(ValueError):
        simplex_etf(C, d)
