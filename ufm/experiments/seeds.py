"""Repeating a network experiment over seeds: the runs, their mean and spread, and a verdict that counts seeds.

Shared by the trained-network figures (``network_mixup``, ``network_label_noise``, ``network_linearity``), whose
claims are decided seed by seed and reported with every seed's value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def per_objective(cfg: dict, progress, run_one: Callable[[str, int], dict]) -> dict[str, list[dict]]:
    """``{objective: [run_one(objective, seed) for seed in cfg["seeds"]]}`` for each of ``cfg["objectives"]``, in
    order, one progress step per run."""
    out: dict[str, list[dict]] = {}
    for objective in cfg["objectives"]:
        out[objective] = []
        for seed in cfg["seeds"]:
            out[objective].append(run_one(objective, seed))
            progress.step()
    return out


def stats(values) -> dict:
    """Mean and standard deviation (ddof 0) of the finite values, and every value (NaN: not defined there).

    Returns:
        ``{"mean", "std", "values"}``; mean and std are NaN when no value is finite.
    """
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "std": float(finite.std()) if finite.size else float("nan"),
        "values": v.tolist(),
    }


def count_verdict(flags) -> str:
    """``"holds"`` when every seed's flag is true, ``"does not hold"`` when none is, else ``"holds for k of n
    seeds"``."""
    flags = np.asarray(flags, dtype=bool)
    k = int(flags.sum())
    if k == len(flags):
        return "holds"
    if k == 0:
        return "does not hold"
    return f"holds for {k} of {len(flags)} seeds"
