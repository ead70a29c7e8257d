"""Targets f*, r and ‖f*‖² against adaptive quadrature, closed forms and Monte Carlo; the thm41 check."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkcheck
from ntkcheck.kernels import kappa1
from ntkcheck.rf import kernel_matrix, quad_form
from ntkcheck.stats import FAIL, PASS
from ntkcheck.targets import Target, Term

import reference_rf as ref


def sphere(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def target(d, kind="mix"):
    e = np.eye(d)
    if kind == "mix":
        return Target([Term("cos", 1.0, e[0], omega=3.0), Term("sign", 0.5, e[1])], d)
    if kind == "gegenbauer":
        v = (e[0] + e[2]) / math.sqrt(2)
        return Target([Term("gegenbauer", 1.0, v, degree=3), Term("linear", -0.7, e[1])], d)
    raise ValueError(kind)


@pytest.mark.parametrize("d,kind", [(3, "mix"), (10, "mix"), (4, "gegenbauer"), (12, "gegenbauer")])
def test_f_star_matches_an_independent_monte_carlo_over_b(d, kind):
    rng = np.random.default_rng(d)
    tg = target(d, kind)
    X = sphere(rng, 4, d)
    N = 1_000_000
    B = sphere(rng, N, d)
    a = tg.a_star(B)
    z = a[:, None] * np.maximum(B @ X.T, 0.0)  # N × 4
    mc, se = z.mean(axis=0), z.std(axis=0) / math.sqrt(N)
    assert np.all(np.abs(tg(X) - mc) <= 4 * se + tg.error_pointwise(X))


@pytest.mark.parametrize("d", [3, 10])
def test_norm_and_r_match_monte_carlo_over_pairs_of_features(d):
    """‖f*‖² = E_{b,b'}[a*(b)a*(b')κ1(b·b')/d] and r(b) = E_{b'}[a*(b')κ1(b·b')/d]:
    estimators that never use the quadrature."""
    rng = np.random.default_rng(100 + d)
    tg = target(d)
    N = 2_000_000
    b1, b2 = sphere(rng, N, d), sphere(rng, N, d)
    z = tg.a_star(b1) * tg.a_star(b2) * kappa1(np.sum(b1 * b2, axis=1)) / d
    n2, n2_err = tg.norm2
    assert abs(n2 - z.mean()) <= 4 * z.std() / math.sqrt(N) + n2_err
    B = sphere(rng, 3, d)
    r, r_err = tg.r(B)
    zr = tg.a_star(b2)[:, None] * kappa1(b2 @ B.T) / d
    assert np.all(np.abs(r - zr.mean(axis=0)) <= 4 * zr.std(axis=0) / math.sqrt(N) + r_err)


@pytest.mark.parametrize("d", [2, 3, 6])
def test_the_references_phi_against_monte_carlo(d):
    """The reference's Φ (a closed form) is itself checked by sampling."""
    for k, (s, tau) in enumerate([(0.3, -0.5), (-0.9, 0.2), (0.0, 0.99), (0.7, 0.7)]):
        mc, se = ref.phi_monte_carlo(s, tau, d, 1_000_000, seed=10 * d + k)
        assert abs(ref.phi(s, tau, d) - mc) <= 4 * se + 1e-12


CASES = [(3, "cos", {"omega": 3.0}), (5, "sign", {}), (2, "sign", {}), (2, "cos", {"omega": 2.0}),
         (4, "gegenbauer", {"degree": 3}), (2, "gegenbauer", {"degree": 4}), (7, "linear", {})]


@pytest.mark.parametrize("d,family,kw", CASES)
def test_norm_and_r_within_their_error_bounds_of_an_adaptive_quadrature(d, family, kw):
    """‖f*‖², r(b) and f*(x) against scipy's adaptive quadrature of the definitions (split at
    every kink): the difference must lie within the bound the target reports, and the bound
    must be tight (the old interpolants' estimate, 4e-9 at d = 3 and cos(3t), was exceeded)."""
    v = np.eye(d)[0]
    tm = Term(family, 1.0, v, **kw)
    tg = Target([tm], d)
    g = lambda t: float(tm.g(np.array([t]), d)[0])  # noqa: E731
    n2, n2_err = tg.norm2
    n2_ref = ref.norm2_single(g, d)
    assert abs(n2 - n2_ref) <= n2_err + 1e-14
    assert n2_err <= 1e-11
    taus = np.array([0.3, -0.8, 0.95])
    B = np.zeros((3, d))
    B[:, 0], B[:, 1] = taus, np.sqrt(1 - taus**2)
    r, r_err = tg.r(B)
    r_ref = np.array([ref.r_single(g, t, d) for t in taus])
    assert np.all(np.abs(r - r_ref) <= r_err + 1e-14)
    assert r_err.max() <= 1e-10
    f_ref = np.array([ref.F(g, t, d) for t in taus])
    assert np.all(np.abs(tg(B) - f_ref) <= tg.error_pointwise(B) + 1e-14)


