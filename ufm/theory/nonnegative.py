"""Nonnegative features with cross-entropy or label smoothing (after Nguyen, Levie, Lienen, Huellermeier, Kutyniok,
"Memorization-Dilation: Modeling Neural Collapse Under Noise", ICLR 2023). Statements, origins (the paper's
or derived here) and the hyper-parameter map: docs/theory/nonnegative.md.

Notation: K classes, n samples per class, N = K n, features h >= 0 in R^d (d >= K), classifier W (K x d), no bias.
Label smoothing with alpha in [0, 1): cross-entropy against ``q = (1 - alpha) e_k + (alpha/K) 1`` (alpha = 0 is CE;
the other convention q_k = 1 - delta, q_j = delta/(K-1) has delta = alpha (K-1)/K).

The models and what this module states about them (each closed form in the docstring of its function):

- Model 1 (budgets): minimise the mean CE_q over W and H >= 0 subject to ``(1/K) sum_k ||w_k||^2 <= E_W`` and
  ``(1/N) sum_i ||h_i||^2 <= E_H``. With ``M_max = sqrt(K E_W E_H/(K-1))``: for CE, and for LS when
  ``M_max <= m*_alpha = log(1 + K (1-alpha)/alpha)``, the minimisers are collapsed with orthogonal nonnegative class
  means, every margin equals M_max and the value is ``ell_alpha(M_max)``; for LS beyond that the value is the
  entropy of q and the minimisers are not unique (:func:`model1_optimum`).
- Model 2 (weight decay): minimise ``(1/N) sum_i CE_q(W h_i) + (lambda_W/2)||W||_F^2 + (lambda_H/2)||H||_F^2``
  over W and H >= 0. With ``gamma_alpha = sqrt(lambda_W lambda_H n K (K-1)) + alpha (K-1)/K``: W = H = 0 is the
  unique minimiser when ``gamma_alpha >= (K-1)/K``; otherwise the minimisers are collapsed with orthogonal class
  means and common margin ``m* = log((K-1)(1 - gamma_alpha)/gamma_alpha)`` (:func:`model2_optimum`).
- Model 3 (memorization-dilation; our formalisation, no closed form): Model 2 on labels of which a fraction is
  replaced by a uniformly drawn other class, with the coupling ``M_k <= r D_k`` between the memorization M_k (mean
  distance of the noisy samples of true class k to the clean class mean) and the dilation D_k (RMS distance of the
  clean class-k features to their mean); :func:`zero_solution_optimal` (any labels) and
  :func:`coupled_zero_solution_bound` (through the coupling; both in :func:`model3_zero_solution_optimal`) are
  sufficient conditions for W = H = 0.
"""

from __future__ import annotations

import math

import numpy as np


def equal_margin_loss(K: int, alpha: float, margin):
    """``ell_alpha(m) = log(1 + (K-1) e^{-m}) + (alpha (K-1)/K) m``: per-sample loss when every margin equals m."""
    margin = np.asarray(margin, dtype=float)
    return np.log1p((K - 1) * np.exp(-margin)) + alpha * (K - 1) / K * margin


def smoothing_margin(K: int, alpha: float) -> float:
    """``m*_alpha = log(1 + K (1 - alpha)/alpha)``: the margin at which softmax equals the LS target (inf for CE)."""
    return math.inf if alpha == 0 else math.log1p(K * (1 - alpha) / alpha)


def target_entropy(K: int, alpha: float) -> float:
    """Entropy of the LS target q, the least possible LS loss (= ell_alpha(m*_alpha))."""
    q = np.full(K, alpha / K)
    q[0] += 1 - alpha
    q = q[q > 0]
    return float(-np.sum(q * np.log(q)))


def max_margin(K: int, E_W: float, E_H: float) -> float:
    """``M_max = sqrt(K E_W E_H / (K-1))``: the largest common margin under Model 1's budgets with h >= 0."""
    return math.sqrt(K * E_W * E_H / (K - 1))


