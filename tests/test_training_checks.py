"""Corollaries 2.2 and 2.4 end to end: they pass where the theory says, and their variants fail."""
import json

import numpy as np
import pytest

import ntkcheck
from ntkcheck.stats import FAIL, PASS

FAST24 = dict(n=10, d=6, m=512, trials=6)


def test_cor22_passes_at_large_width_and_fails_at_small_width():
    ok = ntkcheck.run_check("cor22")
    assert ok.verdict == PASS
    q = ok.quantities
    assert q["width_ratio"] == pytest.approx(q["m"] * q["lambda0"] ** 2 / (q["n"] ** 2 * np.log(q["n"] / 0.1)))
    by = {r.name: r for r in ok.rows}
    assert by["joint"].primary and not by["distance"].primary and not by["lambda_min"].primary
    assert by["variant_no_width"].verdict == FAIL  # the notes' unconditional reading
    assert by["control_width_one"].verdict == FAIL and by["control_width_one"].violations == by["joint"].trials
    narrow = ntkcheck.run_check("cor22", m=256)
    joint = next(r for r in narrow.rows if r.name == "joint")
    assert joint.verdict == FAIL and joint.violations > 0
    assert narrow.verdict == FAIL


def test_cor24_flow_and_gd_pass_and_the_fast_rate_variant_fails():
    res = ntkcheck.run_check("cor24", **FAST24)
    by = {r.name: r for r in res.rows}
    assert by["flow_loss"].verdict == PASS and by["flow_weights"].verdict == PASS
    assert by["gd_loss"].verdict == PASS
    for name in ("control_loss", "control_weights", "control_gd"):  # false by proof: refuted in every trial
        assert by[name].verdict == FAIL and by[name].violations == by[name].trials == res.trials
    # the too-fast rate is exceeded, but only after steps across kinks, where the error estimate
    # is no bound: never a PASS, and no violation is concluded from an untrusted point
    assert by["variant_fast_rate"].verdict != PASS
    assert by["variant_fast_rate"].figures["worst_ratio_to_bound"] > 1
    f = by["flow_loss"].figures
    assert f["hypothesis_held_to_T"] == 1.0
    assert f["decay_rate_over_lambda0_median"] >= 1.0  # the observed decay is at least the claimed rate
    assert f["worst_ratio_to_bound"] <= 1.0


def test_cor24_variant_discriminates_between_true_and_false_rates():
    """The loss decays at about 2λ_min(H) ≈ 2λ0: a claimed rate of 1.2λ0 is never violated,
    while 3λ0 is. The variant fails because the rate is false, not by construction."""
    res = ntkcheck.run_check("cor24", **FAST24, sets=["claim.variant_rate=1.2"])
    v = next(r for r in res.rows if r.name == "variant_fast_rate")
    # rate 1.2·λ0 is still below the true ~2λ_min(H) decay: no violation expected there
    assert v.violations == 0 and v.verdict == PASS
    res3 = ntkcheck.run_check("cor24", **FAST24, sets=["claim.variant_rate=3"])
    v3 = next(r for r in res3.rows if r.name == "variant_fast_rate")
    assert v3.verdict != PASS and v3.figures["worst_ratio_to_bound"] > 1


def test_cor24_gd_divergence_is_a_finding_never_a_pass(ntk, tmp_path):
    j = tmp_path / "r.json"
    r = ntk("cor24", "--n", "10", "--d", "6", "--m", "256", "--trials", "3",
            "--set", "dynamics.method=gd", "--set", "dynamics.step=10", "--json", j)
    assert r.code == 1
    assert "diverged" in r.out and "stability limit" in r.out
    text = j.read_text()
    assert "NaN" not in text and "Infinity" not in text
    d = json.loads(text)
    gd = next(c for c in d["claims"] if c["name"] == "gd_loss")
    assert gd["verdict"] == "fail" and gd["diverged"] == 3


def test_cor24_gd_only_uses_the_discrete_bound():
    res = ntkcheck.run_check("cor24", **FAST24, sets=["dynamics.method=gd"])
    names = [r.name for r in res.rows]
    assert names == ["gd_loss", "control_gd", "variant_fast_rate"]
    assert res.rows[0].verdict == PASS and res.rows[1].verdict == FAIL and res.rows[2].verdict == FAIL


def test_cor24_without_the_hypothesis_is_inconclusive_never_a_vacuous_pass():
    # m = 2: λ_min(H(0)) < λ0/2 in every trial, so no trial is evidence for any implication row
    res = ntkcheck.run_check("cor24", m=2)
    assert res.verdict == "inconclusive"
    for r in res.rows:
        if r.name == "thm32":  # Theorem 3.2 end to end is no implication: every trial is evidence
            assert r.vacuous == 0 and r.trials == res.trials and r.violations > 0 and r.verdict == "fail"
            continue
        assert r.trials == 0 and r.vacuous == res.trials and r.verdict == "inconclusive"
        assert r.ci_low == 0.0 and r.ci_high == 1.0
    assert res.trials > 29  # trials=auto looked for trials where the hypothesis held


