"""Kept so that ``python -m experiments``, run from a clone's root, still works: it runs ``python -m ufm.experiments``.

Not installed (only the ``ufm`` package is); the package itself is ``ufm.experiments``.
"""

import runpy

runpy.run_module("ufm.experiments", run_name="__main__", alter_sys=True)
