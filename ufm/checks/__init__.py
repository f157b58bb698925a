"""Named, toleranced comparisons of a solution with its theory; one module of check functions per family."""

from __future__ import annotations

import dataclasses
import enum
import math


class Verdict(str, enum.Enum):
    """Outcome of one check. ``INFO``: reported, not graded; ``VOID``: undefined at this configuration (a zero
    vector to normalise, a void span, a trivial optimum), so there is nothing to grade."""

    PASS = "PASS"
    FAIL = "FAIL"
    INFO = "info"
    VOID = "VOID"

    def __str__(self) -> str:
        return self.value


SENSES = ("<=", ">=")


@dataclasses.dataclass(frozen=True)
class Check:
    """One verified statement: the measured ``value`` against the bound ``tol`` (``tol=None``: reported only), in
    the sense ``sense``: ``"<="`` for a residual that must be small, ``">="`` for a quantity that must be large.

    The one check record of ufm's runs and of its certificates (``ufm.proofs_check``, whose checks are the worst
    value over a grid of instances and name that instance in ``worst_at``). ``void``: the reason the check is
    undefined at this configuration; a void check is not graded, whatever its value. A graded check whose value is
    NaN or infinite fails (a broken computation can never pass) and says so in its detail.
    """

    name: str
    value: float
    tol: float | None
    detail: str = ""
    void: str | None = None
    sense: str = "<="
    worst_at: dict | None = None

    def __post_init__(self):
        if self.sense not in SENSES:
            raise ValueError(f"sense must be '<=' or '>=', got {self.sense!r}")
        value = float(self.value)
        object.__setattr__(self, "value", value)
        if self.graded and not math.isfinite(value) and "non-finite" not in self.detail:
            note = f"graded value is non-finite ({value})"
            object.__setattr__(self, "detail", f"{note}; {self.detail}" if self.detail else note)

    @classmethod
    def undefined(cls, name: str, reason: str) -> Check:
        """A check that is undefined here (reported as VOID with its reason, never graded)."""
        return cls(name, float("nan"), None, reason, void=reason)

    @property
    def graded(self) -> bool:
        return self.tol is not None and self.void is None

    @property
    def passed(self) -> bool:
        if not self.graded or self.tol is None:  # (graded implies a tolerance; the second test narrows the type)
            return True
        if not math.isfinite(self.value):
            return False
        return self.value <= self.tol if self.sense == "<=" else self.value >= self.tol

    @property
    def verdict(self) -> Verdict:
        if self.void is not None:
            return Verdict.VOID
        if not self.graded:
            return Verdict.INFO
        return Verdict.PASS if self.passed else Verdict.FAIL

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": self.value,
            "sense": self.sense,
            "tol": self.tol,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "void": self.void,
            "worst_at": self.worst_at,
        }


def void_unless(check: Check, defined: bool, reason: str) -> Check:
    """``check`` where it is defined, else the same check reported as VOID with ``reason``."""
    return check if defined else dataclasses.replace(check, void=reason, detail=reason)
