"""The certificate record shared by every family: measurements with tolerances, instances, verdict, JSON.

A certificate is one theorem (or lemma, or scalar fact a proof relies on) checked on a grid of instances. It holds
a list of measurements, each a :class:`ufm.checks.Check` (the record of ufm's runs too): the worst value over all
instances of one numerical quantity, the bound it must satisfy (``tol``, in the sense ``<=`` or ``>=``), and the
instance where the worst value occurred (``worst_at``). The verdict is

- ``FAIL`` if any graded measurement misses its bound (NaN always misses), naming the instance;
- ``CONDITIONAL`` if every bound holds but the certificate found a condition the statement needs beyond its
  hypotheses (``condition`` says which);
- ``PASS`` otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ufm.checks import Check

EPS = float(np.finfo(np.float64).eps)

PASS, FAIL, CONDITIONAL = "PASS", "FAIL", "CONDITIONAL"


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A theorem checked on instances. ``measurements[0]`` is the headline residual shown in the table.

    ``min_hessian_eig`` is the smallest Hessian eigenvalue found at the claimed optimum (None if not applicable);
    ``restarts`` counts solver runs from random starts used as global evidence (0 if none), of which
    ``restarts_converged`` converged.
    """

    family: str
    theorem: str
    source: str
    statement: str
    method: str
    measurements: list[Check]
    instances: list[dict]
    min_hessian_eig: float | None = None
    restarts: int = 0
    restarts_converged: int = 0
    condition: str | None = None
    seconds: float = 0.0

    @property
    def failures(self) -> list[Check]:
        return [m for m in self.measurements if not m.passed]

    @property
    def verdict(self) -> str:
        if self.failures:
            return FAIL
        return CONDITIONAL if self.condition else PASS

    @property
    def headline(self) -> Check:
        return self.measurements[0]

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "theorem": self.theorem,
            "verdict": self.verdict,
            "source": self.source,
            "statement": self.statement,
            "method": self.method,
            "condition": self.condition,
            "n_instances": len(self.instances),
            "min_hessian_eig": self.min_hessian_eig,
            "restarts": self.restarts,
            "restarts_converged": self.restarts_converged,
            "seconds": self.seconds,
            "measurements": [m.to_dict() for m in self.measurements],
            "failures": [m.to_dict() for m in self.failures],
            "instances": self.instances,
        }


def worst(
    values,
    instances: list[dict],
    name: str,
    bound: float | None,
    *,
    sense: str = "<=",
    where: list[dict] | None = None,
    note: str = "",
) -> Check:
    """The check of the worst of ``values`` (one per instance; max for "<=", min for ">="; NaN counts as worst).

    ``where`` optionally gives, per instance, the subproblem inside it where that instance's value occurred.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return Check(name, float("nan"), bound, note or "no instances", sense=sense)
    key = np.where(np.isnan(values), np.inf, values if sense == "<=" else -values)
    i = int(np.argmax(key))
    at = dict(instances[i]) if instances else {}
    if where is not None:
        at.update(where[i])
    return Check(name, float(values[i]), bound, note, sense=sense, worst_at=at)


def jsonable(x: Any) -> Any:
    """numpy scalars/arrays to Python; NaN/inf to None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
