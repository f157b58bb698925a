"""Suite-wide settings: float64 JAX for the whole test process, the hypothesis profiles, and JAX's persistent
compilation cache for the test session.

float64: importing ufm changes no global setting (its entry points run in ``jax.enable_x64(True)``,
``ufm.precision``), but the tests also call its internals directly (the solver, objectives, algorithms), so the
suite, a program of its own, turns 64-bit mode on for its process. ``tests/test_precision.py`` checks the scoped
behaviour in a fresh process.

Compilation cache (opt-in: ``UFM_TEST_JAX_CACHE=1``): JAX's persistent cache under pytest's cache folder
(``.pytest_cache/d/jax-compilation-cache``; a temporary folder with ``-p no:cacheprovider``), inherited by the
subprocesses through the environment. Measured on seven test files (CLI, signals, output files, CLI properties,
mixup points, mixup-joint, square loss; 2-core machine under load): no cache 4:58 wall / 194 s user; cold cache
4:47 / 183 s and 6:18 / 203 s (load 5-7): in a cold session only 9 of 98 cacheable programs repeat (0.9 s of
compilation saved; the in-memory jit cache already serves the rest), so a fresh clone (CI) gains nothing
measurable and it stays off by default; a warm cache (a second local run) took 2:12 / 81 s. This is for tests
only: importing ufm sets nothing. Without the opt-in, the command-line subprocesses get a cache
folder of their own for the session (``UFM_CACHE_DIR``), never the user's.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import jax
from hypothesis import HealthCheck, settings
from inprocess import FAST_COMPILATION

jax.config.update("jax_enable_x64", True)  # the suite's choice (above); ufm's import leaves it alone

# XLA's CPU compilation tuned for compilation speed in the suite (its workers and the command lines it runs), unless
# ``UFM_TEST_XLA_DEFAULT=1`` or XLA_FLAGS already sets a level: LLVM optimization level 0 and the elemental emitters
# (inprocess.FAST_COMPILATION). Two thirds of the suite's time was XLA compilation of small programs, so compiling
# them fast matters more than running them fast. Measured, the whole suite on 2 cores (``pytest --durations=0
# -p no:cacheprovider``): 597 s with level 0 alone, 268 s with both flags (717 passed each; level 0 alone had
# taken it from 588 s at XLA's default to 561 s on an earlier day); four families' default runs compiled in 19.9 s
# at XLA's default, 15.1 s at level 0 and 4.6 s with both. Both compile the same HLO program with IEEE float64
# semantics (no fast math at either setting): a square-loss run C = 3, n = 5 gives identical W and H with and
# without the emitter flag, and F to 2.2e-16 (W up to the model's rotation symmetry) at level 0; a test that passes
# at one setting and fails at another depends on rounding luck. The end-to-end subprocess run of tests/test_cli.py
# compiles as a user's run does (inprocess.default_compilation_env). An XLA that does not know a flag aborts the
# process, so the emitter flag is tried in a subprocess first (1-2 s, once: xdist workers inherit the
# environment). Set before any JAX computation: the CPU backend reads XLA_FLAGS when it starts.
_DEFAULT_XLA = os.environ.get("UFM_TEST_XLA_DEFAULT", "0") == "1"


def _xla_accepts(flag: str) -> bool:
    """Whether the installed XLA starts its CPU backend with ``flag`` in XLA_FLAGS."""
    env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu")
    probe = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, stdin=subprocess.DEVNULL)
    return run.returncode == 0


if not _DEFAULT_XLA and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    level, emitters = FAST_COMPILATION
    added = [level] + ([emitters] if _xla_accepts(emitters) else [])
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *added]).strip()

assert jax.config.jax_enable_x64

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci",
    max_examples=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=_SLOW_OK,
    print_blob=True,
)
settings.register_profile("long", max_examples=60, deadline=None, suppress_health_check=_SLOW_OK, print_blob=True)
settings.load_profile(os.environ.get("UFM_HYPOTHESIS_PROFILE", "ci"))


def _pin_worker() -> None:
    """Under pytest-xdist, give each worker a core of its own (and its subprocesses, which inherit it): XLA's CPU
    thread pool sized for every core, in two processes sharing two cores, spends its time spinning."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if worker.startswith("gw") and 1 < count <= len(cores):
        share = len(cores) // count
        index = int(worker[2:])
        os.sched_setaffinity(0, cores[index * share : (index + 1) * share])


_pin_worker()


def pytest_configure(config):
    if os.environ.get("UFM_TEST_JAX_CACHE", "0") != "1":
        # The command line's own cache (python -m ufm.solve, default ~/.cache/ufm/jax) must not be written by the
        # suite's subprocess runs: they get a folder of this session, removed at the end.
        if "UFM_CACHE_DIR" not in os.environ:
            folder = tempfile.mkdtemp(prefix="ufm-test-cli-cache-")
            os.environ["UFM_CACHE_DIR"] = folder
            config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
        return
    cache = getattr(config, "cache", None)
    folder = str(cache.mkdir("jax-compilation-cache")) if cache is not None else tempfile.mkdtemp(prefix="ufm-jax-")
    if cache is None:
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder  # subprocesses (python -m ufm.solve, ...) share it
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
