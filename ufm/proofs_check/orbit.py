"""Second order at a minimum that is an orbit of a symmetry (the joint UFMs' rotations W -> W Q, H -> H Q): the
Hessian's spectrum split into the orbit's tangent space, where it must vanish, and its complement, where it must
be positive, and the certificate's rows that grade it. Shared by the square-loss and cross-entropy certificates.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.proofs_check.certificate import worst

PSD_TOL = 1e-12  # smallest Hessian eigenvalue / largest |eigenvalue| >= -PSD_TOL (rounding of an AD Hessian)
NULL_TOL = 1e-9  # |eigenvalue| <= NULL_TOL x largest counts as zero (the smallest nonzero one is >= 1e-4 of it here)
TANGENT_RANK_TOL = 1e-10  # singular values of the tangent vectors below this (relative) are rank deficiency
STRICT_TOL = 1e-8  # smallest eigenvalue on the complement of the orbit / largest >= this: strictly positive


def second_order(hess: np.ndarray, tangents: np.ndarray) -> dict:
    """The Hessian's spectrum at a point and the orbit through it.

    Args:
        hess: the Hessian (n x n; symmetrised here).
        tangents: vectors spanning the orbit's tangent space at the point (rows; empty: no symmetry).

    Returns:
        ``dim``, ``min_eig``, ``max_abs_eig``, the orbit dimension ``orbit_dim`` (rank of the tangents), the count
        ``near_zero`` of eigenvalues within NULL_TOL of zero (relative), ``min_eig_complement`` (the smallest
        eigenvalue on the tangents' orthogonal complement) and ``tangent_residual`` (``max ||Hess t||`` over an
        orthonormal basis t of the tangents, relative to the largest eigenvalue).
    """
    hess = (hess + hess.T) / 2
    eig = np.linalg.eigvalsh(hess)
    scale = max(float(np.max(np.abs(eig))), 1e-300)
    rank, tangent_residual = 0, 0.0
    basis = np.eye(hess.shape[0])
    if tangents.size and np.max(np.abs(tangents)) > 0:
        _, s, vt = np.linalg.svd(tangents, full_matrices=True)
        rank = int(np.sum(s > TANGENT_RANK_TOL * s[0]))
        basis = vt[rank:].T
        tangent_residual = float(np.max(np.linalg.norm(hess @ vt[:rank].T, axis=0))) / scale if rank else 0.0
    eig_c = np.linalg.eigvalsh(basis.T @ hess @ basis)
    return {
        "dim": int(hess.shape[0]),
        "min_eig": float(eig[0]),
        "max_abs_eig": scale,
        "orbit_dim": rank,
        "near_zero": int(np.sum(np.abs(eig) <= NULL_TOL * scale)),
        "min_eig_complement": float(eig_c[0]),
        "tangent_residual": tangent_residual,
    }


def orbit_checks(spectra: list[dict], ids: list[dict], *, orbit: str, symmetry: str) -> list[Check]:
    """The certificate's second-order rows over the instances' :func:`second_order` records: strictly positive on
    the orbit's complement, exactly as many near-zero eigenvalues as the orbit's dimension, positive
    semidefinite. ``orbit`` names the orbit in the rows ("rotation orbit"), ``symmetry`` the symmetry in the note
    ("the rotations (W, H) -> (W Q, H Q)")."""
    strict = [s["min_eig_complement"] / s["max_abs_eig"] for s in spectra]
    null_excess = [abs(s["near_zero"] - s["orbit_dim"]) for s in spectra]
    psd = [s["min_eig"] / s["max_abs_eig"] for s in spectra]
    return [
        worst(
            strict,
            ids,
            "second order: smallest eigenvalue on the complement of the orbit / largest",
            STRICT_TOL,
            sense=">=",
            note=f"> 0: strict local minimum up to {symmetry}",
        ),
        worst(
            null_excess,
            ids,
            f"|#(near-zero eigenvalues) - dim({orbit})|",
            0,
            note=f"near zero: |eig| <= {NULL_TOL:g} x largest; orbit dimension: rank of the tangent vectors",
        ),
        worst(psd, ids, "PSD: smallest Hessian eigenvalue / largest", -PSD_TOL, sense=">="),
    ]
