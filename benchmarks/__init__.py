"""Benchmarks, run on demand (``python -m benchmarks.run``): programs of their own, so they turn JAX's 64-bit mode
on for their whole process (ufm's import leaves it alone; the benchmarks call the solver and objectives
directly, not only through ufm's entry points, and their baselines compute in float64 too)."""

import jax

jax.config.update("jax_enable_x64", True)
