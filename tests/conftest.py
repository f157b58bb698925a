"""Suite-wide settings: float64 JAX (importing ufm enables it) and the hypothesis profiles.

Profiles (``UFM_HYPOTHESIS_PROFILE``): ``ci`` (default) is derandomised with a small, fixed number of examples per
property so that the suite is deterministic and fast; ``long`` draws many random examples for local exploration
(``UFM_HYPOTHESIS_PROFILE=long pytest tests/test_properties*.py``).
"""

import os

import jax
from hypothesis import HealthCheck, settings

import ufm  # noqa: F401  (side effect: jax_enable_x64)

assert jax.config.jax_enable_x64

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=6, derandomize=True, deadline=None, database=None,
                          suppress_health_check=_SLOW_OK, print_blob=True)
settings.register_profile("long", max_examples=60, deadline=None, suppress_health_check=_SLOW_OK, print_blob=True)
settings.load_profile(os.environ.get("UFM_HYPOTHESIS_PROFILE", "ci"))
