"""Kept so that ``python -m proofs_check``, run from a clone's root, still works: it runs ``python -m
ufm.proofs_check``.

Not installed (only the ``ufm`` package is); the package itself is ``ufm.proofs_check``.
"""

import runpy

runpy.run_module("ufm.proofs_check", run_name="__main__", alter_sys=True)
