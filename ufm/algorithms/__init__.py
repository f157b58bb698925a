"""Algorithms that wrap the shared solver (``ufm.solver.minimise``), reusable by every family: candidate starts
beside seeded restarts and which restarts are graded (:mod:`ufm.algorithms.restarts`), acceptance of stalls at a
degenerate minimum's rounding floor (:mod:`ufm.algorithms.rounding_floor`)."""
