"""Importing ufm enables float64 in JAX for the whole suite (verification is meaningless in float32)."""

import jax

import ufm  # noqa: F401  (side effect: jax_enable_x64)

assert jax.config.jax_enable_x64
