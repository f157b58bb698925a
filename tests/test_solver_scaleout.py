"""Solver performance work (issue 7): batch sharding across devices, the structured mixup Newton solve, and
finished elements of a vmapped batch not changing anyone's answer. Multi-device runs use forced host devices
(XLA_FLAGS) in subprocesses, each with a timeout, so that a deadlock fails instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from inprocess import run_main

from ufm.etf import simplex_etf
from ufm.objectives.mixup import MixupData, mixup_feature_loss, mixup_newton_system, soft_target
from ufm.solver import SolverOptions, minimise
from ufm.theory import mixup as theory

AXES = MixupData(None, 0, None)


def host_devices(count: int) -> str:
    """XLA_FLAGS for ``count`` CPU devices, keeping the suite's own flags (its compilation setting)."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()


def _mixup_batch(C, d, n_lambdas, seed=0, W=None):
    W = simplex_etf(C, d, 1.0, seed) if W is None else W
    c, cp, lam = (
        x.ravel() for x in np.meshgrid(np.arange(C), np.arange(C), np.linspace(0, 1, n_lambdas), indexing="ij")
    )
    data = MixupData(jnp.asarray(W), soft_target(C, c, cp, lam), jnp.asarray(1e-2))
    h0 = np.random.default_rng(seed).standard_normal((c.size, d)) / np.sqrt(d)
    return W, c, cp, lam, data, jnp.asarray(h0)


SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)  # the solver is called directly, not through ufm.run
    from ufm.objectives.mixup import MixupData, mixup_feature_loss, soft_target
    from ufm.etf import simplex_etf
    from ufm.solver import SolverOptions, minimise
    assert jax.device_count() == 4, jax.devices()
    out = {}
    for n_lambdas in (7, 4):  # 5*5*7 = 175 subproblems (slices 43, 44, 44, 44), then 100 (a multiple of 4)
        C, d = 5, 6
        W = simplex_etf(C, d, 1.0, 0)
        c, cp, lam = (x.ravel() for x in np.meshgrid(np.arange(C), np.arange(C), np.linspace(0, 1, n_lambdas),
                                                      indexing="ij"))
        data = MixupData(jnp.asarray(W), soft_target(C, c, cp, lam), jnp.asarray(1e-2))
        h0 = jnp.asarray(np.random.default_rng(0).standard_normal((c.size, d)) / np.sqrt(d))
        sols = {shard: minimise(mixup_feature_loss, h0, data, args_axes=MixupData(None, 0, None),
                                options=SolverOptions(progress=False, shard_batch=shard)) for shard in (False, True)}
        a, b = sols[False], sols[True]
        out[n_lambdas] = {
            "n": int(c.size),
            "devices_used": len(set(b.devices)),
            "one_device": list(a.devices),
            "max_abs_diff": float(np.max(np.abs(np.asarray(a.params) - np.asarray(b.params)))),
            "max_abs_h": float(np.max(np.abs(np.asarray(a.params)))),
            "same_steps": bool(np.array_equal(a.steps, b.steps)),
            "same_status": bool(np.array_equal(a.status, b.status)),
            "all_converged": bool(a.converged.all() and b.converged.all()),
            "shape": list(np.asarray(b.params).shape),
        }
    print(json.dumps(out))
