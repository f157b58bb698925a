"""float64 for ufm's computations without switching the user's JAX to it.

Verification in float32 is meaningless (a rounding floor of 1e-7 against tolerances of 1e-12), so every
computation ufm makes runs in float64, but a user's own JAX code in the same process keeps its dtypes: importing
ufm leaves ``jax_enable_x64`` as it was, and each entry point runs inside ``jax.enable_x64(True)``, JAX's scoped
form of the setting (:func:`float64`): the shared driver's runs (so ``ufm.run``, ``ufm.run_batch`` and every
family's run), md's r sweep, the certificates, the network training, the figures and the command lines. The solver
itself refuses to run in float32 (:func:`require_float64`), so a call that bypasses the entry points fails loudly
instead of computing in single precision.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax

F = TypeVar("F", bound=Callable)


def float64(fn: F) -> F:
    """``fn`` run inside ``jax.enable_x64(True)``: its JAX arrays and programs are float64, the caller's setting is
    restored afterwards (also on an exception)."""

    @functools.wraps(fn)
    def in_float64(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return in_float64  # type: ignore[return-value]


def require_float64(what: str) -> None:
    """Raise RuntimeError unless JAX's 64-bit mode is on here (``what``: the computation that needs it)."""
    if not jax.config.read("jax_enable_x64"):
        raise RuntimeError(
            f"{what} needs float64: call it through ufm.run (or inside jax.enable_x64(True)); "
            "in float32 its tolerances cannot be met"
        )
