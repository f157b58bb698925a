"""The one convergence check of a batched solve: did the element chosen as best (``ufm.solver.best_element``)
end CONVERGED? Every family grades it the same way, first in its check list."""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.solver import CONVERGED, SADDLE, STATUS_MESSAGES

BEST_CONVERGED = "solver converged at the best restart (0 = yes)"


def status_counts(status) -> str:
    """``"3 converged, 1 saddle point, ..."``: how the elements of a batch ended (solver statuses by message)."""
    status = np.asarray(status)
    short = {s: m.split(":")[0] for s, m in STATUS_MESSAGES.items()}
    return ", ".join(f"{int(np.sum(status == s))} {short[s]}" for s in sorted(STATUS_MESSAGES) if np.any(status == s))


def best_converged(
    status, rel_grad, best: int, rtol: float, *, name: str = BEST_CONVERGED, what: str = "restarts", notes: str = ""
) -> Check:
    """Graded: element ``best`` ended CONVERGED (value 0; 1 otherwise, so that the value stays finite).

    Args:
        status: every element's solver status (``ufm.solver`` constants).
        rel_grad: every element's relative gradient norm.
        best: the element chosen as best.
        rtol: the solver's relative gradient tolerance (reported).
        name: the check's name.
        what: what the elements are, for the detail (e.g. "4 restarts + the zero start").
        notes: appended to the detail (the family's own remarks: coordinates, accepted rounding floors).

    Returns:
        The check; its detail names the best element's status and relative gradient and how every element
        ended, and, where the best did not converge, why (no element converged; every element ended at a saddle;
        the lowest point found did not converge).
    """
    status = np.asarray(status)
    ok = bool(status[best] == CONVERGED)
    detail = (
        f"{what}: {status_counts(status)}; best (element {best}) rel grad {float(rel_grad[best]):.2e} "
        f"(rtol {rtol:.0e}){notes}"
    )
    if not ok:
        why = (
            "no element converged"
            if not np.any(status == CONVERGED)
            else "the lowest point found did not converge (lower than every converged one beyond rounding)"
        )
        if np.all(status == SADDLE):
            why = "every element ended at a saddle point"
        detail = f"{why}: best ended '{STATUS_MESSAGES.get(int(status[best]), status[best])}'; {detail}"
    return Check(name, 0.0 if ok else 1.0, 0.0, detail)


def every_converged(
    solution, rtol: float, name: str = "solver converged on every subproblem (number not converged)"
) -> Check:
    """Graded: every element of a batch of independent subproblems converged (value: the number that did not, 0
    passes; a count, not an infinite value, so that a failing check stays finite).

    Args:
        solution: the batch's ``ufm.solver.Solution``.
        rtol: the solver's relative gradient tolerance (reported).
        name: the check's name.

    Returns:
        The check; its detail gives the max relative gradient and, where some did not converge, their statuses.
    """
    rep = solution.report()
    bad = int(np.sum(~solution.converged))
    detail = f"max rel grad {rep['max_rel_grad_norm']:.2e} (rtol {rtol:.0e})" + (
        f"; {bad} not converged: " + "; ".join(f"{n} {msg}" for msg, n in rep["failures"].items()) if bad else ""
    )
    return Check(name, float(bad), 0.0, detail)


def auxiliary_converged(solves) -> list[Check]:
    """A failing check (the number not converged) for each auxiliary solve ``(name, Solution)`` that did not
    converge everywhere; nothing for those that did (they are contrasts, not the graded solve)."""
    return [
        Check(
            f"auxiliary {name} solve converged (number not converged)",
            float(np.sum(~sol.converged)),
            0.0,
            f"{int(np.sum(~sol.converged))} of {sol.converged.size} subproblems: "
            + "; ".join(f"{n} {msg}" for msg, n in sol.report()["failures"].items()),
        )
        for name, sol in solves
        if not sol.converged.all()
    ]
