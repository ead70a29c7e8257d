"""rf.py: the kernel matrix, the risk's quadratic form, the trust-region witness and the two
certified lower bounds on min R (the exact dual and the Lanczos one), against independent
references (scipy's SLSQP, reference_rf's eigh + bisection)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import reference_rf as ref
from ntkcheck.kernels import kappa1
from ntkcheck.rf import kernel_entry_error, kernel_matrix, krylov_lower_bound, quad_form, trust_region


def sphere(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_kernel_matrix_and_the_blocked_quadratic_form_agree_with_the_definition():
    rng = np.random.default_rng(2)
    B = sphere(rng, 300, 6)
    K = kernel_matrix(B, 6)
    assert np.array_equal(K, kappa1(B @ B.T) / 6)  # the in-place version gives the same numbers
    a = rng.standard_normal(300)
    assert quad_form(B, a, 6) == pytest.approx(a @ K @ a, rel=1e-12)  # several blocks


@settings(max_examples=100)
@given(seed=st.integers(0, 2**31), d=st.integers(2, 6))
def test_the_blocked_kappa1_is_accurate_near_parallel_and_antiparallel_pairs(seed, d):
    """quad_form's κ1 (arccos N through π/2 − arctan(N/√(1 − N²))) against
    κ1 in extended precision, entry by entry, on cosines at and next to ±1 (parallel and
    anti-parallel rows, and a few ulps off), at 0 and at random: within 4 float64 ulps of 1.
    The form itself, over rows with such pairs, matches aᵀKa with the extended κ1."""
    from ntkcheck.rf import _kappa1_into
    rng = np.random.default_rng(seed)
    ulp = np.finfo(float).eps
    rho = np.concatenate([[1.0, -1.0, 0.0, 1 + ulp, -1 - ulp],
                          1 - ulp / 2 * rng.integers(1, 64, 8), -1 + ulp / 2 * rng.integers(1, 64, 8),
                          rng.uniform(-1, 1, 40)])
    N = -rho.copy()
    with np.errstate(divide="ignore"):
        got = _kappa1_into(N, np.empty_like(N), np.empty_like(N)) / (2 * np.pi)
    want = ref.kappa1_extended(rho)
    assert np.all(np.abs(got - want) <= 4 * ulp), np.max(np.abs(got - want))
    m = 40
    B = sphere(rng, m, d)
    B[1] = B[0]
    B[2] = -B[0]
    B[3] = B[0] + 1e-9 * rng.standard_normal(d)
    B[3] /= np.linalg.norm(B[3])
    a = rng.standard_normal(m)
    K = ref.kappa1_extended(B @ B.T) / d
    assert quad_form(B, a, d) == pytest.approx(float(a @ K @ a), rel=1e-13, abs=1e-15 * float(np.abs(a) @ np.abs(a)))


@pytest.mark.parametrize("radius", [1e-3, 0.05, 10.0])
def test_trust_region_is_optimal_and_its_dual_bound_is_below(radius):
    rng = np.random.default_rng(9)
    m = 40
    A = rng.standard_normal((m, 8))
    K = A @ A.T / 8  # rank-deficient PSD, like a kernel matrix
    r = rng.standard_normal(m)
    c = 5.0
    lam, V = np.linalg.eigh(K)
    tr = trust_region(lam, V, r, c, radius)
    q = lambda a: a @ K @ a - 2 * r @ a + c  # noqa: E731
    assert np.linalg.norm(tr.a) <= radius * (1 + 1e-9)
    assert tr.value == pytest.approx(q(tr.a), abs=1e-9)
    assert tr.lower <= tr.value + 1e-9
    cons = {"type": "ineq", "fun": lambda a: radius**2 - a @ a}
    best = np.inf
    for x0 in [np.zeros(m), rng.standard_normal(m) * radius / math.sqrt(m)]:
        x = minimize(q, x0, constraints=[cons], method="SLSQP").x
        x = x * min(1.0, radius / np.linalg.norm(x))  # SLSQP may step outside: project back
        best = min(best, q(x))
    assert tr.value <= best + 1e-9  # no feasible point found by a generic solver is better
    # the dual bound meets the value: the minimum is certified, not just found
    assert tr.value - tr.lower <= 1e-9 * max(1.0, abs(tr.value))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(5, 120), d=st.integers(2, 8), radius=st.floats(1e-3, 3.0), scale=st.floats(1e-3, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_krylov_dual_bound_is_below_the_exact_minimum(m, d, radius, scale, seed):
    """The Lanczos dual bound is a certified lower bound: never above the exact trust-region
    minimum (the reference's eigh + bisection), and close to it once Lanczos has the whole space."""
    rng = np.random.default_rng(seed)
    B = sphere(rng, m, d)
    K = kernel_matrix(B, d)
    r = scale * rng.standard_normal(m) / math.sqrt(m)
    c = float(r @ r) + scale
    exact = ref.trust_region_min(K, r, c, radius)
    db = krylov_lower_bound(K, r, c, radius, entry_error=kernel_entry_error(d), r_error_norm=0.0, c_error=0.0)
    assert db.lower <= exact + 1e-12 * max(1.0, abs(exact))
    assert db.lower >= exact - 1e-6 * max(1.0, abs(c))


def test_krylov_dual_bound_counts_the_errors_of_r_and_c():
    rng = np.random.default_rng(5)
    m, d = 200, 5
    K = kernel_matrix(sphere(rng, m, d), d)
    r = rng.standard_normal(m) / m
    exact = ref.trust_region_min(K, r, 1.0, 0.1)
    clean = krylov_lower_bound(K, r, 1.0, 0.1, entry_error=kernel_entry_error(d), r_error_norm=0.0, c_error=0.0)
    noisy = krylov_lower_bound(K, r, 1.0, 0.1, entry_error=kernel_entry_error(d), r_error_norm=1e-3, c_error=1e-4)
    assert noisy.lower <= clean.lower - 1e-4 <= exact
    # the worst r and c within those errors: the bound still holds for them
    for sign in (-1.0, 1.0):
        rr = r + sign * 1e-3 * r / np.linalg.norm(r)
        assert noisy.lower <= ref.trust_region_min(K, rr, 1.0 + sign * 1e-4, 0.1)
