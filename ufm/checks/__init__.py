"""Named, toleranced comparisons of a solution with its theory; one module of check functions per family."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Check:
    """One verified statement: the measured worst residual ``value`` against ``tol`` (``tol=None``: reported only).

    ``passed`` is False for NaN values, so a broken computation can never pass.
    """

    name: str
    value: float
    tol: float | None
    detail: str = ""

    @property
    def graded(self) -> bool:
        return self.tol is not None

    @property
    def passed(self) -> bool:
        return (not self.graded) or (math.isfinite(self.value) and self.value <= self.tol)

    @property
    def verdict(self) -> str:
        return "info" if not self.graded else ("PASS" if self.passed else "FAIL")

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "tol": self.tol, "verdict": self.verdict, "detail": self.detail}
