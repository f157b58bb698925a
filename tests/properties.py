"""The invariant every property test asserts about one run of a family (see tests/test_properties_*.py).

A run over a valid configuration either passes, or fails for a NAMED, genuine reason: a solver status other than
converged that the report states, or a disagreement with theory that is documented as a finding. Never a traceback
(the test calls the family's run directly, so an exception fails it), never a NaN or infinity in a graded check,
never a VOID check without its reason or a graded check that is undefined.
"""

from __future__ import annotations

import math

from ufm.checks import Verdict


def assert_named_outcome(report, *, genuine_failures: dict[str, str] | None = None) -> None:
    """Assert the invariant on ``report``; ``genuine_failures`` maps a check name that may fail at this
    configuration to the documented reason why (a finding, not a defect)."""
    genuine_failures = genuine_failures or {}
    for check in report.checks:
        if check.verdict is Verdict.VOID:
            assert check.void, f"VOID check without a reason: {check.name}"
        if check.graded:
            assert math.isfinite(check.value), f"graded check is {check.value}: {check.name} ({check.detail})"
    unexplained = [
        f"{c.name} = {c.value:.3g} > {c.tol:.1e} ({c.detail})"
        for c in report.failed_checks
        if c.name not in genuine_failures
    ]
    assert not unexplained, f"{report.family} {report.config}: failed without a known reason: {unexplained}"
