"""The exact event-driven ReLU flow against closed forms and fine RK4 references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

import reference_ntk as ref
from ntkcheck.reluflow import ReluFlow


def _problem(m, n, d, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.choice([-1.0, 1.0], n)
    a = rng.choice([-1.0, 1.0], m)
    W0 = scale * rng.standard_normal((m, d))
    return X, y, a, W0


def _exact(X, y, a, W0, T, times):
    pts = []
    run = ReluFlow(X, y, a, T).run(W0, lambda p: pts.append(p) or True, times)
    at = {p.t: p for p in pts if not p.event}
    return run, [at[t] for t in times], pts


def _compare(X, y, a, W0, T, h, slack=1.0):
    times = [T / 8, T / 4, T / 2, T]
    run, pts, allpts = _exact(X, y, a, W0, T, times)
    # RK4 is first order across kinks and chatters along them, not always monotonically at
    # coarse steps: the error of the h/16 reference is taken as the larger of the differences
    # between successive references (h, h/4, h/16)
    refs = [ref.rk4_states(W0, X, y, a, times, h / 4**k) for k in range(3)]
    for j, p in enumerate(pts):
        W = p.theta.reshape(W0.shape)
        (Wa, ra), (Wb, rb), (Wc, rc) = [(R[0][j], R[1][j]) for R in refs]
        err_w = max(np.linalg.norm(Wa - Wb), np.linalg.norm(Wb - Wc))
        err_r = max(np.linalg.norm(ra - rb), np.linalg.norm(rb - rc))
        assert np.linalg.norm(W - Wc) <= p.error_theta + slack * err_w + 1e-12, (p.t, run.extra)
        assert np.linalg.norm(p.residual - rc) <= p.error_u + slack * err_r + 1e-12, (p.t, run.extra)
        assert p.trusted
    return run, allpts


@pytest.mark.parametrize("m,n,d,T,h", [(16, 8, 4, 2.0, 4e-3), (32, 8, 4, 2.0, 4e-3), (64, 8, 4, 2.0, 4e-3),
                                       (1024, 20, 10, 0.5, 2e-3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_exact_flow_agrees_with_fine_references_within_their_own_error(m, n, d, T, h, seed):
    X, y, a, W0 = _problem(m, n, d, seed)
    run, _ = _compare(X, y, a, W0, T, h)
    assert run.extra["crossings"] + run.extra["arrivals"] > 0  # kinks were crossed or slid along
    assert run.extra["degenerate"] == 0


@settings(max_examples=20)
@given(m=st.integers(1, 10), n=st.integers(1, 5), d=st.integers(2, 4), seed=st.integers(0, 2**31))
def test_the_exact_flow_agrees_with_references_on_generated_small_networks(m, n, d, seed):
    X, y, a, W0 = _problem(m, n, d, seed)
    if n > 1 and np.abs(X @ X.T - np.eye(n)).max() > 1 - 1e-6:
        return  # (near-)parallel inputs: kinks of one neuron coincide, a degenerate flow
    run = ReluFlow(X, y, a, 0.5).run(W0, lambda p: True, [0.5])
    if run.extra["degenerate"]:
        return
    # generated cases include chattering so irregular that RK4's error does not fall by 4× per
    # level at coarse steps (m = n = d = 4, seed 2: 1.0e-4, 5.0e-5, 8.0e-5, 2.3e-5, 6.0e-6 for
    # h = 4e-3 … 1.6e-5, converging to the exact flow): references from h = 1e-3, where it is
    # regular, and twice their differences
    _compare(X, y, a, W0, 0.5, 1e-3, slack=2.0)



def test_without_kinks_the_flow_is_the_closed_form_of_the_frozen_kernel():
    X, y, a, W0 = _problem(20, 6, 4, 3, scale=50.0)  # pre-activations far from 0: no sign changes in T
    T = 0.002
    run, pts, _ = _exact(X, y, a, W0, T, [T / 2, T])
    S = (W0 @ X.T > 0).astype(float)
    H = (X @ X.T) * (S.T @ S) / a.size
    r0 = np.maximum(W0 @ X.T, 0).T @ a / np.sqrt(a.size) - y
    for p in pts:
        np.testing.assert_allclose(p.residual, expm(-H * p.t) @ r0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.sort(p.eigvals), np.linalg.eigvalsh(H), atol=1e-12)
    assert run.extra["events"] == 0


@pytest.mark.parametrize("m", [16, 64])
def test_the_spectrum_is_that_of_the_velocity_gram_matrix(m):
    """Off a kink H(W) = G∘(SᵀS)/m from the signs of W; while entries slide, H is the Gram
    matrix of the projected velocity, below the one of the signs (Loewner order)."""
    X, y, a, W0 = _problem(m, 8, 4, 5)
    _, _, pts = _exact(X, y, a, W0, 2.0, np.geomspace(1e-3, 2.0, 40))
    checked = sliding = 0
    for p in pts[1:]:
        if p.event:
            continue  # (at an event the signs of the entries on their kinks are the new mode's)
        W = p.theta.reshape(W0.shape)
        Z = W @ X.T
        on = np.abs(Z) <= 1e-9
        S = (Z > 1e-9).astype(float)
        H = (X @ X.T) * (S.T @ S) / m
        lam = np.linalg.eigvalsh(H)
        if not on.any():
            np.testing.assert_allclose(p.eigvals, lam, atol=1e-12)
            checked += 1
        else:
            assert p.eigvals[0] <= lam[0] + 1e-12
            sliding += 1
    assert checked >= 5 and sliding >= 1


def test_a_sliding_choice_with_dependent_kink_normals_is_skipped():
    """d = 2 with several inputs: sliding along two kinks whose normals are dependent is no
    valid choice (it crashed the solve; found by Hypothesis: m = 3, n = 4, d = 2, seed 336);
    the consistent choice is taken and the flow agrees with the references."""
    X, y, a, W0 = _problem(3, 4, 2, 336)
    run, _ = _compare(X, y, a, W0, 1.0, 4e-3, slack=2.0)
    assert run.t_end == pytest.approx(1.0) and run.extra["degenerate"] == 0