def test_gd_above_the_stability_limit_runs_long_enough_to_fail():
    """Just above 2/λ_max(H∞) the horizon T/η (about 23 steps) would end before the top mode
    shows; the run is lengthened. Whether a trial is unstable depends on its draws: H(W)
    fluctuates around H∞ by O(1/√m), and a large step can lower λ_max(H) within a few
    steps (measured: η·λ_max(H) from 2.10 to 1.93 in 20 steps at 1.05 × the limit, the
    bound then holding), so only certification is ruled out just above the limit (the top
    mode decays like |1 − ηλ_max|^k ≈ 1, slower than the bound), and a clear FAIL is asked
    for further above it."""
    lam_max = float(np.linalg.eigvalsh(ntkcheck.h_infinity(
        ntkcheck.api.prepare("cor24", None, {})[2].state.X))[-1])
    eta = 2.0 / lam_max * 1.003  # just above 2/λ_max(H∞): T/η would be about 23 steps
    res = ntkcheck.run_check("cor24", trials=4, sets=["dynamics.method=gd", f"dynamics.step={eta!r}"])
    assert any("above the stability limit" in n for n in res.notes)
    assert any("O(λ0/n²)" in n for n in res.notes)
    assert res.quantities["gd_steps"] > 1000
    assert next(r for r in res.rows if r.name == "gd_loss").verdict != PASS
    res = ntkcheck.run_check("cor24", trials=4, sets=["dynamics.method=gd", f"dynamics.step={2.2 / lam_max!r}"])
    assert next(r for r in res.rows if r.name == "gd_loss").verdict == FAIL


@pytest.mark.parametrize("source", ["gaussian", "teacher"])
def test_label_sources(source):
    res = ntkcheck.run_check("cor24", **{**FAST24, "trials": 2}, sets=[f"data.labels.source={source}",
                                                                       "dynamics.method=gd"])
    assert res.quantities["labels"] == source
    assert res.rows[0].holds + res.rows[0].violations + res.rows[0].undecided == 2


def test_labels_from_a_file(ntk, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 4))
    np.save(tmp_path / "x.npy", X)
    np.savetxt(tmp_path / "y.csv", rng.standard_normal(10), delimiter=",")
    np.save(tmp_path / "short.npy", rng.standard_normal(7))
    r = ntk("cor24", "--data", tmp_path / "x.npy", "--labels", tmp_path / "y.csv", "--m", "256",
            "--trials", "2", "--set", "dynamics.method=gd")
    assert r.code in (0, 3), r.err
    r = ntk("cor24", "--data", tmp_path / "x.npy", "--labels", tmp_path / "short.npy", "--m", "256")
    assert r.code == 2 and "7 labels but the data have 10 rows" in r.err


def test_replay_of_a_cor24_trial_prints_its_trajectory_figures(ntk):
    r = ntk("cor24", "--n", "10", "--d", "6", "--m", "256", "--replay", "1")
    assert r.code == 0
    for key in ("flow_t_h", "flow_steps", "flow_error_u", "gd_worst_ratio", "R_prime"):
        assert key in r.out


@pytest.mark.parametrize("m", [16, 32, 64])
def test_cor24_at_small_widths_decides_on_exact_trajectories_without_false_fails(m):
    """At m = 16–64 the flow crosses and slides along many kinks; the implication is a theorem,
    so its rows may not FAIL, while the too-fast variant is refuted on the same trajectories."""
    res = ntkcheck.run_check("cor24", m=m, n=10, d=6, trials=8, sets=["dynamics.method=flow"])
    by = {r.name: r for r in res.rows}
    assert by["flow_loss"].verdict != FAIL and by["flow_weights"].verdict != FAIL
    assert by["flow_loss"].violations == 0 and by["flow_weights"].violations == 0
    assert by["variant_fast_rate"].verdict == FAIL
    assert by["flow_loss"].figures["kink_events_median"] > 5


def test_cor24_keeps_the_runge_kutta_integrator_as_an_option():
    res = ntkcheck.run_check("cor24", **{**FAST24, "trials": 2}, sets=["dynamics.integrator=bs3"])
    by = {r.name: r for r in res.rows}
    assert by["flow_loss"].verdict != FAIL and by["control_loss"].verdict == FAIL


