"""Memory estimates from sizes alone (nothing allocated): which size field to name when a run is refused."""

from __future__ import annotations

from collections.abc import Callable


def driving_field(estimate: Callable[[dict], int], sizes: dict, reference: dict) -> str:
    """The size field (a key of ``reference``, in its order on ties) whose excess over its reference value (its
    default) accounts for most of ``estimate(sizes)``: the largest ``estimate(sizes) / estimate(sizes with that
    field lowered to its reference)``. The one to name when a run is refused."""

    def share(field):
        return estimate(sizes) / max(1, estimate({**sizes, field: min(sizes[field], reference[field])}))

    return max(reference, key=share)
