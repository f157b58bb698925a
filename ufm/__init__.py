"""ufm: unconstrained-features models solved to machine precision and checked against closed forms.

Data flows problem -> objective -> solver -> result -> theory -> checks -> report:

- ``ufm.problems``     frozen dataclasses of sizes and hyper-parameters (validated on construction);
- ``ufm.objectives``   pure JAX losses ``loss(params, data)``;
- ``ufm.solver``       the one shared batched Newton / quasi-Newton solver;
- ``ufm.theory``       closed forms, numpy/scipy only (no JAX);
- ``ufm.checks``       named, toleranced comparisons of a solution with the theory;
- ``ufm.families``     one module per loss family wiring the above together for the CLI;
- ``ufm.report``       tables, JSON and NPZ written atomically.

Importing the package enables float64 in JAX: verification is meaningless in float32.
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
