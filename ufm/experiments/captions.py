"""The parts every figure's caption is made of: the papers cited (authors and year, as the theory pages cite them)
and the configuration values written out.

A figure module's ``caption(config)`` composes these, so that the caption in ``NAME.json`` and the one in
``docs/figures.md`` (written by ``docs/generate.py`` from the full configuration) are one text.
"""

from __future__ import annotations

from collections.abc import Sequence

FISHER_2024 = "Fisher, Meng, Papyan 2024"  # Pushing Boundaries: Mixup's Influence on Neural Collapse, ICLR
NGUYEN_2023 = "Nguyen, Levie, Lienen, Huellermeier, Kutyniok 2023"  # Memorization-Dilation, ICLR
RANGAMANI_2022 = "Rangamani, Banburski-Fahey 2022"  # Neural Collapse in Deep Homogeneous Classifiers, ICASSP
PAPYAN_2020 = "Papyan, Han, Donoho 2020"  # Prevalence of Neural Collapse during the Terminal Phase, PNAS
CHAUDHRY_2022 = "Chaudhry, Menon, Veit, Jayasumana, Ramalingam, Kumar 2022"  # When does mixup promote local linearity


def compose(citation: str, configuration: str, body: str) -> str:
    """One caption: ``citation; configuration: body``.

    Args:
        citation: the paper (authors and year), with the theorem or equation where one is illustrated.
        configuration: the configuration values the figure was computed with.
        body: what is plotted and what it shows.

    Returns:
        The caption, one line (it is also a cell of a Markdown table).
    """
    return f"{citation}; {configuration}: {body}"


def comma_list(xs: Sequence[float]) -> str:
    """``0.3, 3, 30``: every value, shortest form.

    Args:
        xs: numbers.

    Returns:
        The numbers joined by commas.
    """
    return ", ".join(f"{x:g}" for x in xs)


def grid(xs: Sequence[float]) -> str:
    """``10 values from 0.001 to 0.3``: a grid by its size and end points (its values would not fit a caption).

    Args:
        xs: the grid, in order.

    Returns:
        The description; a single value is written out.
    """
    if len(xs) == 1:
        return f"{xs[0]:.3g}"
    return f"{len(xs)} values from {xs[0]:.3g} to {xs[-1]:.3g}"


def losses(alphas: Sequence[float]) -> str:
    """``CE and LS alpha = 0.1, 0.3``: the losses of a label-smoothing list (alpha = 0 is the plain cross-entropy).

    Args:
        alphas: label-smoothing parameters.

    Returns:
        The losses named.
    """
    smoothed = [a for a in alphas if a != 0]
    names = ["CE"] if len(smoothed) < len(alphas) else []
    if smoothed:
        names.append(f"LS alpha = {comma_list(smoothed)}")
    return " and ".join(names)


def at_full(cfg: dict, full: dict, finding: str) -> str:
    """``finding`` where ``cfg`` is the full configuration, else nothing.

    A finding read off the full configuration's data is not known to hold for a reduced one, so a reduced
    configuration's caption does not claim it.

    Args:
        cfg: the configuration the caption is for.
        full: the figure's full configuration.
        finding: the sentence (with its leading separator).

    Returns:
        ``finding`` or ``""``.
    """
    return finding if cfg == full else ""
