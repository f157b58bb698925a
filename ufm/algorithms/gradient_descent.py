"""Full-batch gradient descent with heavy-ball momentum at a fixed step: how neural-collapse papers train, for
trajectories recorded along the way (never the solver: it has no convergence test)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax


def momentum_descent(
    loss: Callable,
    params,
    args,
    record: Callable[[object], list[float]],
    *,
    steps: int,
    lr: float,
    momentum: float,
    record_every: int,
) -> list[list[float]]:
    """``steps`` steps of ``optax.sgd(lr, momentum)`` on ``loss(params, args)``, recorded every ``record_every``.

    The update is Polyak's heavy ball, ``v <- momentum v + grad loss(theta)``, ``theta <- theta - lr v``
    (Polyak, "Some methods of speeding up the convergence of iteration methods", USSR Comput. Math. Math. Phys.,
    1964); ``record_every`` steps run as one compiled ``lax.scan``.

    Args:
        loss: ``loss(params, args) -> scalar``.
        params: the start (a pytree).
        args: the objective's data (closed over by the compiled steps).
        record: ``record(params) -> list of floats``, evaluated at steps 0, record_every, 2 record_every, ...
        steps: number of steps (rounded down to a multiple of ``record_every``).
        lr: the fixed step.
        momentum: the momentum coefficient.
        record_every: steps between records.

    Returns:
        One row ``[step, *record(params)]`` per record, ``steps // record_every + 1`` rows.
    """
    opt = optax.sgd(lr, momentum=momentum)

    @jax.jit
    def advance(carry):
        def body(c, _):
            p, s = c
            g = jax.grad(loss)(p, args)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, carry, None, length=record_every)[0]

    rows = []
    carry = (params, opt.init(params))
    for k in range(steps // record_every + 1):
        rows.append([k * record_every, *record(carry[0])])
        if k < steps // record_every:
            carry = advance(carry)
    return rows