@settings(max_examples=15, deadline=None)
@given(d=st.integers(2, 9), family=st.sampled_from(["cos", "sign", "gegenbauer", "linear"]),
       omega=st.floats(0.1, 8.0), degree=st.integers(0, 6), s=st.floats(-1.0, 1.0))
def test_f_star_within_its_bound_of_the_quadrature_on_generated_cases(d, family, omega, degree, s):
    tm = Term(family, 1.0, np.eye(d)[0], omega=omega, degree=degree)
    tg = Target([tm], d)
    x = np.zeros((1, d))
    x[0, 0], x[0, 1] = s, math.sqrt(max(1 - s * s, 0.0))
    f_ref = ref.F(lambda t: float(tm.g(np.array([t]), d)[0]), s, d)
    assert abs(tg(x)[0] - f_ref) <= tg.error_pointwise(x)[0] + 1e-13


def test_closed_forms_of_a_linear_target():
    """a*(b) = b·v: f*(x) = (x·v)/(2d), r(b) = (b·v)/(4d²), ‖f*‖² = 1/(4d³) (E[b₁σ(b₁)] = 1/(2d))."""
    rng = np.random.default_rng(3)
    for d in (2, 3, 8):
        v = sphere(rng, 1, d)[0]
        tg = Target([Term("linear", 1.0, v)], d)
        X = sphere(rng, 50, d)
        assert np.all(np.abs(tg(X) - X @ v / (2 * d)) <= tg.error_pointwise(X) + 1e-15)
        r, r_err = tg.r(X)
        assert np.all(np.abs(r - X @ v / (4 * d * d)) <= r_err + 1e-15)
        n2, n2_err = tg.norm2
        assert abs(n2 - 1 / (4 * d**3)) <= n2_err + 1e-15


def test_gamma_is_computed_from_a_star():
    e = np.eye(5)
    assert Target([Term("cos", 1.0, e[0], omega=3.0)], 5).gamma == 1.0
    assert Target([Term("linear", 2.5, e[0])], 5).gamma == 2.5
    # two orthogonal linear terms: sup over the sphere of |2 b0 + b1| is √5
    tg = Target([Term("linear", 2.0, e[0]), Term("linear", 1.0, e[1])], 5)
    assert tg.gamma == pytest.approx(math.sqrt(5), rel=1e-6)
    # cos + sign along orthogonal axes: sup is 1 + 0.5 (b·v0 = 0, b·v1 → ±)
    assert target(5).gamma == pytest.approx(1.5, rel=1e-6)


def test_exact_risk_matches_monte_carlo_over_x():
    rng = np.random.default_rng(8)
    d, m = 6, 300
    tg = target(d)
    B = sphere(rng, m, d)
    a = rng.standard_normal(m) / m
    r, _ = tg.r(B)
    n2, _ = tg.norm2
    R = quad_form(B, a, d) - 2 * a @ r + n2
    X = sphere(rng, 1_000_000, d)
    z = (np.maximum(X @ B.T, 0) @ a - tg(X)) ** 2
    assert abs(R - z.mean()) <= 4 * z.std() / math.sqrt(len(z))
    # and block-wise accumulation equals the full matrix
    assert quad_form(B, a, d) == pytest.approx(a @ kernel_matrix(B, d) @ a, rel=1e-12)


def test_thm41_default_passes_and_the_l1_reading_is_refuted():
    res = ntkcheck.run_check("thm41", trials=8)
    assert res.rows[0].holds == 8
    v = next(r for r in res.rows if r.name == "variant_l1")
    assert v.verdict == FAIL and v.violations == 8
    assert res.quantities["l1_lower_bound"] > res.quantities["bound"]
    assert res.rows[0].figures["witness_proof"] == 8


def test_thm41_at_small_width_the_l1_reading_is_true_and_says_so():
    """At m = 64, a = 0 already meets the bound (‖f*‖² < bound): the ℓ1 reading holds there, and
    the row says so instead of being flagged as lacking power."""
    res = ntkcheck.run_check("thm41", m=64)
    assert res.quantities["zero_witness_holds"]
    for name in ("variant_l1", "control_small_ball"):  # both true at this m, and both say so
        row = next(r for r in res.rows if r.name == name)
        assert row.role == "secondary" and "true at this m" in row.statement
        assert row.holds == res.trials and row.verdict == PASS
    assert res.weak_variants == []


