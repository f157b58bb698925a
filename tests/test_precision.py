"""float64 scoped to ufm's computations (``ufm.precision``): importing ufm and running it leave a user's JAX in
the precision it had, ufm's own results are float64 and its checks pass, and the solver called outside ufm's
entry points in float32 refuses to run. In a fresh process: the suite itself runs with 64-bit mode on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    import ufm
    from ufm.solver import SolverOptions, minimise
    assert not jax.config.read("jax_enable_x64"), "importing ufm switched JAX to 64-bit"
    mine = jnp.ones(3) * 0.1
    report = ufm.run(ufm.MixupProblem(C=2, n_lambdas=3))
    assert report.passed, [c.name for c in report.failed_checks]
    assert all(np.asarray(a).dtype != np.float32 for a in report.arrays.values())
    assert report.arrays["h"].dtype == np.float64
    assert not jax.config.read("jax_enable_x64"), "ufm.run left 64-bit mode on"
    assert mine.dtype == jnp.float32 and (jnp.ones(2) * 0.5).dtype == jnp.float32
    try:
        minimise(lambda x, _: jnp.sum(x * x), jnp.ones((1, 2)), None, options=SolverOptions(progress=False))
    except RuntimeError as err:
        assert "float64" in str(err)
    else:
        raise AssertionError("the solver ran in float32")
    with jax.enable_x64(True):
        sol = minimise(lambda x, _: jnp.sum(x * x), jnp.ones((1, 2)), None, options=SolverOptions(progress=False))
    assert sol.params.dtype == np.float64 and isinstance(sol.params, np.ndarray)
    print("ok")
    """
)


def test_ufm_leaves_a_users_float32_alone_and_computes_in_float64():
    env = dict(os.environ)  # the suite's compilation settings: only the precision is under test
    env.pop("JAX_ENABLE_X64", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
