"""Property: every bad value of a family's flag is refused by ``python -m ufm.solve`` with exit 2 and one line on
stderr naming that flag, and nothing is written. Drawn by hypothesis per family from outside each flag's
documented range (integers below the minimum, numbers <= 0 where > 0 is required, outside [0, 1), NaN and
infinities, non-numbers), written in every notation a user might type (negative scientific notation included).
In-process through ``ufm.solve.main(argv)``: nothing is solved, so each example takes milliseconds."""

import contextlib
import io
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ufm import families
from ufm.solve import main


def _float_text(draw_from):
    """Numbers as text in the notations users type: repr, fixed, scientific (lower and upper case)."""
    formats = st.sampled_from([repr, "{:e}".format, "{:.3E}".format, "{:g}".format])
    return st.tuples(draw_from, formats).map(lambda xf: xf[1](xf[0]))


NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "NaN", "-Infinity"])
NOT_A_NUMBER = st.sampled_from(["x", "1,5", "0x10", "one", ""])


def int_below(low: int):
    """Bad values of an integer flag whose minimum is ``low``: smaller integers, fractions, non-numbers."""
    return st.one_of(
        st.integers(min_value=-(10**12), max_value=low - 1).map(str),
        st.floats(min_value=low - 10, max_value=low + 10).filter(lambda x: x != int(x)).map(repr),
        NOT_A_NUMBER,
    )


NOT_POSITIVE = st.one_of(_float_text(st.floats(max_value=0.0)), NON_FINITE, st.just("-1e-3"))
NEGATIVE = st.one_of(_float_text(st.floats(max_value=-1e-300)), NON_FINITE)
OUTSIDE_UNIT = st.one_of(
    _float_text(st.floats(max_value=-1e-300)), _float_text(st.floats(min_value=1.0)), st.sampled_from(["nan", "-1e-3"])
)
SEED = int_below(0)

# loss -> flag -> bad values (defaults of the other flags; ranges as the families' help and problems state them)
BAD = {
    "mixup": {
        "--C": int_below(2),
        "--d": int_below(9),
        "--m": NOT_POSITIVE,
        "--mu": NOT_POSITIVE,
        "--lambdas": int_below(2),
        "--seed": SEED,
        "--points": int_below(2),
    },
    "mse": {
        "--C": int_below(2),
        "--n": int_below(1),
        "--layers": int_below(1),
        "--lambda-W": NOT_POSITIVE,
        "--lambda-H": NOT_POSITIVE,
        "--d": int_below(10),
        "--restarts": int_below(1),
        "--seed": SEED,
    },
    "mse-deep": {"--C": int_below(2), "--layers": int_below(1), "--lambda-W": NOT_POSITIVE, "--d": int_below(10)},
    "mse-net": {
        "--C": int_below(2),
        "--n": int_below(1),
        "--lambda-W": NOT_POSITIVE,
        "--d": int_below(3),
        "--restarts": int_below(1),
    },
    "nonneg-lpm": {
        "--C": int_below(2),
        "--n": int_below(1),
        "--d": int_below(10),
        "--ls-alpha": OUTSIDE_UNIT,
        "--E-W": NOT_POSITIVE,
        "--E-H": NOT_POSITIVE,
        "--restarts": int_below(1),
        "--seed": SEED,
    },
    "nonneg-ufm": {
        "--C": int_below(2),
        "--ls-alpha": OUTSIDE_UNIT,
        "--lambda-W": NOT_POSITIVE,
        "--lambda-H": NOT_POSITIVE,
        "--seed": SEED,
    },
    "md": {
        "--C": int_below(2),
        "--n": int_below(3),
        "--d": int_below(3),
        "--noise": OUTSIDE_UNIT,
        "--r": NOT_POSITIVE,
        "--ls-alpha": OUTSIDE_UNIT,
        "--lambda-W": NOT_POSITIVE,
        "--lambda-H": NOT_POSITIVE,
        "--restarts": int_below(1),
        "--seed": SEED,
    },
    "mixup-deep": {
        "--C": int_below(2),
        "--d0": int_below(1),
        "--sharpness": NOT_POSITIVE,
        "--m": NOT_POSITIVE,
        "--mu": NOT_POSITIVE,
        "--lambda-W": NOT_POSITIVE,
        "--alpha": NOT_POSITIVE,
        "--nodes": int_below(1),
        "--consistency": NEGATIVE,
        "--restarts": int_below(1),
        "--eval-lambdas": int_below(1),
        "--seed": SEED,
    },
    "mixup-joint": {
        "--C": int_below(2),
        "--d": int_below(9),
        "--alpha": NEGATIVE,
        "--lambda-W": NOT_POSITIVE,
        "--mu": NOT_POSITIVE,
        "--nodes": int_below(1),
        "--restarts": int_below(1),
        "--samples-per-target": int_below(1),
        "--seed": SEED,
    },
    "ce": {
        "--C": int_below(2),
        "--n": int_below(1),
        "--d": int_below(3),
        "--lambda-W": NOT_POSITIVE,
        "--lambda-H": NOT_POSITIVE,
        "--restarts": int_below(1),
        "--seed": SEED,
    },
}


def refused(argv: list[str]) -> str:
    """Run ``main(argv + --out)`` in a fresh folder; assert exit 2, nothing written; return the one stderr line."""
    err = io.StringIO()
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()) as out,
    ):
        code = main([*argv, "--out", str(Path(tmp) / "out"), "--quiet"])
        assert list(Path(tmp).iterdir()) == [], "something was written"
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and out.getvalue() == "", (argv, code, err.getvalue())
    return lines[0]


def test_every_family_has_bad_inputs():
    assert set(BAD) == set(families.FAMILIES)


@pytest.mark.parametrize("loss", list(BAD))
@given(data=st.data())
def test_bad_values_are_refused_naming_the_flag(loss, data):
    flag = data.draw(st.sampled_from(sorted(BAD[loss])), label="flag")
    value = data.draw(BAD[loss][flag], label="value")
    form = data.draw(st.sampled_from(["separate", "joined"]), label="form")  # --flag VALUE or --flag=VALUE
    line = refused(["--loss", loss, *([flag, value] if form == "separate" else [f"{flag}={value}"])])
    assert f"argument {flag}:" in line and "expected one argument" not in line, line


# Sizes far beyond any machine: refused by the memory estimate (where the family has one) in well under a second,
# before anything is allocated.
HUGE = {
    "mixup": ["--C", "100000"],
    "mse": ["--C", "1000000"],
    "mse-deep": ["--d", "10000000"],
    "mse-net": ["--d", "10000000"],
    "nonneg-lpm": ["--C", "1000000"],
    "nonneg-ufm": ["--n", "10000000000"],
    "md": ["--n", "10000000000"],
    "mixup-deep": ["--d1", "10000000"],
    "mixup-joint": ["--C", "1000000"],
    "ce": ["--C", "1000000"],
}


@pytest.mark.parametrize("loss", list(HUGE))
def test_huge_sizes_are_refused_at_once(loss):
    family = families.load(loss)  # imported before the clock starts
    if not hasattr(family, "memory_estimate"):
        pytest.skip(f"{family.__name__} has no memory_estimate (yet)")
    t0 = time.perf_counter()
    line = refused(["--loss", loss, *HUGE[loss], "--max-memory", "64G"])
    seconds = time.perf_counter() - t0
    assert "needs about" in line and "more than the 64 GiB budget" in line, line
    assert seconds < 1.0, f"{seconds:.2f} s to refuse"