def model1_optimum(K: int, E_W: float, E_H: float, alpha: float) -> dict:
    """Model 1 (positive layer-peeled, budgets (1/K)sum||w_k||^2 <= E_W, (1/N)sum||h_i||^2 <= E_H, h >= 0).

    CE, and LS with ``M_max <= m*_alpha``: unique geometry (collapse; h_k = sqrt(E_H) v_k, v_k orthonormal and
    nonnegative; w_k = sqrt(E_W/E_H) sqrt(K/(K-1)) (h_k - hbar); every margin M_max), value ell_alpha(M_max).
    LS with ``M_max > m*_alpha``: value = entropy of q and the minimisers are NOT unique (``unique = False``).
    """
    M = max_margin(K, E_W, E_H)
    m_star = smoothing_margin(K, alpha)
    unique = M <= m_star
    value = float(equal_margin_loss(K, alpha, M)) if unique else target_entropy(K, alpha)
    return {
        "objective": value,
        "margin": M if unique else m_star,
        "M_max": M,
        "m_star": m_star,
        "unique": unique,
        "mean_norm_sq": E_H,
        "classifier_scale": math.sqrt(E_W / E_H) * math.sqrt(K / (K - 1)),
        "sign_free_margin": K / (K - 1) * math.sqrt(E_W * E_H),
    }


def model2_optimum(K: int, n: int, lambda_W: float, lambda_H: float, alpha: float) -> dict:
    """Model 2 (positive UFM with weight decay).

    ``gamma = sqrt(lambda_W lambda_H n K (K-1))``, ``gamma_alpha = gamma + alpha (K-1)/K``. If gamma_alpha >=
    (K-1)/K the unique minimiser is W = H = 0 (objective log K). Otherwise collapse and orthogonal class means with
    margin ``m* = log((K-1)(1 - gamma_alpha)/gamma_alpha)`` (true-class probability 1 - gamma_alpha),
    ``||h_k||^2 = m* sqrt(lambda_W (K-1)/(lambda_H n K))``, ``w_k = a (v_k - vbar)`` with
    ``a^2 = m* sqrt(lambda_H n K/(lambda_W (K-1)))``, objective ``ell_alpha(m*) + gamma m*``.
    """
    gamma = math.sqrt(lambda_W * lambda_H * n * K * (K - 1))
    gamma_alpha = gamma + alpha * (K - 1) / K
    if gamma_alpha >= (K - 1) / K:
        return {
            "zero": True,
            "objective": math.log(K),
            "margin": 0.0,
            "gamma": gamma,
            "gamma_alpha": gamma_alpha,
            "mean_norm_sq": 0.0,
            "classifier_scale": 0.0,
            "true_probability": 1.0 / K,
        }
    m = math.log((K - 1) * (1 - gamma_alpha) / gamma_alpha)
    return {
        "zero": False,
        "objective": float(equal_margin_loss(K, alpha, m)) + gamma * m,
        "margin": m,
        "gamma": gamma,
        "gamma_alpha": gamma_alpha,
        "mean_norm_sq": m * math.sqrt(lambda_W * (K - 1) / (lambda_H * n * K)),
        "classifier_scale": math.sqrt(m * math.sqrt(lambda_H * n * K / (lambda_W * (K - 1)))),
        "true_probability": 1 - gamma_alpha,
        "sign_free_gamma": (K - 1) * math.sqrt(lambda_W * lambda_H * n),
    }


def zero_solution_bound(label_counts, N: int, alpha: float) -> float:
    """``max_{x >= 0, ||x|| = 1} ||A x||`` for ``A = (1/N)(1/K 1 1^T - Q)`` (K x N; Q the LS targets of labels with
    the given per-class counts): ``(1 - alpha) sqrt(m_max (K-1)/K) / N`` with m_max the largest count.

    Why: column i of A is ``u_y = ((1 - alpha)/N)(1/K 1 - e_y)`` (y its label), ``<u_j, u_l> = c^2 (delta_jl -
    1/K)``; for x >= 0 with sums sigma_j over the label groups, ``||A x||^2 = c^2 (sum sigma_j^2 - (sum sigma_j)^2/K)
    <= c^2 (1 - 1/K) sum sigma_j^2 <= c^2 (1 - 1/K) m_max ||x||^2`` (nonnegative sigma; Cauchy-Schwarz per group),
    attained by the normalised indicator of the largest group. With balanced labels (m_max = n) this is the Model 2
    threshold: ``sqrt(lambda_W lambda_H) >= bound`` is ``gamma_alpha >= (K-1)/K``."""
    counts = np.asarray(label_counts)
    K = counts.size
    return float((1 - alpha) * math.sqrt(counts.max() * (K - 1) / K) / N)


