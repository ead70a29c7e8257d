"""nnrf: the explicit inequality on generated cases, its control, t_close and its exponents,
and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkcheck


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 1000), st.sampled_from([4, 16]), st.sampled_from([4, 16]), st.floats(0.01, 3.0))
def test_the_explicit_inequality_is_never_violated(seed, m, n, c):
    res = ntkcheck.run_check("nnrf", seed=seed, m=m, n=n, d=3, trials=1, sets=[f"claim.c={c}", "dynamics.T=20"])
    row = next(r for r in res.rows if r.name == "explicit")
    assert row.violations == 0 and row.holds == row.trials > 0


def test_the_per_neuron_bound_brackets_the_sampled_supremum():
    """Brute force: |f − f̃| on 20 000 random unit x never exceeds Σ_k |e_k|‖b_k‖ + |ã_k|‖Δb_k‖,
    which never exceeds the Cauchy–Schwarz right side."""
    rng = np.random.default_rng(1)
    m, d = 12, 4
    B0 = rng.standard_normal((m, d))
    B0 /= np.linalg.norm(B0, axis=1, keepdims=True)
    B = B0 + 0.3 * rng.standard_normal((m, d))
    a, at = rng.standard_normal(m), rng.standard_normal(m)
    x = rng.standard_normal((20_000, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    diff = np.abs(np.maximum(x @ B.T, 0) @ a - np.maximum(x @ B0.T, 0) @ at).max()
    U = np.abs(a - at) @ np.linalg.norm(B, axis=1) + np.abs(at) @ np.linalg.norm(B - B0, axis=1)
    rhs = np.linalg.norm(a - at) * np.linalg.norm(B) + np.linalg.norm(at) * np.linalg.norm(B - B0)
    assert diff <= U <= rhs


def test_the_default_measures_t_close_growing_with_m_and_fails_its_control(default_run):
    res = default_run("nnrf")
    by = {c["name"]: c for c in res["claims"]}
    assert res["verdict"] == "pass" and by["control_first_term"]["verdict"] == "fail"
    assert by["explicit"]["holds"] == by["explicit"]["trials"]
    for name in ("t_close_m", "t_close_n"):
        assert by[name]["censored_trials"] == 0 and by[name]["t_close_exponent"] > 0, name
    # t_close grows with the width: the median per width increases
    per = [p for p in res["quantities"]["per_point"] if p["n"] == 64]
    medians = [p["t_close_median"] for p in sorted(per, key=lambda p: p["m"])]
    assert all(u < v for u, v in zip(medians, medians[1:]))


def test_a_horizon_too_short_censors_and_gives_no_exponent():
    res = ntkcheck.run_check("nnrf", m=16, n=16, d=3, trials=2, sets=["dynamics.T=0.01"])
    row = next(r for r in res.rows if r.name == "t_close_m")
    assert row.figures["censored_trials"] > 0 and row.estimate is None and str(row.verdict) == "inconclusive"


@pytest.mark.parametrize("argv, words", [
    (["--set", "claim.tolerance=0"], "claim.tolerance"),
    (["--set", "dynamics.T=-1"], "dynamics.T"),
])
def test_nnrf_refuses_bad_input_in_one_sentence(ntk, argv, words):
    r = ntk("nnrf", *argv)
    assert r.code == 2 and words in r.err and r.err.count("\n") == 1, r.err
