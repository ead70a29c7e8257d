"""trials=sequential: the e-values against numerical integration of their definition, the
family-wise error by simulation at, just above and just below the targets, determinism across
workers, budgets, and what the table reports."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

import ntkcheck
from ntkcheck import sequential as seq


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 80), frac=st.floats(0, 1), p0=st.floats(0.05, 0.95))
def test_the_e_values_are_the_mixtures_they_are_defined_as(n, frac, p0):
    k = int(round(frac * n))

    def lr(q):  # the likelihood ratio of k holding of n at q against p0
        return math.exp(k * math.log(q / p0) + (n - k) * (math.log1p(-q) - math.log1p(-p0))) if 0 < q < 1 else 0.0

    up = 0.5 * ((1 / p0) ** n if k == n else 0.0) + 0.5 * quad(lr, p0, 1, limit=200, epsabs=0)[0] / (1 - p0)
    down = quad(lr, 0, p0, limit=200, epsabs=0)[0] / p0
    assert math.exp(float(seq.log_e_pass(k, n, p0))) == pytest.approx(up, rel=1e-6, abs=1e-300)
    assert math.exp(float(seq.log_e_fail(k, n, p0))) == pytest.approx(down, rel=1e-6, abs=1e-300)


def _wrong_rate(ps, targets, alpha, batch, max_trials, reps, rng):
    """Simulated tables: row r's trials hold with probability ps[r]; each row tested at α/K with
    the looks of a sequential run. A table is wrong when some row PASSes with p < target or
    FAILs with p ≥ target."""
    K = len(ps)
    wrong = np.zeros(reps, dtype=bool)
    for p, p0 in zip(ps, targets):
        _, v = seq.simulate_stops(p, p0, alpha / K, batch, max_trials, reps, rng)
        wrong |= (v == 1) if p < p0 else (v == -1)
    return float(wrong.mean())


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("ps,targets", [
    ([0.9], [0.9]), ([0.88], [0.9]), ([0.92], [0.9]),
    ([0.9, 0.88, 0.95], [0.9, 0.9, 0.95]), ([0.5, 0.92, 0.9], [0.5, 0.9, 0.92]),
])
def test_the_family_wise_error_holds_under_sequential_looks(ps, targets, batch):
    reps, alpha = 2000, 0.05
    rate = _wrong_rate(ps, targets, alpha, batch, 240, reps, np.random.default_rng(7))
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


def test_the_tests_have_power_away_from_the_target():
    rng = np.random.default_rng(1)
    stop, v = seq.simulate_stops(0.99, 0.9, 0.05, 8, 2000, 2000, rng)
    assert (v == 1).mean() > 0.99 and stop.mean() < 80
    stop, v = seq.simulate_stops(0.8, 0.9, 0.05, 8, 2000, 2000, rng)
    assert (v == -1).mean() > 0.99


def _run(**kw):
    d = ntkcheck.run_check("cor22", m=9000, trials="sequential", **kw).to_dict()
    d.pop("elapsed_seconds")
    d["scenario"]["compute"].pop("workers")
    for c in d["claims"]:
        c.pop("seconds_per_trial", None)
    return d


def test_a_sequential_run_is_the_same_for_any_number_of_workers():
    assert json.dumps(_run(workers=1)) == json.dumps(_run(workers=2))


def test_near_the_target_sequential_decides_where_fixed_n_is_inconclusive(tmp_path):
    """cor22 at m = 9000 on the default data: P(joint) ≈ 0.97 (389 of 400 trials) against 0.9.
    Seed 1's 29 trials include failures (fixed N: INCONCLUSIVE); sequentially it PASSes."""
    X = ntkcheck.api.prepare("cor22", None, {})[2].state.X
    path = tmp_path / "X.npy"
    np.save(path, X)
    fixed = ntkcheck.run_check("cor22", data=str(path), m=9000, seed=1)
    res = ntkcheck.run_check("cor22", data=str(path), m=9000, seed=1, trials="sequential")
    assert fixed.verdict == "inconclusive" and res.verdict == "pass"
    joint = res.rows[0]
    assert joint.figures["stopped_after"] == res.trials and res.trials % seq.BATCH == 0
    assert joint.figures["method"] == seq.METHOD and joint.violations > 0
    assert any(n.startswith(f"stopped after {res.trials} trials (sequential") for n in res.notes)


def test_a_spent_budget_leaves_the_row_inconclusive_and_says_which(ntk):
    r = ntk("cor22", "--m", "9000", "--trials", "sequential", "--max-trials", "16", "--seed", "1")
    assert r.code == 3
    assert "the budget max_trials = 16 was reached with rows undecided: joint" in r.flat
    assert "did not reach" in r.flat and "a larger max_trials" in r.flat  # why it is inconclusive


def test_a_universal_row_fails_on_any_counterexample_run():
    """lemma23's control has a witness in every trial: it FAILs at the first look, and the
    primary row is decided by its own test."""
    res = ntkcheck.run_check("lemma23", trials="sequential")
    by = {r.name: r for r in res.rows}
    assert by["control_big_ball"].verdict == "fail" and by["control_big_ball"].figures["stopped_after"] == 8
    assert by["joint"].verdict == "pass" and res.trials >= 33  # (1/0.9)^n·½ ≥ 20 from n = 33 on


def test_checks_whose_rows_are_slopes_run_fixed_and_say_why():
    res = ntkcheck.run_check("lemma43", "scenarios/smoke/lemma43.yaml", trials="sequential")
    assert any("trials=sequential does not apply to lemma43" in n for n in res.notes)
    assert res.trials == ntkcheck.run_check("lemma43", "scenarios/smoke/lemma43.yaml", trials="auto").trials


def test_plan_gives_the_expected_number_of_trials(ntk):
    r = ntk("plan", "cor22", "--trials", "sequential", "--guess", "0.97")
    assert r.code == 0 and "if each trial holds with probability 0.97: about" in r.out
    got = float(r.out.split("about ")[1].split(" trials")[0])
    assert 90 < got < 140  # simulated E[N] = 115 for one row at target 0.9 (benchmarks/RESULTS.md)


def test_bad_budget_values_are_refused(ntk):
    for args in (["--max-trials", "0"], ["--max-seconds", "-1"], ["--trials", "sequentially"]):
        r = ntk("cor22", *args)
        assert r.code == 2 and "Traceback" not in r.err


def test_rows_whose_hypothesis_never_holds_stop_the_run_as_auto_does():
    """cor24 at m = 2: λ_min(H(0)) < λ0/2 in every trial, so gradient descent's implication rows
    never get evidence; the run stops at 10 × the fixed plan (rounded up to a look), saying why."""
    res = ntkcheck.run_check("cor24", m=2, trials="sequential", sets=["dynamics.method=gd"])
    assert res.verdict == "inconclusive" and res.trials == 296  # 10 × 29, then the next look
    assert any("the hypothesis of gd_loss never held: no evidence for it" in n for n in res.notes)
    by = {r.name: r for r in res.rows}
    assert by["gd_loss"].trials == 0 and by["gd_loss"].vacuous == res.trials
