"""The integrator against closed forms, gradient descent and fine references."""
import math

import numpy as np
import pytest
from scipy.linalg import expm

from ntkcheck.dynamics import FlowOptions, Spectrum, gradient_descent, integrate_flow, integrate_flow_exponential
from ntkcheck.models import NTKNetwork


class Linear:
    """Frozen-H (kernel) dynamics: u = Jθ, L = ½‖Jθ − y‖², so u(t) = y + e^{−Ht}(u0 − y), H = JJᵀ."""

    def __init__(self, J, y):
        self.J, self.y = J, y

    def rhs(self, th):
        return -self.J.T @ (self.J @ th - self.y)

    def jvp(self, th, v):
        return self.J @ v

    def residual(self, th):
        return self.J @ th - self.y

    def velocity(self, th, w):  # θ′ when the residual is w
        return -self.J.T @ w

    def gram(self, th):
        return self.J @ self.J.T


def stiff_linear(seed=0, n=6, p=9, spread=(0.05, 50.0)):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    V, _ = np.linalg.qr(rng.standard_normal((p, p)))
    s = np.sqrt(np.geomspace(*spread, n))
    J = U @ np.diag(s) @ V[:n]
    return J, rng.standard_normal(n), rng.standard_normal(p)


def record(problem, H=None, thetas=None):
    pts = []

    def mon(pt):
        pts.append((pt.t, pt.residual.copy(), pt.error_u, pt.step))
        if thetas is not None:
            thetas.append((pt.theta.copy(), None if pt.displacement is None else pt.displacement.copy()))
        w, V = np.linalg.eigh(H if H is not None else problem.gram(pt.theta))
        return Spectrum(w[-1], max(w[0], 0.0), eigvals=w, eigvecs=V)

    return pts, mon


@pytest.mark.parametrize("rtol", [1e-3, 1e-5])
def test_frozen_kernel_flow_matches_the_closed_form_within_its_own_estimate(rtol):
    J, y, th0 = stiff_linear()
    prob = Linear(J, y)
    H = J @ J.T
    T = 40.0
    pts, mon = record(prob, H)
    run = integrate_flow(prob, th0, T, mon, FlowOptions(rtol=rtol))
    assert run.t_end == pytest.approx(T) and not run.diverged
    r0 = J @ th0 - y
    worst_true, worst_ratio = 0.0, 0.0
    for t, r, est, _ in pts[1:]:
        exact = expm(-H * t) @ r0
        true = np.linalg.norm(r - exact)
        assert true <= est  # the estimate bounds the true error at every step
        worst_true = max(worst_true, true / np.linalg.norm(r0))
        worst_ratio = max(worst_ratio, est / max(true, 1e-300))
    assert worst_true < 50 * rtol  # and the solution is accurate in its own terms


def test_step_is_capped_by_the_largest_eigenvalue():
    """λ_max = 1e4 would make an uncapped explicit step blow up; the cap keeps it stable and
    the number of steps is what the cap predicts (≈ T·λ_max/(0.9·2.51)), not millions."""
    J, y, th0 = stiff_linear(spread=(0.5, 1e4))
    prob = Linear(J, y)
    H = J @ J.T
    T = 2.0
    pts, mon = record(prob, H)
    run = integrate_flow(prob, th0, T, mon, FlowOptions(rtol=1e-2))
    lam_max = np.linalg.eigvalsh(H)[-1]
    predicted = T * lam_max / (0.9 * 2.51)
    assert predicted <= run.steps <= 1.5 * predicted + 10
    exact = expm(-H * T) @ (J @ th0 - y)
    assert np.linalg.norm(pts[-1][1] - exact) <= pts[-1][2]


@pytest.mark.parametrize("spread", [(0.05, 50.0), (0.5, 1e4)])
def test_exponential_steps_are_exact_on_a_frozen_kernel_whatever_its_stiffness(spread):
    """With J constant the exponential step is the exact flow: at every point r and θ are the
    closed form's (r(t) = e^{−Ht} r₀, θ(t) = θ₀ − Jᵀ H⁻¹(I − e^{−Ht}) r₀ on range(Jᵀ)), and the
    summed displacement is θ(t) − θ₀. The steps: the first is 1/λ_max, each next twice the last
    (the estimate, 0 here up to rounding, never holds one back) unless a checkpoint cuts it, so
    ⌈log₂(T·λ_max)⌉ = 15 and two or three for each of the 2 checkpoints: at most 20 at
    λ_max = 10⁴ (the Runge–Kutta pair needs T·λ_max/2.26 ≈ 8900)."""
    J, y, th0 = stiff_linear(spread=spread)
    prob = Linear(J, y)
    H = J @ J.T
    T = 2.0
    thetas = []
    pts, mon = record(prob, H, thetas)
    run = integrate_flow_exponential(prob, th0, T, mon, FlowOptions(rtol=1e-6, checkpoints=(0.1, 0.5)))
    r0 = J @ th0 - y
    w, V = np.linalg.eigh(H)
    assert run.t_end == pytest.approx(T) and not run.diverged and run.rejected == 0
    assert run.steps <= 20
    for (t, r, est, _), (th, disp) in zip(pts[1:], thetas[1:]):
        assert np.linalg.norm(r - expm(-H * t) @ r0) <= 1e-10 * np.linalg.norm(r0)
        exact = th0 - J.T @ (V @ (-np.expm1(-w * t) / w * (V.T @ r0)))
        np.testing.assert_allclose(th, exact, rtol=0, atol=1e-10 * np.linalg.norm(th0))
        np.testing.assert_allclose(disp, th - th0, rtol=0, atol=1e-12 * np.linalg.norm(th0))


