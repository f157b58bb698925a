"""Figures of a paper, each regenerated from the solver's output by one command: ``python -m ufm.experiments``.

Each figure module defines NAME, TITLE, ``config(quick: bool) -> dict``, ``compute(config, progress) -> dict of
arrays`` (solver output, with the closed form beside it where one exists) and ``plot(data, config) -> Figure``.
The pipeline (:mod:`experiments.pipeline`) writes ``NAME.png``, ``NAME.pdf``, the plotted data ``NAME.npz`` and
the configuration ``NAME.json`` side by side.
"""