def test_a_flow_stopped_before_its_hypothesis_ended_is_no_evidence():
    """n = 32, m = 256, trial 0, out of steps after 40 kink events (t ≈ 0.25) while λ_min(H) ≥
    λ0/2 still holds. The implication was followed only that far, short of its t_h: a trial with
    no violation up to there is undecided, not a holding trial. (Until 7563e5b this flow itself
    stalled at t ≈ 11, a neuron on a fifth kink beyond the four then enumerated; it now runs to T.)"""
    rep = ntkcheck.replay_trial("cor24", 0, n=32, m=256, sets=["dynamics.method=flow", "dynamics.max_steps=40"])
    assert rep.values["flow_held_to_T"] == 0.0 and rep.values["flow_kink_events"] == 40
    assert rep.values["flow_t_h"] < rep.quantities["T"]
    assert rep.outcomes["flow_loss"] == "undecided" and rep.outcomes["flow_weights"] == "undecided"
    assert rep.outcomes["thm32"] == "undecided"
    assert rep.outcomes["control_loss"] == "violation"  # (decided by its exact limit at t → 0+)


@pytest.mark.parametrize("value,bound,err", [(float("nan"), 1.0, 0.0), (0.5, float("nan"), 0.0),
                                             (0.5, 1.0, float("nan"))])
def test_cor24_a_nan_at_a_point_certifies_nothing(value, bound, err):
    """A NaN value, bound or error budget (a numerical failure) leaves the claim undecided:
    every comparison with NaN is false, and the check used to ask only whether the value
    exceeded its bound, so a NaN point counted as holding."""
    from ntkcheck.checks.cor24_monitor import Tracker

    tr = Tracker(0.1)
    tr.check("flow_loss", 0.5, 1.0, 0.0)
    assert tr.outcome("flow_loss") == "holds"  # (a finite point well inside its bound certifies)
    tr.check("flow_loss", value, bound, err)
    assert tr.outcome("flow_loss") == "undecided"


def test_cor24_forms_the_weights_at_an_event_only_when_their_bound_needs_them():
    """At an event the monitor bounds max_k ‖w_k(t) − w_k(0)‖ by its value at the last point
    where W was formed plus (t − t_a)‖X‖₂‖r(t_a)‖/√m; W (all m rows) is formed only when that
    bound no longer certifies R′, and then the claim is checked on it."""
    from types import SimpleNamespace as NS

    from ntkcheck.checks.cor24_monitor import Tracker, conclusions
    from ntkcheck.relumode import FlowPoint

    m, d, n = 4, 3, 2
    W0 = np.zeros((m, d))
    y, u0 = np.zeros(n), np.zeros(n)
    r = np.array([0.6, 0.8])  # ‖r‖ = 1

    def point(t, W, event=True):
        def refuse():
            raise AssertionError("W was formed")
        return FlowPoint(t, 0.0, 1, r, 1.0, np.ones(n), np.eye(n), 0.0, 0.0, True, event,
                         theta_fn=(lambda: W.ravel()) if W is not None else refuse)

    def prev():
        return {"loss": 1.0, "dist": 0.1, "t_dist": 0.0, "r_dist": 1.0}

    rates = {"flow_loss": 0.1}
    tr, pv = Tracker(0.1), prev()
    # xn2 = 1, m = 4: the weights move at most 0.5 per unit time; at t = 1 the bound is 0.6 ≤ R′ = 1
    conclusions(tr, point(1.0, None), 1.0, rates, W0, 1.0, y, u0, 1.0, 1.0, lmin=1.0, prev=pv)
    assert tr.outcome("flow_weights") == "holds" and pv["t_dist"] == 0.0
    # at t = 2 the bound is 1.1 > R′: W is formed (distance 0.3 here); over (0, 2] the weights
    # stay below (0.1 + 0.3 + 2·0.5)/2 = 0.7, so the claim holds
    W = np.zeros((m, d))
    W[0, 0] = 0.3
    conclusions(tr, point(2.0, W), 1.0, rates, W0, 1.0, y, u0, 1.0, 1.0, lmin=1.0, prev=pv)
    assert pv["t_dist"] == 2.0 and pv["dist"] == pytest.approx(0.3)
    assert tr.outcome("flow_weights") == "holds"
    # from t = 2 to 6 that bound is (0.3 + 0.3 + 4·0.5)/2 = 1.3 > R′: undecided in between
    conclusions(tr, point(6.0, W), 1.0, rates, W0, 1.0, y, u0, 1.0, 1.0, lmin=1.0, prev=pv)
    assert tr.outcome("flow_weights") == "undecided"
    # a violation at an event is found: W is formed because the bound exceeds R′
    tr, pv = Tracker(0.1), prev()
    W[0, 0] = 1.5
    conclusions(tr, point(2.0, W), 1.0, rates, W0, 1.0, y, u0, 1.0, 1.0, lmin=1.0, prev=pv)
    assert tr.outcome("flow_weights") == "violation"
