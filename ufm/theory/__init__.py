"""Closed forms, one module per family; numpy/scipy only, importable without JAX."""
