"""proofs_check: a certificate for every theorem ufm verifies, built only from ufm's public API.

Run ``python -m ufm.proofs_check`` (every family) or ``python -m ufm.proofs_check mixup`` (one family). Each family is
one
module ``proofs_check/<family>.py`` defining FAMILY, DESCRIPTION and CERTIFICATES, a list of functions that take
only keyword arguments with defaults and return a :class:`proofs_check.certificate.Certificate`. Adding a family is
that module plus one line in :data:`FAMILIES`.

A certificate checks, per instance of a grid: the theorem's hypotheses; first-order optimality of the closed form
itself (gradient or KKT residual at it, no solver); second order (Hessian spectrum at it); global evidence
(convexity, or seeded solver restarts); the scalar facts the proof relies on; lemmas that are plain identities.
"""

from __future__ import annotations

import importlib
import os

# Dense eigenvalue problems here are small (at most ~700 x 700). On a 2-core machine shared with other jobs,
# multi-threaded OpenBLAS spins on oversubscribed cores and a 500 x 500 eigvalsh took 2.5 s instead of 0.01 s:
# use one BLAS thread unless the user chose otherwise. Effective only if numpy is not loaded yet (as under
# ``python -m ufm.proofs_check``).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import ufm  # noqa: E402,F401  (the public API the certificates are built from)

FAMILIES = {
    "mixup": "ufm.proofs_check.mixup",
    "lemmas": "ufm.proofs_check.lemmas",
    "square_loss": "ufm.proofs_check.square_loss",
    "nonnegative": "ufm.proofs_check.nonnegative",
    "ce": "ufm.proofs_check.ce",
}


def load(name: str):
    """The module of family ``name`` (a key of :data:`FAMILIES`)."""
    return importlib.import_module(FAMILIES[name])