def test_the_exponential_integrator_needs_the_kernels_eigenpairs():
    J, y, th0 = stiff_linear()
    with pytest.raises(ValueError, match="eigenpairs"):
        integrate_flow_exponential(Linear(J, y), th0, 1.0, lambda p: Spectrum(1.0))


def ntk_problem(seed=0, n=6, d=3, m=64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.choice([-1.0, 1.0], n)
    a = rng.choice([-1.0, 1.0], m)
    W0 = rng.standard_normal((m, d))
    return NTKNetwork(X, y, a), W0.ravel()


def test_network_gradient_and_jvp_match_finite_differences():
    net, th = ntk_problem()
    rng = np.random.default_rng(1)
    v = rng.standard_normal(th.size)
    eps = 1e-6  # far from kinks with probability ~1 at this scale
    loss = lambda t: 0.5 * float(net.residual(t) @ net.residual(t))  # noqa: E731
    fd = (loss(th + eps * v) - loss(th - eps * v)) / (2 * eps)
    assert -(net.rhs(th) @ v) == pytest.approx(fd, rel=1e-6)
    fd_u = (net.output(th + eps * v) - net.output(th - eps * v)) / (2 * eps)
    np.testing.assert_allclose(net.jvp(th, v), fd_u, rtol=1e-6, atol=1e-9)
    # and H = J Jᵀ: vᵀ... checked through the jvp of the gradient directions
    Jt = np.stack([net.jvp(th, e) for e in np.eye(th.size)], axis=1)  # n × p
    np.testing.assert_allclose(Jt @ Jt.T, net.gram(th), atol=1e-12)


def test_full_network_flow_is_the_limit_of_gradient_descent():
    net, th0 = ntk_problem(m=128)
    T = 3.0
    pts, mon = record(net)
    integrate_flow(net, th0, T, mon, FlowOptions(rtol=1e-7, min_step_fraction=1e-3))
    u_flow = pts[-1][1]
    errs = []
    for K in (30, 120, 480):
        last = {}

        def gmon(pt):
            last["r"] = pt.residual.copy()
            return Spectrum(1.0)

        run = gradient_descent(net, th0, T / K, K, gmon)
        assert run.steps == K and not run.diverged
        errs.append(np.linalg.norm(last["r"] - u_flow))
    assert errs[1] < errs[0] / 2.5 and errs[2] < errs[1] / 2.5  # first-order convergence
    assert errs[2] < 1e-2 * np.linalg.norm(net.residual(th0))


def test_kinks_do_not_make_the_integrator_crawl_and_the_estimate_still_bounds_the_error():
    """At m = 16 many signs flip along the way. Steps stay within the floor's bound and the
    estimate at T still covers the difference from a fine reference solution."""
    net, th0 = ntk_problem(seed=2, n=8, d=3, m=16)
    T = 6.0
    pts, mon = record(net)
    run = integrate_flow(net, th0, T, mon, FlowOptions(rtol=1e-4, min_step_fraction=0.1))
    lam_max = max(np.linalg.eigvalsh(net.gram(th0))[-1], 1e-9)
    assert run.steps < 20 * T * lam_max / (0.9 * 2.51 * 0.1)
    ref_pts, ref_mon = record(net)
    ref = integrate_flow(net, th0, T, ref_mon, FlowOptions(rtol=1e-6, min_step_fraction=1e-3, max_steps=10**6))
    assert ref.t_end == pytest.approx(T)
    true = np.linalg.norm(pts[-1][1] - ref_pts[-1][1])
    assert true <= pts[-1][2]


def test_gradient_descent_with_too_large_a_step_is_a_divergence():
    net, th0 = ntk_problem()
    lam_max = np.linalg.eigvalsh(net.gram(th0))[-1]

    def gmon(pt):
        return Spectrum(1.0)

    run = gradient_descent(net, th0, 10.0 / lam_max, 50, gmon)
    assert run.diverged and ("grew" in run.divergence or "non-finite" in run.divergence)
    ok = gradient_descent(net, th0, 0.5 / lam_max, 50, gmon)
    assert not ok.diverged and ok.steps == 50
    assert math.isfinite(ok.t_end)


def test_the_exponential_integrators_phi_functions_match_fifty_digit_arithmetic():
    """φ₁(λ, h) = (1 − e^{−λh})/λ and (φ₂(−λh) − ½)/λ, φ₂(z) = (e^z − 1 − z)/z², against the
    same formulas in 50-digit decimal arithmetic, across λh from 0 to 10³ (both sides of the
    series' switch at λh = ½)."""
    from decimal import Decimal, getcontext

    from ntkcheck.dynamics import _phi, _phi2_shift
    getcontext().prec = 50
    h = 0.7
    lam = np.array([0.0, 1e-300, 1e-12, 1e-8, 1e-4, 0.01, 0.5 / h * (1 - 1e-9), 0.5 / h * (1 + 1e-9), 1.0, 30.0, 1e3])
    got1, got2 = _phi(lam, h), _phi2_shift(lam, h)
    for lv, g1, g2 in zip(lam, got1, got2):
        L, H = Decimal(float(lv)), Decimal(h)
        x = L * H
        if x < Decimal("1e-20"):  # (50 digits cannot hold 1 − e^{−x} there: the series, to x²)
            w1 = H * (1 - x / 2 + x * x / 6)
            w2 = H * (Decimal(-1) / 6 + x / 24 - x * x / 120)
        else:
            w1 = (1 - (-x).exp()) / L
            w2 = (((-x).exp() - 1 + x) / (x * x) - Decimal("0.5")) / L
        assert abs(Decimal(float(g1)) - w1) <= Decimal("1e-14") * abs(w1), (lv, g1, w1)
        assert abs(Decimal(float(g2)) - w2) <= Decimal("1e-12") * abs(w2), (lv, g2, w2)