def zero_solution_optimal(label_counts, N: int, lambda_W: float, lambda_H: float, alpha: float) -> dict:
    """Sufficient condition for W = H = 0 to minimise Model 2 on ANY labels (and so Model 3, whose constraints it
    meets: M = D = 0): ``sqrt(lambda_W lambda_H) >= zero_solution_bound``.

    Proof: CE is convex, so ``CE_q(z) >= log K + (1/K 1 - q).z``; hence ``f(W, H) >= log K + <A, W H> +
    (lambda_W/2)||W||^2 + (lambda_H/2)||H||^2``. For fixed H the bound's minimum over W is ``log K - ||A H^T||^2 /
    (2 lambda_W) + (lambda_H/2)||H||^2``, and ``||A H^T||^2 = sum over the rows x >= 0 of H of ||A x||^2 <= bound^2
    ||H||^2``: so f >= log K = f(0, 0). (For Model 2 with balanced labels the condition is also necessary.)"""
    bound = zero_solution_bound(label_counts, N, alpha)
    root = math.sqrt(lambda_W * lambda_H)
    return {"zero": root >= bound, "bound": bound, "sqrt_lambda": root, "objective": math.log(len(label_counts))}


def _max_on_nonnegative_sphere(S: np.ndarray) -> float:
    """``max_{x >= 0, ||x|| = 1} x^T S x`` for a symmetric S of size K: exact for K <= 12 (up to rounding, never
    below it), else ``lambda_max(S)`` (an upper bound).

    Why exact: at a maximiser x with support T, x_T > 0 is a local maximum of ``y^T S_TT y`` on the unit sphere of
    R^T, hence in the eigenspace of S_TT's largest eigenvalue (every other eigenvector is a saddle or a minimum on
    the sphere). So the maximum is the largest ``lambda_max(S_TT)`` over the supports T whose top eigenspace holds
    a nonzero nonnegative vector. That eigenspace is taken as the span of the eigenvectors within ``1e-8 |lambda|``
    of the top (a near-tie makes single eigenvectors meaningless), and the nonnegative vector is sought in it by a
    linear program that tolerates entries down to ``-1e-9``: both only ever admit more supports (a larger
    value)."""
    from scipy.optimize import linprog

    K = S.shape[0]
    if K > 12:
        return float(np.linalg.eigvalsh(S)[-1])
    best = -np.inf
    for mask in range(1, 2**K):
        T = [k for k in range(K) if mask >> k & 1]
        w, V = np.linalg.eigh(S[np.ix_(T, T)])
        if w[-1] <= best:
            continue
        top = V[:, w >= w[-1] - 1e-8 * max(1.0, abs(w[-1]))]
        if top.shape[1] == 1:
            one_sign = top.min() >= -1e-9 or top.max() <= 1e-9
        else:  # is there y = top c with y >= -1e-9 and sum(y) = 1?
            lp = linprog(
                np.zeros(top.shape[1]),
                A_ub=-top,
                b_ub=np.full(len(T), 1e-9),
                A_eq=top.sum(axis=0, keepdims=True),
                b_eq=[1.0],
                bounds=[(None, None)] * top.shape[1],
            )
            one_sign = lp.status != 2  # anything but "infeasible" admits the support
        if one_sign:
            best = float(w[-1])
    return best