@pytest.mark.parametrize("m", [1024, 2048])
def test_thm41_l1_reading_refuted_by_the_feature_norm_bound(m):
    """‖σ(b·x)‖_ρ = 1/√(2d) for unit b and uniform ρ: R ≥ (‖f*‖ − (γ/√m)/√(2d))₊², which exceeds
    the bound at m = 1024 (0.0255 > 0.0218), where max‖x‖ = 1 alone left the row INCONCLUSIVE."""
    res = ntkcheck.run_check("thm41", trials=3, m=m)
    q = res.quantities
    assert q["feature_norm_bound"] == pytest.approx(1 / np.sqrt(2 * q["d"]))
    assert q["l1_lower_bound"] > q["bound"]
    row = next(r for r in res.rows if r.name == "variant_l1")
    assert row.verdict == FAIL and row.violations == 3


@pytest.mark.parametrize("m", [1024, 4096])
def test_thm41_control_is_refuted_in_every_trial_by_its_certified_bound(m):
    """The theorem on the ball of radius γ/(30√m): K ⪰ 0 gives R ≥ ‖f*‖² − 2ρ‖r‖ over it, above the
    bound in every trial; the theorem itself holds with the proof's witness."""
    res = ntkcheck.run_check("thm41", trials=3, m=m)
    by = {r.name: r for r in res.rows}
    assert by["control_small_ball"].role == "control"
    assert by["control_small_ball"].violations == 3
    assert by["control_small_ball"].figures["certified_lower_min"] > res.quantities["bound"]
    assert by["theorem"].holds == 3


def _shrink_thm41_bound(monkeypatch, factor):
    """Make thm41's bound ``factor`` times smaller (a false claim the check must be able to refute)."""
    import ntkcheck.checks.thm41 as t41

    orig = t41.Thm41.prepare

    def shrunk(self, sc, explicit, rng):
        ctx = orig(self, sc, explicit, rng)
        ctx.state.bound /= factor
        return ctx

    monkeypatch.setattr(t41.Thm41, "prepare", shrunk)


def test_thm41_trust_region_certifies_a_violation_of_a_too_strong_bound(monkeypatch):
    """Shrink the theorem's bound 10⁷× (a false claim; the best witness beats the bound ~10⁴×):
    the exact trust region's dual bound must refute it."""
    _shrink_thm41_bound(monkeypatch, 1e7)
    res = ntkcheck.run_check("thm41", trials=3, m=256)
    assert res.rows[0].violations == 3 and res.rows[0].verdict == FAIL
    for i in range(3):  # a risk is never reported below 0 or below its certified lower bound
        v = ntkcheck.replay_trial("thm41", i, m=256).values
        assert v["risk_w2"] >= v["risk_w2_lower"] >= 0.0 and v["best_risk"] >= 0.0


def test_thm41_with_a_data_file_uses_the_exact_empirical_risk(tmp_path):
    rng = np.random.default_rng(10)
    X = sphere(rng, 40, 5)
    np.save(tmp_path / "x.npy", X)
    res = ntkcheck.run_check("thm41", data=str(tmp_path / "x.npy"), trials=3, m=512)
    assert res.quantities["measure"].startswith("empirical")
    rep = ntkcheck.replay_trial("thm41", 0, data=str(tmp_path / "x.npy"), m=512)
    # recompute the proof witness's empirical risk by hand
    tg = Target([Term("cos", 1.0, np.eye(5)[0], omega=1.0), Term("sign", 0.5, np.eye(5)[1])], 5)
    from ntkcheck.trials import trial_seed_sequence
    B = np.random.default_rng(trial_seed_sequence(0, 0)).standard_normal((512, 5))
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    a = tg.a_star(B) / 512
    R = np.mean((np.maximum(X @ B.T, 0) @ a - tg(X)) ** 2)
    assert rep.values["risk_w1"] == pytest.approx(R, rel=1e-10)


def test_gamma_of_sign_terms_counts_thin_cells_exactly():
    """Two sign terms with directions 1e-6 apart and weights ±10.5: the cell between the two
    hyperplanes is thin but non-empty, so sup|a*| = 21 (≤ Σ|w_j| = 21 always, and an explicit b in
    the cell attains it); sampling the sphere found 1."""
    d = 5
    e = np.eye(d)
    v2 = e[0] + 1e-6 * e[1]
    v2 /= np.linalg.norm(v2)
    tg = Target([Term("sign", 10.5, e[0]), Term("sign", -10.5, v2)], d)
    b = 1e-7 * e[0] - e[1]  # b·e0 > 0 > b·v2
    b /= np.linalg.norm(b)
    assert b @ e[0] > 0 > b @ v2
    assert abs(tg.a_star(b[None, :])[0]) == 21.0
    assert tg.gamma == 21.0
    # three sign terms along orthogonal axes: every sign vector is a cell, sup = Σ|w|
    assert Target([Term("sign", w, e[i]) for i, w in enumerate((2.0, -3.0, 4.0))], d).gamma == 9.0