""")


def test_sharded_batch_matches_one_device():
    """4 CPU devices (XLA_FLAGS, in a subprocess): the batch is split across them and every element's answer is
    the same as on one device: same steps and statuses, features equal to 64 ulps of the largest feature. Not
    bitwise: XLA blocks the batched matrix products differently for a per-device batch of 44 than for 175, so
    iterates differ in the last bits (measured: 4.4e-15 on features of size 3.3, about 6 ulps); 64 ulps is still
    far below the problem's own rounding floor (cond(H) eps, cond <= 1 + kappa = 126 here). Both cases name
    all 4 devices (175 is not a multiple of 4: the slices differ by one element, nothing is padded)."""
    env = dict(os.environ, XLA_FLAGS=host_devices(4), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in out.values():
        assert case["shape"][0] == case["n"]  # padding dropped
        assert case["all_converged"] and case["same_steps"] and case["same_status"]
        assert case["max_abs_diff"] <= 64 * np.finfo(float).eps * case["max_abs_h"], case
        assert case["devices_used"] == 4 and len(case["one_device"]) == 1


def _mixup_cli(devices: int, out) -> tuple[dict, dict]:
    """``python -m ufm.solve --loss mixup --C 10`` (its default grid: 101 lambdas x 100 ordered pairs = 10100
    subproblems) on ``devices`` forced host devices, compiling afresh (``--no-cache``: nothing is written to the
    user's compilation cache): its summary.json and features.npz."""
    env = dict(os.environ, XLA_FLAGS=host_devices(devices), JAX_PLATFORMS="cpu")
    command = [sys.executable, "-m", "ufm.solve", "--loss", "mixup", "--C", "10", "--quiet", "--no-cache"]
    proc = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out / "features.npz") as z:
        return json.loads((out / "summary.json").read_text()), {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def mixup_cli_one_device(tmp_path_factory):
    """The same command on the test process's one CPU device, in-process (no interpreter to start)."""
    out = tmp_path_factory.mktemp("mixup-1-device")
    result = run_main("ufm.solve", "--loss", "mixup", "--C", "10", "--quiet", "--no-cache", "--out", str(out))
    assert result.code == 0 and len(jax.devices()) == 1, result.stderr[-2000:]
    with np.load(out / "features.npz") as z:
        return json.loads((out / "summary.json").read_text()), {k: z[k] for k in z.files}


@pytest.mark.parametrize("devices", [2, 4])
def test_mixup_cli_on_host_devices_matches_one_device(mixup_cli_one_device, devices, tmp_path):
    """The CLI's default mixup grid (10100 subproblems) on 2 and 4 host devices: it finishes (it used to
    deadlock once a device held 601 or more 10 x 10 Cholesky factorizations: jaxlib's batched LAPACK kernel
    then waits on the intra-op thread pool that the other devices' programs occupy), names its devices, and
    gives the one-device run's verdicts, statuses, steps and features. Features to 256 ulps of the largest (the
    per-device batch changes how XLA blocks batched products; measured: 2.3e-14 on features of size 4.0, about
    26 ulps; the rounding floor is cond(H) eps, cond <= 1 + kappa = 112)."""
    base, base_arrays = mixup_cli_one_device
    summary, arrays = _mixup_cli(devices, tmp_path)
    assert len(base["convergence"]["devices"]) == 1
    assert len(set(summary["convergence"]["devices"])) == devices
    assert summary["convergence"]["subproblems"] == 10100 and summary["passed"] and base["passed"]
    assert [(c["name"], c["verdict"]) for c in summary["checks"]] == [(c["name"], c["verdict"]) for c in base["checks"]]
    for key in ("c", "c_prime", "steps", "converged"):
        np.testing.assert_array_equal(arrays[key], base_arrays[key])
    h = base_arrays["h"]
    np.testing.assert_allclose(arrays["h"], h, rtol=0, atol=256 * np.finfo(float).eps * np.max(np.abs(h)))


def test_batch_equals_one_at_a_time():
    """vmap(solve)(batch) == [solve(p) for p in batch]: finished elements leave the vmapped loops (line search,
    CG, Newton chunk) early, and this must not change any element's iterates or step count. Also for the
    structured solve. Same steps exactly; features to 16 ulps of the largest: XLA's batched products round
    differently for a batch of 1 and of 4 (measured: 1 ulp), while a wrongly masked step would move h by
    orders of magnitude more."""
    W, c, cp, lam, data, h0 = _mixup_batch(4, 5, 3)
    pick = np.array([0, 7, 20, 41])  # same-class and mixed points
    h0 = h0.at[pick[1]].multiply(40.0).at[pick[2]].multiply(8.0)  # far starts: they finish later
    sub = MixupData(data.W, data.y[pick], data.mu)
    for options in (SolverOptions(progress=False), SolverOptions(progress=False, newton_system=mixup_newton_system(W))):
        batch = minimise(mixup_feature_loss, h0[pick], sub, args_axes=AXES, options=options)
        assert len(set(batch.steps.tolist())) > 1  # the elements really finish at different steps
        for k, i in enumerate(pick):
            one = minimise(
                mixup_feature_loss,
                h0[i : i + 1],
                MixupData(data.W, data.y[i : i + 1], data.mu),
                args_axes=AXES,
                options=options,
            )
            scale = np.max(np.abs(np.asarray(batch.params)[k]))
            np.testing.assert_allclose(
                np.asarray(one.params)[0], np.asarray(batch.params)[k], rtol=0, atol=16 * np.finfo(float).eps * scale
            )
            assert one.steps[0] == batch.steps[k]


@pytest.mark.parametrize("tight", [True, False])
def test_structured_newton_direction_equals_dense_solve(tight):
    """The Woodbury/Sherman-Morrison direction equals -(H + shift I)^{-1} g from jax.hessian and numpy's solve.
    Tolerance 1e-9 relative: the Sherman-Morrison denominator 1 - q^T M^{-1} q loses digits when softmax(W h) is
    very confident (measured up to 2e-10 at logit scale 30); an inexact direction costs Newton steps, not
    accuracy, since convergence is judged on the true gradient."""
    rng = np.random.default_rng(1)
    C, d = 6, 9
    W = simplex_etf(C, d, 1.3, 2) if tight else rng.standard_normal((C, d))
    system = mixup_newton_system(W)
    for scale in (0.1, 3.0, 30.0):
        for shift in (0.0, 0.3):
            h = rng.standard_normal(d) * scale / np.sqrt(d)
            data = MixupData(jnp.asarray(W), soft_target(C, 1, 4, 0.3), jnp.asarray(0.05))
            g = jax.grad(mixup_feature_loss)(jnp.asarray(h), data)
            H = np.asarray(jax.hessian(mixup_feature_loss)(jnp.asarray(h), data))
            expected = -np.linalg.solve(H + shift * np.eye(d), np.asarray(g))
            got = np.asarray(system(jnp.asarray(h), g, data, shift))
            assert np.linalg.norm(got - expected) <= 1e-9 * np.linalg.norm(expected), (scale, shift)


def test_structured_solve_reaches_theorem():
    """A mixup batch solved with the structured Newton system matches Theorem 3.1 to the package's feature
    tolerance 1e-10 (FEATURE_TOL; rounding floor ~ cond(H) eps with cond <= 1 + kappa ~ 1e2 here)."""
    W, c, cp, lam, data, h0 = _mixup_batch(6, 8, 5, seed=3)
    sol = minimise(
        mixup_feature_loss,
        h0,
        data,
        args_axes=AXES,
        options=SolverOptions(progress=False, newton_system=mixup_newton_system(W)),
    )
    assert sol.converged.all()
    h_star = theory.optimal_features(W, 1.0, 1e-2, c, cp, lam)
    err = np.linalg.norm(np.asarray(sol.params) - h_star, axis=1) / np.linalg.norm(h_star, axis=1)
    assert err.max() <= 1e-10
