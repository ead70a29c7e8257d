"""Lemma 4.3 end to end, and the two-layer model's derivatives."""
import numpy as np
import pytest

import ntkcheck
from ntkcheck.network import TwoLayerNetwork
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


def test_scaling_claims_pass_and_the_misscaled_variant_fails():
    res = ntkcheck.run_check("lemma43", **SMALL)
    by = {r.name: r for r in res.rows}
    for k in ("a_norm", "B_norm", "B_move"):
        assert by[k].verdict == PASS
        assert by[k].ci_high < 0.2
    v = by["variant_misscaled"]
    assert v.verdict == FAIL and v.ci_low > 0.2
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


def test_widths_grid_and_replay(ntk):
    r = ntk("lemma43", "--set", "network.widths=[32, 128]", "--m", "128", "--trials", "2", "--replay", "3")
    assert r.code == 0 and "width" in r.out and "128" in r.out
    res = ntkcheck.run_check("lemma43", trials=2, sets=["network.widths=[32, 128]"], m=128)
    assert res.quantities["widths"] == [32, 128] and res.trials == 4


def test_target_above_one_is_refused(ntk):
    r = ntk("lemma43", "--set", "target.terms=[{family: linear, weight: 80}]")
    assert r.code == 2 and "‖f*‖∞ ≤ 1" in r.err
