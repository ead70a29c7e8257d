"""Critical values and scaling studies against brute force: the check run at each value of a
grid, an independent float64 reference of cor22's trials, and synthetic power laws."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkcheck
import reference_ntk as ref
from ntkcheck import critical


def _unit(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_lemma23_critical_c_is_where_the_verdict_turns():
    """c* from the trials' thresholds, checked by running the whole check just below and just
    above it (the brute-force search at its two decisive points)."""
    over = {"n": 6, "d": 3, "m": 1024}  # (at m = 64 some λ_min(H(0)) < λ0/2: c* = 0)
    c = critical.find("lemma23", None, over, "claim.c")
    assert c.method == "thresholds" and c.value is not None and c.value > 0
    below = ntkcheck.run_check("lemma23", **over, sets=[f"claim.c={c.value * (1 - 1e-9)!r}"])
    above = ntkcheck.run_check("lemma23", **over, sets=[f"claim.c={c.value * (1 + 1e-9)!r}"])
    assert below.verdict == "pass" and above.verdict != "pass"
    lo, hi = c.interval
    assert lo <= c.value <= hi


def _h_infinity(X):
    G = X @ X.T
    nx = np.sqrt(np.diag(G))
    cos = np.clip(G / np.outer(nx, nx), -1.0, 1.0)
    return G * (np.pi - np.arccos(cos)) / (2 * np.pi)


def test_cor22_critical_width_equals_an_independent_brute_force(tmp_path):
    """Every trial at every grid width by float64 per-neuron sums from the documented trial
    streams (spawn key (1, i); W(0) is the trial's first draw): the smallest width from which
    all 29 trials hold at every larger grid width (29 of 29 are what 0.9 at 95% needs)."""
    rng = np.random.default_rng(3)
    n, d = 5, 5
    X = _unit(rng, n, d)
    path = tmp_path / "X.npy"
    np.save(path, X)
    grid = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    c = critical.find("cor22", None, {"data": str(path), "trials": 29}, "network.m", grid=grid)
    Hinf = _h_infinity(X)
    l0 = float(np.linalg.eigvalsh(Hinf)[0])
    holds_all = []
    for m in grid:
        ok = []
        for i in range(29):
            W0 = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1, i))).standard_normal((m, d))
            H0 = ref.gram_per_neuron(X, W0)
            ok.append(np.linalg.norm(H0 - Hinf, 2) <= l0 / 4 and np.linalg.eigvalsh(H0)[0] >= 0.75 * l0)
        holds_all.append(all(ok))
    want = None
    for m, good in zip(reversed(grid), reversed(holds_all)):
        if not good:
            break
        want = float(m)
    assert want is not None and want > grid[0]  # the search has a turning point inside the grid
    assert c.value == want
    assert c.bracket == (float(grid[grid.index(want) - 1]), want)
    assert c.verdicts["table"][grid.index(want) - 1] != "pass"


def test_first_of_tail_needs_every_larger_value_to_pass():
    g = [1.0, 2.0, 4.0, 8.0, 16.0]
    assert critical._first_of_tail(g, ["fail", "pass", "fail", "pass", "pass"]) == 8.0
    assert critical._first_of_tail(g, ["pass"] * 5) == 1.0
    assert critical._first_of_tail(g, ["pass", "pass", "pass", "pass", "inconclusive"]) is None
    assert critical._bracket(g, 8.0) == (4.0, 8.0)
    assert critical._bracket(g, 1.0) == (None, 1.0)
    assert critical._bracket(g, None) == (16.0, None)


def test_the_exponent_of_an_exact_power_law_is_recovered():
    ns = [10.0, 20.0, 40.0, 80.0]
    vals = [3.0 * n ** 1.5 for n in ns]
    f = critical.fit_exponent(ns, vals, [[(v, v)] * 5 for v in vals], 0.95)
    assert f["exponent"] == pytest.approx(1.5, abs=1e-12)
    assert f["interval"] == pytest.approx([1.5, 1.5], abs=1e-12)
    # two points, each known only within a factor 2 below: slopes from log(lo2/hi1) to log(hi2/lo1)
    f = critical.fit_exponent([1.0, 4.0], [2.0, 32.0], [[(1.0, 2.0)], [(16.0, 32.0)]], 0.95)
    assert f["exponent"] == pytest.approx(2.0)
    assert f["interval"] == pytest.approx([math.log(16 / 2) / math.log(4), math.log(32 / 1) / math.log(4)])


@settings(max_examples=60, deadline=None)
@given(p=st.floats(-3, 6), logc=st.floats(-5, 5), ratio=st.sampled_from([1.26, 1.5, 2.0, 4.0]),
       k=st.integers(2, 6), n0=st.integers(2, 40))
def test_the_exponent_interval_covers_the_truth_on_a_grid(p, logc, ratio, k, n0):
    """Critical values known only as the next grid value above the truth (a grid search): the
    interval, which accounts for the grid's resolution, must contain the true exponent."""
    ns = [float(n0 * 2 ** j) for j in range(k)]
    grid = [ratio ** j for j in range(-400, 400)]  # (covers every true value drawn here)
    vals, brs = [], []
    for n in ns:
        true = math.exp(logc) * n ** p
        i = next(i for i, g in enumerate(grid) if g >= true)
        vals.append(grid[i])
        brs.append([(grid[i - 1], grid[i])])
    f = critical.fit_exponent(ns, vals, brs, 0.95)
    lo, hi = f["interval"]
    assert lo - 1e-9 <= p <= hi + 1e-9


def test_scaling_command_writes_the_study(tmp_path, ntk):
    out = tmp_path / "s.json"
    csv = tmp_path / "s.csv"
    png = tmp_path / "s.png"
    res = ntk("scaling", "lemma23", "--over", "data.n=6,10", "--d", "3", "--m", "1024", "--json", out, "--csv", csv,
              "--plot", png)
    assert res.code == 0, res.out + res.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "exponent of critical radius" in res.out
    d = json.loads(out.read_text())
    assert d["check"] == "lemma23" and d["critical"] == "claim.c" and len(d["points"]) == 2
    for pt in d["points"]:
        q = pt["search"]["quantities"]
        assert pt["value"] == pytest.approx(pt["search"]["value"] * q["delta"] * q["lambda0"] / q["n"] ** 2)
    assert d["fit"]["exponent"] is not None and d["fit"]["proof_exponent"] < 0
    assert csv.read_text().count("\n") == 3


@pytest.mark.parametrize("args,msg", [
    (["scaling", "lemma23", "--over", "data.n=abc,5"], "not a positive number"),
    (["scaling", "lemma23", "--over", "data.n=5"], "at least two different values"),
    (["scaling", "lemma23", "--over", "data.n"], "KEY=V1,V2"),
    (["scaling", "cor22", "--over", "data.n=5,10", "--critical", "claim.c"], "no critical value along"),
    (["scaling", "thm41", "--over", "data.n=5,10"], "no critical value to study"),
    (["scaling", "cor22", "--over", "data.n=5,10", "--grid", "8,x"], "comma-separated numbers"),
    (["scaling", "cor22", "--over", "data.n=5,10", "--grid", "64"], "at least two values"),
    (["scaling", "cor22", "--over", "network.m=5,10", "--critical", "network.m"], "both name"),
    (["scaling", "lemma23", "--over", "data.n=5,10", "--grid", "1,2"], "takes no grid"),
    (["scaling", "lemma23", "--over", "data.n=5,10", "--row", "norm"], "does not apply"),
    (["scaling", "cor22", "--over", "data.n=5,6", "--grid", "8,16", "--row", "nosuch"], "has no row 'nosuch'"),
])
def test_scaling_refuses_bad_input_in_one_sentence(args, msg, ntk):
    res = ntk(*args)
    assert res.code == 2, res.out + res.err
    assert msg in res.err and "Traceback" not in res.err


def test_a_row_other_than_the_default_has_its_own_critical_width(tmp_path):
    """cor22's secondary row lambda_min turns at a smaller width than the joint event (it is
    one of the joint event's two conclusions)."""
    over = {"n": 5, "d": 5, "trials": 29}
    grid = [16, 32, 64, 128, 256, 512, 1024, 2048]
    table = critical.find("cor22", None, over, "network.m", grid=grid)
    alone = critical.find("cor22", None, over, "network.m", grid=grid, row="lambda_min")
    assert alone.row == "lambda_min" and table.row is None
    assert alone.value is not None and table.value is not None and alone.value <= table.value
    assert alone.per_row == table.per_row and alone.value == table.per_row["lambda_min"]


@pytest.mark.slow
@pytest.mark.parametrize("check,over,grid,measured,proof", [
    ("lemma23", "data.n=10,20,40,80,160", None, -1.64, -2.48),
    ("cor22", "data.n=10,20,40,80", [round(2 ** (k / 2)) for k in range(14, 41)], 1.95, 3.29),
])
def test_the_readme_exponents_reproduce(check, over, grid, measured, proof):
    """The README's table of exponents, measured against proved (the same seed gives the same
    study), and the finding it reports: the proof's exponent lies outside the interval."""
    from ntkcheck import scaling
    st = scaling.run_study(check, None, {}, over, None, grid)
    assert st.fit["exponent"] == pytest.approx(measured, abs=0.005)
    assert st.proof_exponent == pytest.approx(proof, abs=0.005)
    lo, hi = st.fit["interval"]
    assert lo <= st.fit["exponent"] <= hi and not lo <= st.proof_exponent <= hi


@pytest.mark.parametrize("R", [-1e-3, float("nan"), float("inf")])
def test_certify_and_attack_refuse_a_radius_that_is_not_a_finite_number_at_least_0(R):
    """A NaN radius compared false with every |w·x| and gave R = 0's certificate, silently;
    negative and infinite radii are no ball either."""
    from ntkcheck.kernels import attack, certify
    rng = np.random.default_rng(0)
    X = _unit(rng, 6, 3)
    W0 = rng.standard_normal((16, 3))
    with pytest.raises(ValueError, match="finite radius R ≥ 0"):
        certify(X, W0, R, 64.0)
    cert = certify(X, W0, 0.01, 64.0)
    with pytest.raises(ValueError, match="finite radius R ≥ 0"):
        attack(X, W0, R, cert, 1, 64.0)


@pytest.mark.parametrize("thresholds,tol", [([float("nan")], 1e-9), ([0.1], float("nan")), ([0.1], -1.0)])
def test_critical_radii_refuse_non_finite_thresholds_and_negative_tolerances(thresholds, tol):
    from ntkcheck.kernels import critical_radii
    rng = np.random.default_rng(0)
    X = _unit(rng, 6, 3)
    with pytest.raises(ValueError, match="finite thresholds"):
        critical_radii(X, rng.standard_normal((16, 3)), thresholds, tol, 64.0)
