"""Every objective's derivatives against finite differences (jax.test_util.check_grads, float64), and the
solver's compile cache (a sweep over values of the same shapes must not recompile)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from ufm.etf import simplex_etf
from ufm.families import mixup as mixup_family
from ufm.objectives.mixup import MixupData, mixup_feature_loss, soft_target, square_feature_loss
from ufm.objectives.nonnegative import (
    DilationData,
    NonnegData,
    model1_loss,
    model2_loss,
    model3_lagrangian,
    smoothed_targets,
)
from ufm.objectives.square_loss import SquareLossData, square_loss
from ufm.problems.mixup import MixupProblem

rng = np.random.default_rng(0)


def grads_ok(fun, params, data):
    # The derivatives the solver uses, against central differences: the gradient (reverse mode) and the
    # Hessian-vector product as forward over reverse (what jax.hessian and jax.linearize of the gradient compute).
    # check_grads' default float64 tolerances (~1e-5 relative: what differences with eps 1e-6 can resolve).
    loss = jax.jit(lambda p: fun(p, data))
    check_grads(loss, (params,), order=1, modes=("rev",))
    check_grads(jax.jit(jax.grad(loss)), (params,), order=1, modes=("fwd",))


def test_mixup_objectives():
    W = jnp.asarray(simplex_etf(4, 6, 1.3, seed=1))
    data = MixupData(W, soft_target(4, 1, 2, 0.3), jnp.asarray(0.05))
    for fun in (mixup_feature_loss, square_feature_loss):
        grads_ok(fun, jnp.asarray(rng.standard_normal(6)), data)


def test_square_loss_objective_linear_and_relu():
    K, n, d = 3, 2, 4
    Y = jnp.asarray(np.repeat(np.eye(K), n, axis=1))
    params = {
        "layers": [jnp.asarray(rng.standard_normal((d, d))), jnp.asarray(rng.standard_normal((K, d)))],
        "H": jnp.asarray(rng.uniform(0.1, 1.0, (d, K * n))),
        "b": jnp.asarray(rng.standard_normal(K)),
    }
    for relu in (0.0, 1.0):
        data = SquareLossData(
            Y, jnp.zeros((1, K * n)), jnp.asarray([1e-2, 2e-2]), jnp.asarray(3e-2), jnp.asarray(0.1), jnp.asarray(relu)
        )
        grads_ok(square_loss, params, data)


def test_nonnegative_objectives():
    K, n, d = 3, 3, 4  # 2 clean + 1 noisy per class (one clean sample would make D_k = 0, where sqrt has no derivative)
    labels = np.repeat(np.arange(K), n)
    data = NonnegData(
        smoothed_targets(jnp.asarray(labels), K, 0.1),
        jnp.asarray(1.0),
        jnp.asarray(2.0),
        jnp.asarray(1e-2),
        jnp.asarray(2e-2),
    )
    G = jnp.asarray(rng.uniform(0.5, 1.5, (d, K * n)))
    grads_ok(model1_loss, {"V": jnp.asarray(rng.standard_normal((K, d))), "G": G}, data)
    grads_ok(model2_loss, {"W": jnp.asarray(rng.standard_normal((K, d))), "H": G}, data)
    clean = np.eye(K)[labels] * (np.arange(K * n) % n != n - 1)[:, None]
    noisy = np.eye(K)[labels] * (np.arange(K * n) % n == n - 1)[:, None]
    md = DilationData(
        data.Q,
        data.lambda_W,
        data.lambda_H,
        jnp.asarray(clean),
        jnp.asarray(noisy),
        jnp.asarray(1.0),
        jnp.asarray([0.1, 0.0, 0.2]),
        jnp.asarray(10.0),
    )
    grads_ok(model3_lagrangian, {"W": jnp.asarray(rng.standard_normal((K, d))), "H": G}, md)


def test_sweep_over_values_does_not_recompile():
    """Two solves of the same shapes share one compiled executable (compile time ~0 on the second)."""
    first = mixup_family.solve(MixupProblem(C=3, mu=0.1, n_lambdas=5)).solution
    second = mixup_family.solve(MixupProblem(C=3, mu=0.02, n_lambdas=5)).solution
    assert second.compile_seconds < 0.05 * max(first.compile_seconds, 1e-3) or second.compile_seconds < 1e-3
    assert not np.allclose(first.loss, second.loss)  # a genuinely different problem was solved
