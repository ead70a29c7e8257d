"""Lemma 4.3 end to end, and the two-layer model's derivatives."""
import numpy as np
import pytest

import ntkcheck
from ntkcheck.dynamics import FlowOptions, Spectrum, integrate_flow
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


@pytest.mark.parametrize("integrate", [integrate_flow])
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
    assert np.linalg.norm(net.split(p.displacement)[1]) == pytest.approx(slope * p.t, rel=1e-6)
    for q in pts[1:]:
        np.testing.assert_allclose(q.displacement, q.theta - net.join(a0, B0), rtol=0, atol=1e-13)


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
