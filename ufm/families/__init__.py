"""Loss families for the CLI. Each module defines NAME, DESCRIPTION, ``add_arguments(parser)`` (generated from
its problem dataclass by ``ufm.cli.add_problem_arguments``, plus any flag that is not a problem field),
``problem_from_args(namespace)`` and ``run(problem, *, progress, max_memory_bytes) -> ufm.report.Report``
(``max_memory_bytes``: the solver's memory budget, None for the default); FLAGS maps each problem field to its
command-line flag (``ufm.cli.problem_flags``); an optional ``run_options(namespace) -> dict`` passes further
keyword arguments to ``run`` (e.g. a sweep). One module may serve several loss names (its variants)."""

from __future__ import annotations

import importlib

FAMILIES = {
    "mixup": "ufm.families.mixup",
    "mse": "ufm.families.square_loss",
    "mse-deep": "ufm.families.square_loss",
    "mse-net": "ufm.families.square_loss",
    "nonneg-lpm": "ufm.families.nonnegative",
    "nonneg-ufm": "ufm.families.nonnegative",
    "md": "ufm.families.memorization_dilation",
    "mixup-deep": "ufm.families.mixup_deep",
    "mixup-joint": "ufm.families.mixup_joint",
    "ce": "ufm.families.ce",
}


def load(name: str):
    return importlib.import_module(FAMILIES[name])
