"""Lemma 4.3 end to end, and the two-layer model's derivatives."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkcheck
from ntkcheck.dynamics import FlowOptions, Spectrum, integrate_flow, integrate_flow_exponential
from ntkcheck.models import TwoLayerNetwork
from ntkcheck.stats import FAIL, PASS

SMALL = dict(m=512, trials=4)


def test_two_layer_gradient_jvp_and_gram_match_finite_differences():
    rng = np.random.default_rng(0)
    n, d, m = 7, 4, 30
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    net = TwoLayerNetwork(X, rng.standard_normal(n), m)
    th = net.join(rng.standard_normal(m), rng.standard_normal((m, d)))
    v = rng.standard_normal(th.size)
    eps = 1e-6
    loss = lambda t: float(net.residual(t) @ net.residual(t)) / (2 * n)  # noqa: E731
    assert -(net.rhs(th) @ v) == pytest.approx((loss(th + eps * v) - loss(th - eps * v)) / (2 * eps), rel=1e-6)
    fd = (net.output(th + eps * v) - net.output(th - eps * v)) / (2 * eps)
    np.testing.assert_allclose(net.jvp(th, v), fd, rtol=1e-6, atol=1e-9)
    J = np.stack([net.jvp(th, e) for e in np.eye(th.size)], axis=1)
    np.testing.assert_allclose(J @ J.T / n, net.gram(th), atol=1e-12)


@pytest.mark.parametrize("c", [0.01, 1.0])
def test_scaling_claims_pass_and_the_control_fails_by_its_exact_limit(c):
    res = ntkcheck.run_check("lemma43", **SMALL, sets=[f"claim.c={c}"])
    by = {r.name: r for r in res.rows}
    for k in ("a_norm", "B_norm", "B_move"):
        assert by[k].verdict == PASS
        assert by[k].ci_high < 0.2
    # ‖a_0‖ = c/√m exactly: the sup over (0, T] of the first ratio is at least 1 (it was 0.029)
    assert min(by["a_norm"].figures["C_hat_per_width"]) >= 1.0
    v = by["control_a_fast"]  # its t → 0+ ratio is √m exactly
    assert v.verdict == FAIL and v.ci_low > 0.2
    widths = np.array([row["m"] for row in res.quantities["per_width"]], float)
    assert np.all(np.array(v.figures["C_hat_per_width"]) >= np.sqrt(widths) * (1 - 1e-9))
    table = res.quantities["per_width"]
    assert [row["m"] for row in table] == [16, 32, 64, 128, 256, 512]
    # B barely moves at large m: the median movement falls as m grows
    moves = [row["B_move_T_median"] for row in table]
    assert moves[-1] < moves[0] / 10


def test_fixed_constant_adds_universal_rows_that_can_fail():
    """‖B_t‖_F ≈ ‖B_0‖_F = √m, so its ratio is ≈ 1: C_T = 0.5 is refuted, C_T = 2 is not."""
    bad = ntkcheck.run_check("lemma43", **SMALL, sets=["claim.C_T=0.5"])
    row = next(r for r in bad.rows if r.name == "B_norm_at_C_T")
    assert row.verdict == FAIL and row.violations == row.trials
    assert bad.verdict == FAIL
    good = ntkcheck.run_check("lemma43", **SMALL, sets=["claim.C_T=2"])
    assert all(r.verdict == PASS for r in good.rows if r.primary)


def test_a_constant_below_one_fails_at_t_to_zero():
    """At t → 0+ ‖a_t‖/(c/√m + √m·t) → 1: C_T = 0.031 is violated in every trial (it PASSed when
    the supremum was taken only at the integrator's accepted steps)."""
    res = ntkcheck.run_check("lemma43", **SMALL, sets=["claim.C_T=0.031"])
    row = next(r for r in res.rows if r.name == "a_norm_at_C_T")
    assert row.verdict == FAIL and row.violations == row.trials


def _two_layer_rk4(X, y, a0, B0, times, h):
    """Fixed-step RK4 of the (a, B) flow on R̂ = (1/2n)Σ(f(x_i) − y_i)², written out neuron-free:
    a_k' = −(1/n)Σ_i r_i σ(b_k·x_i), b_k' = −(1/n)Σ_i r_i a_k 1{b_k·x_i ≥ 0} x_i. Returns (a, B) at
    each time (each reached by a shortened last step; steps ≤ min(h, t/50) so early times resolve)."""
    n = len(y)

    def f(a, B):
        P = B @ X.T
        r = np.maximum(P, 0).T @ a - y
        return -(np.maximum(P, 0) @ r) / n, -((P >= 0) * a[:, None]) @ (r[:, None] * X) / n

    a, B, t, out = a0.copy(), B0.copy(), 0.0, []
    for target in times:
        while t < target * (1 - 1e-14):
            s = min(h, max(target / 50, 1e-12), target - t)
            k1 = f(a, B)
            k2 = f(a + s / 2 * k1[0], B + s / 2 * k1[1])
            k3 = f(a + s / 2 * k2[0], B + s / 2 * k2[1])
            k4 = f(a + s * k3[0], B + s * k3[1])
            a = a + s / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            B = B + s / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            t += s
        out.append((a.copy(), B.copy()))
    return out


def _two_layer(seed, n, d, m, c):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.tanh(X[:, 0] + X[:, 1])
    a0 = rng.choice([-1.0, 1.0], m) * (c / m)
    B0 = rng.standard_normal((m, d))
    B0 /= np.linalg.norm(B0, axis=1, keepdims=True)
    return X, y, a0, B0, TwoLayerNetwork(X, y, m)


def _points(net):
    pts = []

    def monitor(p):
        pts.append(p)
        w, V = np.linalg.eigh(net.gram(p.theta))
        return Spectrum(w[-1], max(w[0], 0.0), eigvals=w, eigvecs=V)

    return pts, monitor


def test_velocity_is_the_gradient_flows_and_moves_the_outputs_by_minus_k():
    X, y, a0, B0, net = _two_layer(3, 7, 4, 30, 1.0)
    th = net.join(a0, B0)
    w = np.random.default_rng(4).standard_normal(len(y))
    assert np.array_equal(net.rhs(th), net.velocity(th, net.residual(th)))
    np.testing.assert_allclose(net.jvp(th, net.velocity(th, w)), -net.gram(th) @ w, rtol=1e-12, atol=1e-14)


def _exponential_points(m, c, T, seed=1):
    X, y, a0, B0, net = _two_layer(seed, 12, 4, m, c)
    times = list(np.linspace(T / 8, T, 8))
    pts, monitor = _points(net)
    run = integrate_flow_exponential(net, net.join(a0, B0), T, monitor,
                                     FlowOptions(rtol=1e-4, checkpoints=tuple(times)))
    assert run.t_end == pytest.approx(T) and not run.diverged
    at = [next(p for p in pts if abs(p.t - t) <= 1e-12 * T) for t in times]
    return X, y, a0, B0, net, times, pts, at, run


@pytest.mark.parametrize("m, c, T, seed", [(64, 0.01, 1.0, 1), (128, 1.0, 2.0, 1), (256, 1.0, 2.0, 1),
                                           (256, 3.0, 1.0, 2), (512, 1.0, 2.0, 2)])
def test_the_exponential_flow_follows_a_fine_rk4_reference_within_its_estimate(m, c, T, seed):
    """Where no sign changes (every point trusted: these draws), the exponential integrator's
    outputs against the independent RK4 integration at eight times: within the carried error
    estimate at each."""
    X, y, a0, B0, net, times, pts, at, run = _exponential_points(m, c, T, seed)
    assert run.kink_steps == 0 and all(p.trusted for p in pts)
    for p, (a, B) in zip(at, _two_layer_rk4(X, y, a0, B0, times, 1e-3)):
        assert np.linalg.norm(p.residual - net.residual(net.join(a, B))) <= p.error_u, (m, c, p.t)
        np.testing.assert_allclose(p.displacement, p.theta - net.join(a0, B0), rtol=0, atol=1e-12 * np.sqrt(m))


@pytest.mark.parametrize("m, c, T", [(16, 1.0, 6.0), (16, 5.0, 3.0)])
def test_after_a_sign_change_the_exponential_flows_points_are_untrusted(m, c, T):
    """Across a kink the estimate is no bound (for the Runge–Kutta pair neither): a point is
    trusted exactly while no sign of B Xᵀ has changed since t = 0, and the flow does not crawl."""
    X, y, a0, B0, net, times, pts, at, run = _exponential_points(m, c, T)
    s0 = B0 @ X.T >= 0
    changed = False
    for p in pts:
        changed |= not np.array_equal(net.split(p.theta)[1] @ X.T >= 0, s0)
        assert p.trusted == (not changed), p.t
    assert changed and run.steps < 200


@pytest.mark.parametrize("integrate", [integrate_flow, integrate_flow_exponential])
def test_the_displacement_resolves_what_rounding_of_b_hides(integrate):
    """At the first checkpoint of lemma43 at m = 4096 (t = c/m/1024 ≈ 2.4·10⁻⁹), ‖B_t − B_0‖ ≈
    ‖B′(0)‖·t ≈ 10⁻¹⁴ lies below the rounding of B_t's 20 480 entries of size ~1: the summed
    increments keep it to six digits (the difference of the states carries B_t's rounding: it
    is 4·10⁻³ off here), and they are θ − θ(0) up to that rounding."""
    m, c = 4096, 0.01
    X, y, a0, B0, net = _two_layer(0, 50, 5, m, c)
    t1 = c / m / 1024
    pts, monitor = _points(net)
    integrate(net, net.join(a0, B0), 2 * t1, monitor, FlowOptions(checkpoints=(t1,)))
    p = next(p for p in pts if p.t == pytest.approx(t1, rel=1e-12))
    slope = np.linalg.norm(net.split(net.rhs(net.join(a0, B0)))[1])  # ‖B′(0)‖
    assert np.linalg.norm(net.split(p.displacement)[1]) == pytest.approx(slope * p.t, rel=1e-6, abs=0)
    for q in pts[1:]:
        np.testing.assert_allclose(q.displacement, q.theta - net.join(a0, B0), rtol=0, atol=1e-13)


def test_the_exponential_integrators_steps_do_not_grow_with_m():
    """lemma43 at m = 128 and 4096 (one trial each): the exponential steps within 1.5× of each
    other, and the ratios' suprema those of the Bogacki–Shampine pair (whose steps grow) to the
    tolerance both integrate to (rtol = 10⁻⁴)."""
    kw = dict(m=4096, trials=1, workers=1, sets=["network.widths=[128, 4096]"])
    exp = ntkcheck.run_check("lemma43", **kw)
    bs3 = ntkcheck.run_check("lemma43", **{**kw, "sets": kw["sets"] + ["dynamics.integrator=bs3"]})
    e, b = exp.quantities["per_width"], bs3.quantities["per_width"]
    assert e[1]["steps_median"] <= 1.5 * e[0]["steps_median"]
    assert b[1]["steps_median"] > 1.5 * b[0]["steps_median"]
    for re_, rb in zip(e, b):
        for k in ("a_norm", "B_norm", "B_move"):
            assert re_[f"C_hat_{k}"] == pytest.approx(rb[f"C_hat_{k}"], rel=1e-4), (re_["m"], k)  # (rtol)


@pytest.mark.parametrize("c", [0.01, 1.0])
def test_suprema_over_t_cover_a_fine_reference_integration(c):
    """Ĉ of one trial against the ratios of an independent RK4 integration on a dense geometric
    grid down to t = 10⁻⁴·c/m: the tool's supremum is at least the reference's, and above it by
    at most the envelope's over-cover (the bounds grow by at most 2^¼ ≈ 1.19 over one early step)."""
    kw = dict(n=12, d=4, trials=1, sets=["network.widths=[32, 64]", f"claim.c={c}", "dynamics.T=1.0"])
    rep = ntkcheck.replay_trial("lemma43", 1, **kw)  # trial 1: width 64
    m = int(rep.values["width"])
    assert m == 64
    _, sc, ctx = ntkcheck.api.prepare("lemma43", None, dict(kw))
    X, y = ctx.state.X, ctx.state.y
    rng = np.random.default_rng(np.random.SeedSequence(sc.seed, spawn_key=(1, 1)))  # the trial's draws
    a0 = rng.choice(np.array([-1.0, 1.0]), size=m) * (c / m)
    B0 = rng.standard_normal((m, X.shape[1]))
    B0 /= np.linalg.norm(B0, axis=1, keepdims=True)
    times = np.unique(np.concatenate([(c / m) * np.geomspace(1e-4, 1e4, 161), np.linspace(0.01, 1.0, 100)]))
    times = times[times <= 1.0]
    sm = np.sqrt(m)
    ref = {"a_norm": 0.0, "B_move": 0.0}
    for t, (a, B) in zip(times, _two_layer_rk4(X, y, a0, B0, times, 2e-3)):
        ref["a_norm"] = max(ref["a_norm"], np.linalg.norm(a) / (c / sm + sm * t))
        ref["B_move"] = max(ref["B_move"], np.linalg.norm(B - B0) / ((c + 1) * (c * t / sm + sm / 2 * t * t)))
    for k, v in ref.items():
        tool = rep.values[f"ratio_{k}"]
        assert v * (1 - 1e-6) <= tool <= v * 1.25, (k, tool, v)


def test_widths_grid_and_replay(ntk):
    r = ntk("lemma43", "--set", "network.widths=[32, 128]", "--m", "128", "--trials", "2", "--replay", "3")
    assert r.code == 0 and "width" in r.out and "128" in r.out
    res = ntkcheck.run_check("lemma43", trials=2, sets=["network.widths=[32, 128]"], m=128)
    assert res.quantities["widths"] == [32, 128] and res.trials == 4


def test_target_above_one_is_refused(ntk):
    r = ntk("lemma43", "--set", "target.terms=[{family: linear, weight: 80}]")
    assert r.code == 2 and "‖f*‖∞ ≤ 1" in r.err


def test_an_interrupt_before_the_last_width_keeps_the_finished_trials():
    """Trials run width by width: an interrupt leaves the last widths without trials, which
    the summary marks (no slope) instead of failing."""
    seen = []

    def stop_after_three(t):
        seen.append(t)
        if len(seen) == 3:
            raise KeyboardInterrupt

    res = ntkcheck.run_check("lemma43", workers=1, on_trial=stop_after_three)
    assert res.interrupted and res.trials == 3
    table = res.quantities["per_width"]
    assert table[0]["trials"] == 3 and table[-1] == {"m": table[-1]["m"], "trials": 0}
    assert all(r.verdict != "fail" or r.role != "primary" for r in res.rows)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.sampled_from([32, 64, 128, 256, 512]), c=st.floats(0.01, 3.0),
       T=st.floats(0.5, 3.0))
def test_generated_exponential_flows_stay_within_their_estimate_while_trusted(seed, m, c, T):
    """Generated draws against the independent RK4 integration at eight times: at every trusted
    point (no sign changed yet) the outputs differ by at most the carried estimate."""
    X, y, a0, B0, net, times, pts, at, run = _exponential_points(m, c, T, seed)
    trusted = [p for p in at if p.trusted]
    ref = _two_layer_rk4(X, y, a0, B0, [p.t for p in trusted], 1e-3)
    for p, (a, B) in zip(trusted, ref):
        assert np.linalg.norm(p.residual - net.residual(net.join(a, B))) <= p.error_u, (m, c, T, p.t)