def coupled_zero_solution_bound(confusion, n_noisy: int, r: float, alpha: float) -> float:
    """Model 3's sufficient condition for W = H = 0: ``sqrt(lambda_W lambda_H) >= s*`` (inf where it proves
    nothing), using the coupling ``M_k <= r D_k`` (at small r far below :func:`zero_solution_bound`):

        s*^2 = (e^2 + n_c beta^2 + 2 g beta e) / (n_c - g^2)   where g^2 < n_c, else s* = inf,
        beta = c sqrt(max_{rho >= 0, ||rho|| = 1} ||P C rho||^2 / n),   e = c sqrt(K - 1) n_noisy r,
        g = n_noisy r / sqrt(n),   c = (1 - alpha) / N,   P = I - 1 1^T / K,

    with ``C[j, k]`` the number of samples of true class k labelled j (columns sum to n, the samples per class),
    n_noisy the largest number of noisy samples of a true class and n_c = n - n_noisy (every estimate below holds
    class by class with these).

    Proof. As in :func:`zero_solution_optimal`, ``f >= log K`` follows from ``||A H^T||_F <= s ||H||_F`` (s =
    sqrt(lambda_W lambda_H)) for every feasible H >= 0, column i of A being ``a_i = c (1/K 1 - e_{y_i})``, y_i the
    observed label. Write ``h_i = mu_k + delta_i`` for sample i of true class k. The clean samples of class k share
    ``a_i`` and their deltas sum to 0, so ``A H^T = sum_k b_k mu_k^T + sum_{noisy i} a_i delta_i^T`` with ``b_k =
    sum_{i in class k} a_i = -c P C e_k``. The rows of ``Mu = [mu_1 .. mu_K]`` are nonnegative, so
    ``||sum_k b_k mu_k^T||_F <= beta |u|`` with ``u_k = sqrt(n) ||mu_k||``; ``||a_i|| = c sqrt((K-1)/K)`` and
    ``sum_{noisy i of k} ||delta_i|| = n_noisy M_k <= n_noisy r D_k``, so the second sum is at most ``e |v|`` with
    ``v_k = D_k`` (Cauchy-Schwarz over k). From below, ``||H||_F^2 >= sum_k (n_c ||mu_k||^2 + n_c D_k^2 + sum_{noisy i
    of k} ||mu_k + delta_i||^2) >= |u|^2 + n_c |v|^2 - 2 g |u| |v|`` (``mu_k . delta_i >= -||mu_k|| ||delta_i||``
    and the coupling again). Hence ``||A H^T||^2 <= s^2 ||H||^2`` whenever ``(beta x + e y)^2 <= s^2 (x^2 + n_c y^2
    - 2 g x y)`` for all x, y >= 0: the 2 x 2 matrix ``s^2 [[1, -g], [-g, n_c]] - (beta, e)(beta, e)^T`` copositive,
    i.e. (its off-diagonal being negative) diagonal >= 0 and off-diagonal^2 <= their product, which for t = s^2 is
    ``t^2 (n_c - g^2) >= t (e^2 + n_c beta^2 + 2 g beta e)`` (the diagonal conditions then hold); for g^2 >= n_c
    no s passes (a nonnegative direction with ``x^2 + n_c y^2 - 2 g x y < 0`` fails them all). At r = 0 this is
    ``s >= beta``, attained by collapsed features with the noisy ones on their class means (exact there).

    Args:
        confusion: the K x K counts C.
        n_noisy: noisy samples per true class (the largest such count).
        r: the coupling M_k <= r D_k.
        alpha: label smoothing (0: CE).

    Returns:
        s* (math.inf where g^2 >= n_c).
    """
    C = np.asarray(confusion, dtype=float)
    K = C.shape[0]
    n = float(C[:, 0].sum())
    N = K * n
    c = (1 - alpha) / N
    centred = C - C.mean(axis=0, keepdims=True)  # P C
    beta = c * math.sqrt(max(0.0, _max_on_nonnegative_sphere(centred.T @ centred)) / n)
    e = c * math.sqrt(K - 1) * n_noisy * r
    g = n_noisy * r / math.sqrt(n)
    n_clean = n - n_noisy
    if g * g >= n_clean:
        return math.inf
    return math.sqrt((e * e + n_clean * beta * beta + 2 * g * beta * e) / (n_clean - g * g))


def model3_zero_solution_optimal(labels, true_labels, lambda_W: float, lambda_H: float, alpha: float, r: float) -> dict:
    """Sufficient condition for W = H = 0 to minimise Model 3: ``sqrt(lambda_W lambda_H) >= bound``, the smaller of
    :func:`zero_solution_bound` (any labels, no coupling) and :func:`coupled_zero_solution_bound` (the coupling
    M_k <= r D_k).

    Args:
        labels, true_labels: observed and true class of every sample (the same number of samples per true class).
        lambda_W, lambda_H, alpha, r: Model 3's weight decays, label smoothing and coupling.

    Returns:
        ``{"zero", "bound", "sqrt_lambda", "objective" (log K), "any_labels_bound", "coupled_bound"}``.
    """
    labels, true_labels = np.asarray(labels), np.asarray(true_labels)
    K = int(max(labels.max(), true_labels.max())) + 1
    confusion = np.zeros((K, K))
    np.add.at(confusion, (labels, true_labels), 1.0)
    if np.ptp(confusion.sum(axis=0)) != 0:
        raise ValueError("the coupled bound assumes the same number of samples in every true class")
    # the largest noisy count of a class (and so the fewest clean samples): the bound's estimates hold for each
    n_noisy = int(np.max(np.bincount(true_labels[labels != true_labels], minlength=K)))
    result = zero_solution_optimal(np.bincount(labels, minlength=K), labels.size, lambda_W, lambda_H, alpha)
    coupled = coupled_zero_solution_bound(confusion, n_noisy, r, alpha)
    bound = min(result["bound"], coupled)
    return {
        **result,
        "zero": result["sqrt_lambda"] >= bound,
        "bound": bound,
        "any_labels_bound": result["bound"],
        "coupled_bound": coupled,
    }


def optimum_for(problem) -> dict:
    """The closed form of a ``ufm.problems.nonnegative.NonnegProblem``: Model 1 (``lpm``) or Model 2 (``ufm``)."""
    if problem.model == "lpm":
        return model1_optimum(problem.C, problem.E_W, problem.E_H, problem.alpha)
    return model2_optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H, problem.alpha)
