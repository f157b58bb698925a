"""Loss families for the CLI. Each module defines NAME, DESCRIPTION, ``add_arguments(parser)``,
``problem_from_args(namespace)`` and ``run(problem, progress) -> ufm.report.Report``; FLAGS maps a problem field
to its command-line flag where the two differ."""

from __future__ import annotations

import importlib

FAMILIES = {
    "mixup": "ufm.families.mixup",
    "mixup-joint": "ufm.families.mixup_joint",
}


def load(name: str):
    return importlib.import_module(FAMILIES[name])
