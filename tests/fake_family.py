"""A stand-in ``ufm.solve`` family for tests of the command line around the solve (output files, signals, the
memory guard): it parses --C, builds a frozen problem, and its run returns a small report at once, after calling
``state.during()`` (someone acting during the run: filling --out, sending a signal)."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np

from ufm import families
from ufm.checks import Check
from ufm.report import Report

NAME = "fake"


@dataclasses.dataclass(frozen=True)
class FakeProblem:
    C: int


def install(monkeypatch, *, passed: bool = True, bytes_per_C: int | None = None) -> types.SimpleNamespace:
    """Register the family as ``--loss fake`` for one test; returns its state (``runs`` counts runs, ``during``
    is called inside each run). ``bytes_per_C``: define memory_estimate(problem) = (C * bytes_per_C, "C")."""
    state = types.SimpleNamespace(runs=0, during=lambda: None)
    module = types.ModuleType("ufm_test_fake_family")
    module.NAME, module.DESCRIPTION = NAME, "a stand-in family for tests of the command line"
    module.add_arguments = lambda parser: parser.add_argument("--C", type=int, default=2, help="size (>= 1)")
    module.problem_from_args = lambda ns: FakeProblem(ns.C)
    if bytes_per_C is not None:
        module.memory_estimate = lambda problem: (problem.C * bytes_per_C, "C")

    def run(problem, progress=True, max_memory_bytes=None):
        state.runs += 1
        if progress:
            print("[fake] step 0", file=sys.stderr, flush=True)
        state.during()
        checks = [Check("fake residual", 0.0 if passed else 1.0, 1e-12)]
        convergence = {
            "converged": 1,
            "subproblems": 1,
            "rtol": 1e-12,
            "max_rel_grad_norm": 0.0,
            "max_steps_taken": 1,
            "compile_seconds": 0.0,
            "solve_seconds": 0.0,
        }
        return Report(
            NAME,
            {"C": problem.C},
            [f"fake: C={problem.C}"],
            checks,
            convergence,
            {"C": problem.C},
            {"x": np.arange(problem.C, dtype=float)},
        )

    module.run = run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(families.FAMILIES, NAME, module.__name__)
    return state
