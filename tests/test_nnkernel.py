"""nnkernel: the exact kernel flow against a fine RK4 reference, the random-feature kernel
against Monte Carlo over b, the default's slopes and control, and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck.checks.nnkernel import k0
from ntkcheck.kernelflow import KernelFlow

from reference_emw import k0_monte_carlo, kernel_flow_rk4


def _sphere(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10**6), st.integers(2, 12), st.integers(2, 6))
def test_the_kernel_flow_matches_a_fine_rk4_reference(seed, n, d):
    rng = np.random.default_rng(seed)
    X = _sphere(rng, n, d)
    y = rng.uniform(-1, 1, size=n)
    G = k0(X, X)
    kf = KernelFlow(G, y)
    taus = np.array([0.5, 5.0, 60.0]) * n
    ref = kernel_flow_rk4(G, y, taus, h=0.05 * n / max(np.linalg.eigvalsh(G)[-1], 1e-12) / 10)
    alpha = kf.coefficients(taus)
    f = kf.on_data(taus)
    for j, a in enumerate(ref):
        assert np.allclose(alpha[j], a, rtol=1e-7, atol=1e-9 * (1 + np.abs(a).max()))
        assert np.allclose(f[j], G @ a, rtol=1e-7, atol=1e-10)


def test_the_random_feature_kernel_matches_monte_carlo():
    rng = np.random.default_rng(3)
    for d in (2, 3, 5, 10):
        X = _sphere(rng, 3, d)
        K = k0(X, X)
        for i, j in ((0, 0), (0, 1), (1, 2)):
            mc, se = k0_monte_carlo(X[i], X[j], 400_000, seed=10 * d + i + j)
            assert abs(K[i, j] - mc) <= 5 * se, (d, i, j)
        assert np.isclose(K[0, 0], 1 / (2 * d))  # E σ(b·x)² = E (b·x)²/2 = 1/(2d)


def test_the_default_falls_like_one_over_root_m_and_fails_its_control(default_run):
    res = default_run("nnkernel")
    by = {c["name"]: c for c in res["claims"]}
    assert res["verdict"] == "pass"
    assert by["control_m_rate"]["verdict"] == "fail"
    for name in ("D_m", "D_m_heldout"):
        assert by[name]["verdict"] == "pass" and -0.8 < by[name]["slope"] < -0.3, name
    assert by["D_m"]["error_ratio_max"] < 0.1  # the integration error is small against D


@pytest.mark.parametrize("argv, words", [
    (["--set", "dynamics.horizon=0"], "dynamics.horizon"),
    (["--set", "claim.delta=1.5"], "claim.delta"),
    (["--set", "grid.sizes=[4]"], "at least two values"),
])
def test_nnkernel_refuses_bad_input_in_one_sentence(ntk, argv, words):
    r = ntk("nnkernel", *argv)
    assert r.code == 2 and words in r.err and r.err.count("\n") == 1, r.err
