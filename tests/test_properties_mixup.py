"""Properties of the four mixup families over their documented valid input ranges (``tests/properties.py``).

Every run either passes or fails for a named, documented reason (``assert_named_outcome``): never a traceback, a
NaN graded, or a VOID check without its reason. Drawn: C in {2, 3, 4}, d at its minimum C - 1 and above, lambda
grids of 2 and 3 points (even and odd), kappa (or the weight decays) log-uniform over the accepted range with its
extremes, m, alpha, quadrature nodes, points / mixes, restarts 1..2. Sizes come from a few values so that
examples share compiled shapes; the hyper-parameters vary freely. In the ci profile each property runs a couple
of examples (``EXAMPLES``); the long profile (``UFM_HYPOTHESIS_PROFILE=long``) runs many more.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from properties import assert_named_outcome

from ufm.families import mixup, mixup_deep, mixup_joint
from ufm.problems import mixup_deep as deep_ranges
from ufm.problems import mixup_joint as joint_ranges
from ufm.problems.mixup import KAPPA_RANGE, M_RANGE, MixupProblem
from ufm.problems.mixup_deep import MixupDeepProblem
from ufm.problems.mixup_joint import MixupJointProblem

# Compilation dominates (a new array shape costs a few seconds): a third of the profile's examples per property
# (2 in ci, 20 in long), and in ci the sizes come from one value each, so that both examples share their compiled
# shapes (the hyper-parameters still vary over their whole range): for the two nonconvex families the sizes of
# tests/test_mixup_deep.py's SMALL and tests/test_mixup_joint.py's BASE, whose compiled solves a suite run reuses.
EXAMPLES = max(2, settings.default.max_examples // 3)
CI = settings.default.max_examples <= 6


def sizes(ci: list, full: list):
    return st.sampled_from(ci if CI else full)


def log_uniform(low: float, high: float):
    """10^u, u uniform in [log10 low, log10 high], with both extremes drawn explicitly too."""
    import math

    lo, hi = math.log10(low), math.log10(high)
    return st.one_of(st.sampled_from([low, high]), st.floats(lo, hi).map(lambda u: 10.0**u))


KAPPA = log_uniform(*KAPPA_RANGE)
MULTIPLIER = log_uniform(*M_RANGE)


def decay_for(C: int, m: float, kappa: float) -> float:
    """mu with ``C m^2 / ((C-1) mu)`` = kappa, moved by an ulp where rounding would put kappa outside the range."""
    import numpy as np

    mu = C * m**2 / ((C - 1) * kappa)
    while C * m**2 / ((C - 1) * mu) > KAPPA_RANGE[1]:
        mu = float(np.nextafter(mu, np.inf))
    while C * m**2 / ((C - 1) * mu) < KAPPA_RANGE[0]:
        mu = float(np.nextafter(mu, 0.0))
    return mu


@st.composite
def pair_problems(draw):
    C = draw(sizes([2], [2, 3, 4]))
    d = draw(sizes([C - 1], [C - 1, C]))
    m, kappa = draw(MULTIPLIER), draw(KAPPA)
    mu = decay_for(C, m, kappa)
    return MixupProblem(C=C, d=d, m=m, mu=mu, n_lambdas=draw(sizes([3], [2, 3])), seed=draw(st.integers(0, 3)))


@settings(max_examples=EXAMPLES)
@given(problem=pair_problems())
def test_mixup_pair_grid(problem):
    assert_named_outcome(mixup.run(problem, progress=False))


@st.composite
def point_problems(draw):
    C = draw(sizes([3], [2, 3, 4]))
    d = draw(sizes([C - 1], [C - 1, C]))
    m, kappa = draw(MULTIPLIER), draw(KAPPA)
    mu = decay_for(C, m, kappa)
    return MixupProblem(
        C=C,
        d=d,
        m=m,
        mu=mu,
        points=draw(sizes([3], [3, 4])),
        alpha=draw(log_uniform(1e-300, 1e300)),
        n_mixes=draw(sizes([2], [1, 3])),
        seed=draw(st.integers(0, 3)),
    )


@settings(max_examples=EXAMPLES)
@given(problem=point_problems())
def test_mixup_points(problem):
    assert_named_outcome(mixup.run(problem, progress=False))


@st.composite
def deep_problems(draw):
    C = draw(sizes([3], [2, 3]))
    classifier = draw(sizes(["fixed"], ["fixed", "learned"]))  # a parameter structure of its own: compiled apart
    activation = draw(sizes(["softplus"], ["softplus", "linear"]))
    decay = log_uniform(*deep_ranges.DECAY_RANGE)
    mu = draw(decay)
    ratio = draw(log_uniform(1 / deep_ranges.DECAY_RATIO_MAX, deep_ranges.DECAY_RATIO_MAX))
    lambda_W = min(max(mu / ratio, deep_ranges.DECAY_RANGE[0]), deep_ranges.DECAY_RANGE[1])
    while mu / lambda_W > deep_ranges.DECAY_RATIO_MAX:  # rounding
        lambda_W *= 1 + 2**-52
    while mu / lambda_W < 1 / deep_ranges.DECAY_RATIO_MAX:
        lambda_W *= 1 - 2**-52
    return MixupDeepProblem(
        C=C,
        d0=draw(sizes([3], [1, C])),
        d1=draw(sizes([4], [max(1, C - 1), C])),
        activation=activation,
        sharpness=draw(log_uniform(*deep_ranges.SHARPNESS_RANGE)) if activation == "softplus" else 10.0,
        classifier=classifier,
        m=draw(log_uniform(*deep_ranges.M_RANGE)) if classifier == "fixed" else 1.0,
        mu=mu,
        lambda_W=lambda_W,
        alpha=draw(log_uniform(*deep_ranges.ALPHA_RANGE)),
        n_nodes=draw(sizes([3], [1, 2])),
        consistency=draw(st.one_of(st.just(0.0), log_uniform(1e-3, deep_ranges.CONSISTENCY_MAX))),  # [0, max]
        restarts=draw(sizes([4], [1, 2])),
        eval_lambdas=draw(sizes([9], [1, 3])),
        seed=draw(st.integers(0, 3)),
    )


@settings(max_examples=EXAMPLES)
@given(problem=deep_problems())
def test_mixup_deep(problem):
    assert_named_outcome(mixup_deep.run(problem, progress=False))


@st.composite
def joint_problems(draw):
    """Decays by their product (>= DECAY_PRODUCT_MIN; up to 1e6, far past the zero-solution threshold ~0.1, where
    W = H = 0 joins the starts) and ratio (within DECAY_RATIO_MAX), both log-uniform with their extremes. In ci the
    product stays in [1e-6, 0.05]: below 1e-6 the L-BFGS phase alone takes ~10 s, and above the threshold the zero
    start makes another batch size (both are the long profile's)."""
    C = draw(sizes([3], [2, 3]))
    alpha = draw(
        log_uniform(*joint_ranges.ALPHA_RANGE)
        if CI
        else st.one_of(st.just(0.0), log_uniform(*joint_ranges.ALPHA_RANGE))
    )
    product = draw(log_uniform(1e-6, 0.05) if CI else log_uniform(joint_ranges.DECAY_PRODUCT_MIN, 1e6))
    ratio = draw(log_uniform(1 / joint_ranges.DECAY_RATIO_MAX, joint_ranges.DECAY_RATIO_MAX))
    lambda_W, mu = (product * ratio) ** 0.5, (product / ratio) ** 0.5
    while lambda_W * mu < joint_ranges.DECAY_PRODUCT_MIN:  # rounding of the square roots
        lambda_W *= 1 + 2**-52
    while lambda_W / mu > joint_ranges.DECAY_RATIO_MAX:
        lambda_W *= 1 - 2**-52
    while lambda_W / mu < 1 / joint_ranges.DECAY_RATIO_MAX:
        lambda_W *= 1 + 2**-52
    return MixupJointProblem(
        C=C,
        d=draw(sizes([C], [C - 1, C])),
        alpha=alpha,
        lambda_W=lambda_W,
        mu=mu,
        n_nodes=draw(sizes([16], [1, 2, 3])),
        restarts=draw(sizes([2], [1, 2])),
        seed=draw(st.integers(0, 3)),
    )


@settings(max_examples=EXAMPLES)
@given(problem=joint_problems())
def test_mixup_joint(problem):
    assert_named_outcome(mixup_joint.run(problem, progress=False))
