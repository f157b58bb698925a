"""ufm: unconstrained-features models solved to machine precision and checked against closed forms.

Data flows problem -> objective -> solver -> result -> theory -> checks -> report:

- ``ufm.problems``     frozen dataclasses of sizes and hyper-parameters (validated on construction);
- ``ufm.objectives``   pure JAX losses ``loss(params, data)``;
- ``ufm.solver``       the one shared batched Newton / quasi-Newton solver;
- ``ufm.theory``       closed forms, numpy/scipy only (no JAX);
- ``ufm.checks``       named, toleranced comparisons of a solution with the theory;
- ``ufm.families``     one module per loss family wiring the above together for the CLI;
- ``ufm.report``       tables, JSON and NPZ written atomically;
- ``ufm.api``          the public entry points ``ufm.run(problem) -> Report`` and ``ufm.run_batch(problems)`` (problems
  of one shape in one batched solve), exported here with the problem dataclasses.

Importing the package enables float64 in JAX: verification is meaningless in float32.
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from ufm.api import run, run_batch  # noqa: E402  (after float64 is on)
from ufm.checks import Check, Verdict  # noqa: E402
from ufm.problems.ce import CEProblem  # noqa: E402
from ufm.problems.mixup import MixupProblem  # noqa: E402
from ufm.problems.mixup_deep import MixupDeepProblem  # noqa: E402
from ufm.problems.mixup_joint import MixupJointProblem  # noqa: E402
from ufm.problems.nonnegative import MemorizationDilationProblem, NonnegProblem  # noqa: E402
from ufm.problems.square_loss import SquareLossProblem  # noqa: E402
from ufm.report import Report  # noqa: E402

__all__ = [
    "run",
    "run_batch",
    "Report",
    "Check",
    "Verdict",
    "MixupProblem",
    "MixupDeepProblem",
    "MixupJointProblem",
    "SquareLossProblem",
    "NonnegProblem",
    "MemorizationDilationProblem",
    "CEProblem",
    "__version__",
]
