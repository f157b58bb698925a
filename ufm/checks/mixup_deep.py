"""Checks of the two-layer mixup model (seed 001's per-layer question).

There is no closed form for the nonlinear model; what is graded is what must hold exactly: convergence of the
best restart, linearity of the input mix, and (linear activation) exact linearity of every layer. NonLin values
themselves are reported only.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check

LINEAR_TOL = 1e-10  # relative to the layer's vertex norm: the composition of linear maps is exact up to rounding


def converged(rule: str, rel_grad: float, ok: bool, rtol: float) -> Check:
    return Check(f"{rule}: best restart converged (rel grad)", rel_grad if ok else float("inf"), rtol,
                 "" if ok else f"status not converged, rel grad {rel_grad:.2e}")


def restarts_at_best(rule: str, loss: np.ndarray, rtol: float = 1e-9) -> Check:
    """How many restarts reach the best loss (to ``rtol`` relative): info on the nonconvex landscape."""
    best = float(np.min(loss))
    hits = int(np.sum(loss <= best + rtol * max(1.0, abs(best))))
    return Check(f"{rule}: restarts reaching the best loss", float(hits), None,
                 f"{hits}/{loss.size}; losses {np.min(loss):.10g} .. {np.max(loss):.10g}")


def exactly_linear(rule: str, layer: str, unnormalised_rel: float) -> Check:
    """A layer that is a composition of linear maps of the input mix: unnormalised NonLin / vertex norm = 0."""
    return Check(f"{rule}: layer {layer} exactly linear (unnormalised NonLin, rel)", unnormalised_rel, LINEAR_TOL)