def test_linear_terms_are_summed_before_bounding():
    from ntkcheck.checks.thm41 import TargetSpec
    from ntkcheck.targets import build_target

    cancel = TargetSpec(terms=[{"family": "linear", "weight": 8.0, "direction": 0},
                               {"family": "linear", "weight": -8.0, "direction": 0}])
    tg = build_target(cancel, 5)
    assert tg.sup_abs_bound() == 0.0 and tg.gamma == 1.0  # f* ≡ 0: the sum, not 16
    rng = np.random.default_rng(4)
    X = sphere(rng, 30, 5)
    np.testing.assert_array_equal(tg(X), np.zeros(30))
    spec = TargetSpec(terms=[{"family": "linear", "weight": 3.0, "direction": 0},
                             {"family": "linear", "weight": 4.0, "direction": 1}])
    merged = build_target(spec, 5)
    e = np.eye(5)
    separate = Target([Term("linear", 3.0, e[0]), Term("linear", 4.0, e[1])], 5)
    assert len(merged.terms) == 1 and merged.terms[0].weight == pytest.approx(5.0)
    np.testing.assert_allclose(merged(X), separate(X), rtol=1e-10, atol=1e-12)  # f* is linear in a*
    assert merged.gamma == pytest.approx(5.0, rel=1e-12)
    r1, _ = merged.r(X)
    r2, _ = separate.r(X)
    np.testing.assert_allclose(r1, r2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m", [1024, pytest.param(4096, marks=pytest.mark.slow)])
def test_thm41_fast_rate_control_fails_by_its_dual_bound(m):
    """The bound with rate 1/m³: the certified dual lower bound on min R over the ball exceeds it in
    every trial, so the control FAILs (at m = 1024 and, in the slow run, 4096)."""
    res = ntkcheck.run_check("thm41", m=m)
    by = {r.name: r for r in res.rows}
    row = by["control_fast_rate"]
    assert row.role == "control" and "Lagrangian duality" in row.statement
    assert row.verdict == FAIL and row.violations == res.trials
    assert row.figures["certified_lower_min"] > res.quantities["control_rate_bound"]
    assert by["theorem"].verdict == PASS


def test_thm41_fast_rate_control_refuted_at_4096_reduced():
    res = ntkcheck.run_check("thm41", m=4096, trials=2)
    row = next(r for r in res.rows if r.name == "control_fast_rate")
    assert row.violations == 2
    assert row.figures["certified_lower_min"] > res.quantities["control_rate_bound"]


def test_thm41_violations_are_recordable_beyond_the_exact_witness(monkeypatch):
    """Above exact_witness_max_m no trust region is solved; a bound shrunk 10⁶× (false, 5× below min R: min R·m²
    ≈ 0.14) is still refuted trial by trial, by the Lanczos dual bound."""
    import ntkcheck.checks.thm41 as t41

    _shrink_thm41_bound(monkeypatch, 1e6)
    calls = []
    real = t41.krylov_lower_bound
    monkeypatch.setattr(t41, "krylov_lower_bound", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = ntkcheck.run_check("thm41", m=1024, trials=3, workers=1, sets=["claim.exact_witness_max_m=512"])
    assert res.rows[0].violations == 3
    fast = next(r for r in res.rows if r.name == "control_fast_rate")
    assert fast.violations == 3 and len(calls) == 3  # one Lanczos run per trial serves both rows
    v = ntkcheck.replay_trial("thm41", 0, m=1024, sets=["claim.exact_witness_max_m=512"]).values
    assert "risk_w2" not in v and v["theorem_dual_lower_bound"] > 0.0


def test_thm41_a_bound_false_in_half_the_trials_fails(monkeypatch):
    """At m = 512 the exact min R over the ball lies in [3.5e-7, 4.6e-7] over 60 trials (the
    reference's trust region), median 3.95e-7: the bound divided by 110 000 (= 3.95e-7) is false
    in about half of them. With error bounds of ~1e-12 every trial is decided, and the table
    FAILs at N = 29 (before: budgets of ~5e-8 left such claims INCONCLUSIVE)."""
    _shrink_thm41_bound(monkeypatch, 110_000)
    res = ntkcheck.run_check("thm41", m=512, trials=29)
    row = res.rows[0]
    assert row.undecided == 0 and 5 <= row.violations <= 24
    assert row.verdict == FAIL


def test_random_feature_checks_run_at_d_2():
    """d = 2 (the circle): p_2 is the arcsine law and the harmonics are Chebyshev polynomials
    (the targets are checked against the reference at d = 2 above); both checks now run there."""
    res = ntkcheck.run_check("thm41", d=2, trials=4)
    assert res.quantities["d"] == 2 and res.rows[0].holds == 4
    assert res.quantities["norm_f_star_error"] < 1e-5
    res = ntkcheck.run_check("lemma43", d=2, m=512)
    assert res.verdict == PASS
