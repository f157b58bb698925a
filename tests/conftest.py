"""Suite-wide settings: float64 JAX (importing ufm enables it), the hypothesis profiles, and JAX's persistent
compilation cache for the test session.

Compilation cache (opt-in: ``UFM_TEST_JAX_CACHE=1``): JAX's persistent cache under pytest's cache folder
(``.pytest_cache/d/jax-compilation-cache``; a temporary folder with ``-p no:cacheprovider``), inherited by the
subprocesses through the environment. Measured on seven test files (CLI, signals, output files, CLI properties,
mixup points, mixup-joint, square loss; 2-core machine under load): no cache 4:58 wall / 194 s user; cold cache
4:47 / 183 s and 6:18 / 203 s (load 5-7): in a cold session only 9 of 98 cacheable programs repeat (0.9 s of
compilation saved; the in-memory jit cache already serves the rest), so a fresh clone (CI) gains nothing
measurable and it stays off by default; a warm cache (a second local run) took 2:12 / 81 s. This is for tests
only: importing ufm sets nothing but float64. Without the opt-in, the command-line subprocesses get a cache
folder of their own for the session (``UFM_CACHE_DIR``), never the user's.
"""

import os
import shutil
import tempfile

import jax
from hypothesis import HealthCheck, settings

import ufm  # noqa: F401  (side effect: jax_enable_x64)

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
