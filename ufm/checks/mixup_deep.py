"""Checks of the two-layer mixup model (the per-layer question of Chaudhry et al.).

There is no closed form for the nonlinear model; what is graded is what must hold exactly: convergence of the
best restart, linearity of the input mix, and (linear activation) exact linearity of every layer. NonLin values
themselves are reported only.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check

LINEAR_TOL = 1e-10  # relative to the layer's vertex norm: the composition of linear maps is exact up to rounding


def converged(rule: str, solution, best: int, rtol: float, floor: dict | None = None) -> Check:
    """The best restart (``ufm.solver.best_element``) converged: relative gradient <= ``rtol``, or, for a restart
    in ``floor`` ({restart: (Newton-predicted decrease, f's rounding window)},
    ``ufm.families.mixup_deep.accept_rounding_floor``), stalled at f's rounding floor of a degenerate minimum where
    the Newton model predicts no decrease f can resolve. Graded 0 (yes) or 1 (no), finite either way; the detail
    gives the numbers, counts the restarts that did not converge, by status (saddles included), and names the best
    one's status when it is among them."""
    from ufm.solver import STATUS_MESSAGES

    floor = floor or {}
    ok = bool(solution.converged[best])
    rel_grad = float(solution.rel_grad_norm[best])
    failures = "; ".join(
        f"{n}/{solution.status.size} restart(s): {msg}" for msg, n in solution.report()["failures"].items()
    )
    if not ok:
        detail = f"best restart {best}: {STATUS_MESSAGES[int(solution.status[best])]}, rel grad {rel_grad:.2e}" + (
            "" if solution.converged.any() else "; no restart converged"
        )
    elif best in floor:
        decrease, window = floor[best]
        detail = (
            f"stalled at f's rounding floor (degenerate minimum, rel grad {rel_grad:.2e}): no trial along the "
            f"Newton ray decreased f beyond its rounding window {window:.2e}, the Newton model's decrease in "
            f"the clearly curved directions is {decrease:.2e}"
        )
    else:
        detail = f"rel grad {rel_grad:.2e} (rtol {rtol:.0e})"
    if floor:
        detail = "; ".join(x for x in (detail, f"{len(floor)} restart(s) accepted at the rounding floor") if x)
    detail = "; ".join(x for x in (detail, failures) if x)
    return Check(f"{rule}: best restart converged (0 = yes)", 0.0 if ok else 1.0, 0.0, detail)


def restarts_at_best(rule: str, loss: np.ndarray, converged: np.ndarray, rtol: float = 1e-9) -> Check:
    """How many converged restarts reach the best converged loss (to ``rtol`` relative): info on the landscape."""
    if not np.any(converged):
        return Check(f"{rule}: restarts reaching the best loss", 0.0, None, f"0/{loss.size}: none converged")
    best = float(np.min(loss[converged]))
    hits = int(np.sum(converged & (loss <= best + rtol * max(1.0, abs(best)))))
    return Check(
        f"{rule}: restarts reaching the best loss",
        float(hits),
        None,
        f"{hits}/{loss.size} (converged); losses {np.min(loss):.10g} .. {np.max(loss):.10g}",
    )


def exactly_linear(rule: str, layer: str, unnormalised_rel: float) -> Check:
    """A layer that is a composition of linear maps of the input mix: unnormalised NonLin / vertex norm = 0.
    VOID where the layer is 0 at every vertex (the zero optimum of large weight decays): nothing to compare."""
    name = f"{rule}: layer {layer} exactly linear (unnormalised NonLin, rel)"
    if np.isnan(unnormalised_rel):
        return Check.undefined(name, f"layer {layer} is 0 at every vertex (zero optimum): no scale to compare with")
    return Check(name, unnormalised_rel, LINEAR_TOL)
