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

Every computation of ufm runs in float64 (verification is meaningless in float32), scoped to ufm's own calls:
importing the package changes no global setting, and a user's JAX code keeps its dtypes (``ufm.precision``).
"""

__version__ = "0.1.0"

from ufm.api import run, run_batch
from ufm.checks import Check, Verdict
from ufm.problems.ce import CEProblem
from ufm.problems.mixup import MixupProblem
from ufm.problems.mixup_deep import MixupDeepProblem
from ufm.problems.mixup_joint import MixupJointProblem
from ufm.problems.nonnegative import MemorizationDilationProblem, NonnegProblem
from ufm.problems.square_loss import SquareLossProblem
from ufm.report import Report
from ufm.solver import Status

__all__ = [
    "run",
    "run_batch",
    "Report",
    "Check",
    "Verdict",
    "Status",
    "MixupProblem",
    "MixupDeepProblem",
    "MixupJointProblem",
    "SquareLossProblem",
    "NonnegProblem",
    "MemorizationDilationProblem",
    "CEProblem",
    "__version__",
]
