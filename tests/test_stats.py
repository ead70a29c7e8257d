"""The verdict engine against simulated outcomes: wrong verdicts stay at or below α."""
import math
import zlib
from dataclasses import replace

import numpy as np
import pytest
import subprocess
import sys

from scipy import stats
from scipy.stats import binomtest

from ntkcheck.planning import trials_needed
from ntkcheck.slopes import SlopeSample
from ntkcheck.stats import (FAIL, INCONCLUSIVE, PASS, PROBABILISTIC, SCALING, UNIVERSAL, ClaimRow,
                            cp_lower, cp_upper, decide, p_value_above, p_value_below)


def prob_row(holds, n, target=0.9, undecided=0, primary=True, name="r"):
    return ClaimRow(name, PROBABILISTIC, "claim", primary=primary, target=target, holds=holds,
                    violations=n - holds - undecided, undecided=undecided)


@pytest.mark.parametrize("k,n,a", [(0, 10, 0.05), (7, 10, 0.05), (10, 10, 0.025), (180, 200, 0.01)])
def test_clopper_pearson_matches_scipy_exact_interval(k, n, a):
    ci = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * a, method="exact")
    assert cp_lower(k, n, a) == pytest.approx(ci.low, abs=1e-12)
    assert cp_upper(k, n, a) == pytest.approx(ci.high, abs=1e-12)


def test_intervals_and_p_values_equal_scipy_stats_bit_for_bit():
    """ntkcheck calls the ufuncs behind scipy.stats.beta/binom without importing scipy.stats
    (0.5 s); the numbers, support edges (k = 0, k = n, p0 = 0 or 1) included, must be
    scipy.stats' own."""
    for n in [1, 2, 3, 7, 36, 100, 137, 4096, 10**6]:
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for a in [0.5, 0.05, 0.0125, 1e-6]:
                assert cp_lower(k, n, a) == (stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0)
                assert cp_upper(k, n, a) == (stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0)
            for p0 in [0.0, 1e-9, 0.05, 0.5, 0.9, 0.99, 1.0]:
                assert p_value_above(k, n, p0) == stats.binom.sf(k - 1, n, p0), (k, n, p0)
                assert p_value_below(k, n, p0) == stats.binom.cdf(k, n, p0), (k, n, p0)


def test_the_command_line_does_not_import_scipy_stats_or_optimize():
    """Start-up time: scipy.stats (0.5 s) and scipy.optimize (0.09 s) are not loaded by the CLI
    (optimize only when a target's sup norm is computed)."""
    code = "import sys, ntkcheck.cli; print([m for m in ('scipy.stats', 'scipy.optimize') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def simulate(p_hold, n_trials, runs, seed, p_undecided=0.0, target=0.9, confidence=0.95):
    rng = np.random.default_rng(seed)
    u = rng.random((runs, n_trials))
    holds = (u < p_hold).sum(axis=1)
    und = ((u >= p_hold) & (u < p_hold + p_undecided)).sum(axis=1)
    verdicts = []
    for h, ud in zip(holds, und):
        row = prob_row(int(h), n_trials, target, undecided=int(ud))
        verdicts.append(decide([row], confidence).rows[row.name].verdict)
    return np.array(verdicts)


def se(alpha, runs):
    return math.sqrt(alpha * (1 - alpha) / runs)


def test_pass_is_wrong_at_most_alpha_just_below_the_target():
    runs = 4000
    v = simulate(p_hold=0.895, n_trials=400, runs=runs, seed=1)
    rate = np.mean(v == PASS)
    assert rate <= 0.05 + 3 * se(0.05, runs)
    assert rate > 0.005  # near the boundary the test is close to its level, not trivially 0


def test_fail_is_wrong_at_most_alpha_just_above_the_target():
    runs = 4000
    v = simulate(p_hold=0.905, n_trials=400, runs=runs, seed=2)
    rate = np.mean(v == FAIL)
    assert rate <= 0.05 + 3 * se(0.05, runs)
    assert rate > 0.005


def test_undecided_trials_never_make_a_false_claim_pass():
    """Undecided trials count as failures for PASS: with 90% holds + 5% undecided, and truth
    anywhere in [0.90, 0.95], a PASS at target 0.96 would be wrong; it must stay rare."""
    runs = 2000
    v = simulate(p_hold=0.90, p_undecided=0.05, n_trials=300, runs=runs, seed=3, target=0.96)
    assert np.mean(v == PASS) <= 0.05 + 3 * se(0.05, runs)


def test_clear_cases_are_decided():
    assert np.mean(simulate(0.99, 200, 300, seed=4) == PASS) > 0.95
    assert np.mean(simulate(0.70, 200, 300, seed=5) == FAIL) > 0.95


def family_wrong_rate(p_true, primary, runs=3000, n=300, k_rows=3, seed=6):
    """Share of simulated tables with at least one wrong verdict.

    The claim is "P(holds) ≥ 0.9": for p_true ≥ 0.9 a FAIL is wrong, below it a PASS is.
    """
    rng = np.random.default_rng(seed)
    holds = rng.binomial(n, p_true, size=(runs, k_rows))
    wrong_verdict = FAIL if p_true >= 0.9 else PASS
    wrong = 0
    for h in holds:
        rows = [prob_row(int(x), n, primary=primary, name=f"r{i}") for i, x in enumerate(h)]
        decision = decide(rows, 0.95)  # primary rows: Holm; variants: each alone at α
        wrong += any(d.verdict == wrong_verdict for d in decision.rows.values())
    return wrong / runs


@pytest.mark.parametrize("p_true", [0.9, 0.897])
def test_holm_controls_the_family_wise_error_over_rows_near_the_boundary(p_true):
    runs = 3000
    assert family_wrong_rate(p_true, primary=True, runs=runs) <= 0.05 + 3 * se(0.05, runs)


def test_without_holm_the_same_family_would_err_more_often():
    """The correction matters: deciding each of 3 boundary rows at α alone errs well above α."""
    runs = 3000
    assert family_wrong_rate(0.9, primary=False, runs=runs) > 0.05 + 3 * se(0.05, runs)


@pytest.mark.parametrize("target,k_rows,conf", [(0.9, 2, 0.95), (0.99, 1, 0.9), (0.5, 3, 0.99)])
def test_auto_trials_is_the_fewest_that_can_pass(target, k_rows, conf):
    rows = [prob_row(0, 0, target, name=f"r{i}") for i in range(k_rows)]
    n = trials_needed(rows, conf)

    def verdict_all_holding(N):
        rs = [prob_row(N, N, target, name=f"r{i}") for i in range(k_rows)]
        return decide(rs, conf).verdict

    assert verdict_all_holding(n) == PASS
    assert verdict_all_holding(n - 1) != PASS


@pytest.mark.parametrize("targets", [(0.9, 0.5), (0.9, 0.99, 0.5), (0.8, 0.95), (0.99, 0.9, 0.9, 0.6)])
def test_auto_trials_is_the_fewest_that_can_pass_with_different_targets(targets):
    """Holm lets a row with a smaller target take an earlier step, so the others get larger levels:
    (0.9, 0.5) at 95% needs 29 trials, not the 36 that α/K for every row would ask."""
    rows = [prob_row(0, 0, t, name=f"r{i}") for i, t in enumerate(targets)]
    n = trials_needed(rows, 0.95)

    def verdict_all_holding(N):
        return decide([prob_row(N, N, t, name=f"r{i}") for i, t in enumerate(targets)], 0.95).verdict

    assert verdict_all_holding(n) == PASS
    assert verdict_all_holding(n - 1) != PASS
    if targets == (0.9, 0.5):
        assert n == 29


def test_universal_rows():
    def uni(h, v, u, primary=True):
        return ClaimRow("u" if primary else "variant", UNIVERSAL, "for all", primary=primary, holds=h, violations=v,
                        undecided=u)

    r = uni(59, 0, 0)
    d = decide([r], 0.95)
    assert d.verdict == PASS
    assert d.rows["u"].ci_high == pytest.approx(1 - 0.05 ** (1 / 59))  # the bound 1 − α^{1/N}
    assert decide([uni(58, 1, 0)], 0.95).verdict == FAIL
    assert decide([uni(58, 0, 1)], 0.95).verdict == INCONCLUSIVE
    # a variant never decides the table
    assert decide([uni(10, 0, 0), uni(0, 10, 0, primary=False)], 0.95).verdict == PASS


def test_errored_trials_never_pass():
    r = prob_row(1000, 1001)
    r.violations = 0
    r.errors = 1
    assert decide([r], 0.95).verdict != PASS
    u = ClaimRow("u", UNIVERSAL, "x", holds=50, errors=1)
    assert decide([u], 0.95).verdict == INCONCLUSIVE


def _slope_row(widths, vals, rng, perms=2000, tol=0.2):
    sl = SlopeSample.from_groups(widths, vals, perms, rng)
    return ClaimRow("s", SCALING, "Ĉ(m) does not grow", estimate=sl.estimate, tolerance=tol, slopes=sl)


def test_scaling_claim_from_a_permutation_test():
    rng = np.random.default_rng(8)
    widths = np.array([256, 512, 1024, 2048, 4096])

    def row_for(true_slope):
        vals = widths[:, None] ** true_slope * rng.lognormal(0, 0.05, size=(widths.size, 30))
        return _slope_row(widths, vals, rng)

    flat, grows = row_for(0.0), row_for(0.5)
    assert abs(flat.estimate) < 0.05 and abs(grows.estimate - 0.5) < 0.05
    assert decide([flat], 0.95).verdict == PASS
    assert decide([grows], 0.95).verdict == FAIL
    (flat,) = decide([flat], 0.95).apply([flat])
    (grows,) = decide([grows], 0.95).apply([grows])
    assert flat.ci_high < 0.2 and grows.ci_low > 0.2
    assert decide([row_for(0.2)], 0.95).verdict != PASS


def test_slope_limits_are_the_tests_inverted():
    """The interval's ends are where the p-values cross α: just inside, not rejected; just
    outside, rejected (checked by evaluating the p-values, not the sorted crossings)."""
    rng = np.random.default_rng(3)
    widths = np.array([64, 128, 256, 512])
    sl = SlopeSample.from_groups(widths, widths[:, None] ** 0.3 * rng.pareto(2.0, (4, 12)) + 1, 999, rng)
    lo, hi = sl.interval(0.05)
    assert lo < sl.estimate < hi
    eps = 1e-9
    assert sl.p_values(hi - eps)[0] > 0.05 >= sl.p_values(hi + eps)[0]
    assert sl.p_values(lo + eps)[1] > 0.05 >= sl.p_values(lo - eps)[1]


NOISE = {
    "lognormal 0.3": lambda rng, size: rng.lognormal(0, 0.3, size),
    "lognormal 1": lambda rng, size: rng.lognormal(0, 1.0, size),
    "pareto 1.5": lambda rng, size: 1 + rng.pareto(1.5, size),
    "max of 20 half-normals": lambda rng, size: np.abs(rng.standard_normal(size + (20,))).max(axis=-1),
}


@pytest.mark.parametrize("noise", sorted(NOISE))
@pytest.mark.parametrize("slope,wrong", [(0.20, FAIL), (0.19, FAIL), (0.21, PASS)])
def test_slope_test_wrong_verdict_rate_at_the_tolerance(noise, slope, wrong):
    """Synthetic ratios m^s·Z, 6 widths × 10 trials, tolerance 0.2, α = 0.05: a wrong verdict
    (FAIL for s ≤ 0.2, PASS for s > 0.2) in at most α + 3 standard errors of the tables
    (the percentile bootstrap this replaced gave 9.1–9.5% wrong FAILs at s = 0.20)."""
    rng = np.random.default_rng(zlib.crc32(f"{noise} {slope}".encode()))
    widths = np.array([128, 256, 512, 1024, 2048, 4096])
    tables, bad = 1500, 0
    for _ in range(tables):
        vals = widths[:, None] ** slope * NOISE[noise](rng, (widths.size, 10))
        row = _slope_row(widths, vals, rng, perms=199)
        bad += decide([row], 0.95).verdict == wrong
    assert bad / tables <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / tables)


def _implication_check(monkeypatch, name, outcome):
    """Register a one-row check ``name`` (an implication, trials=auto) whose trial i has outcome
    ``outcome(rng)`` (holds, violation or vacuous), and return ntkcheck.run_check."""
    import ntkcheck.checks as checks
    from ntkcheck.api import run_check
    from ntkcheck.checks.base import Check, Context, TrialResult
    from ntkcheck.scenario import Strict

    class Toy(Check):
        title = ref = source = statement = name
        claim_model = type("ToyClaim", (Strict,), {})
        default = {"seed": 0, "trials": "auto", "confidence": 0.95, "claim": {}}

        def prepare(self, sc, explicit, rng):
            return Context()

        def rows(self, sc, ctx):
            return [ClaimRow("implication", UNIVERSAL, "H ⇒ C")]

        def run_trial(self, sc, ctx, rng, index):
            return TrialResult(index, {"implication": outcome(rng)})

    Toy.name = name
    monkeypatch.setitem(checks.REGISTRY, name, Toy)
    return run_check


def test_vacuous_trials_extend_auto_without_breaking_the_universal_bound(monkeypatch):
    """An implication whose hypothesis holds in 30% of trials and whose conclusion fails, given
    the hypothesis, with probability exactly at the bound a PASS reports (1 − α^{1/N} for the N
    planned): trials=auto runs on until N trials hold the hypothesis, and the wrong-PASS rate
    (P(violation) above the reported upper bound) stays ≤ α + 3 standard errors."""
    from ntkcheck.checks.base import HOLDS, VACUOUS, VIOLATION

    alpha, n_plan = 0.05, 59  # violation_bound 0.05 at 95%: N = ⌈log 0.05 / log 0.95⌉
    p_viol = 1 - alpha ** (1 / n_plan)

    def outcome(rng):
        if rng.random() >= 0.3:
            return VACUOUS
        return VIOLATION if rng.random() < p_viol else HOLDS

    run_check = _implication_check(monkeypatch, "sim", outcome)
    runs, wrong, evidence = 600, 0, []
    for seed in range(runs):
        res = run_check("sim", seed=seed, workers=1)
        row = res.rows[0]
        evidence.append(row.trials)
        assert row.trials + row.vacuous == res.trials
        if row.verdict == PASS and row.ci_high < p_viol:
            wrong += 1
    assert min(evidence) >= n_plan  # auto ran on until the planned evidence was there
    assert wrong / runs <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / runs)


def test_rows_have_a_type_per_kind_and_decide_mutates_nothing():
    """ClaimRow(name, kind, …) builds the row type of its kind, holding only that kind's fields;
    decide() returns the verdicts and levels as a value, and the rows keep no verdict until
    Decision.apply returns decided copies."""
    from ntkcheck.stats import Kind, ProbabilisticRow, ScalingRow, UniversalRow, Verdict

    p = prob_row(59, 59)
    u = ClaimRow("u", UNIVERSAL, "for all", holds=59)
    assert type(p) is ProbabilisticRow and type(u) is UniversalRow and u.kind is Kind.UNIVERSAL
    assert not hasattr(u, "target") and not hasattr(p, "tolerance")
    assert type(ClaimRow("s", SCALING, "slope", tolerance=0.2)) is ScalingRow
    with pytest.raises(ValueError):
        ClaimRow("bad", PROBABILISTIC, "no target")
    before = (p.to_dict(), u.to_dict())
    d = decide([p, u], 0.95)
    assert (p.to_dict(), u.to_dict()) == before and p.decision is None  # nothing was mutated
    assert d.verdict is Verdict.PASS and set(d.rows) == {p.name, "u"}
    dp, du = d.apply([p, u])
    assert dp.verdict == PASS and dp.level == d.rows[p.name].level and p.verdict == INCONCLUSIVE
    assert du.to_dict()["verdict"] == "pass" and dp.to_dict()["confidence"] == pytest.approx(1 - dp.level)


# -- why a row is INCONCLUSIVE, and how many trials would decide it --------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

from ntkcheck.stats import trials_to_pass, why_inconclusive  # noqa: E402


def _first_passing_n(holds, n, target, alpha, limit=5000):
    """Reference: try every N from n up, with scipy.stats' binomial test."""
    if holds / n <= target:
        return None
    for big in range(n, limit):
        k = holds * big // n
        if k > 0 and binomtest(k, big, target, alternative="greater").pvalue <= alpha:
            return big
    return None


@settings(max_examples=40)
@given(n=st.integers(1, 60), frac=st.floats(0.0, 1.0), target=st.sampled_from([0.5, 0.8, 0.9, 0.95]),
       alpha=st.sampled_from([0.05, 0.0167, 0.01]))
def test_trials_to_pass_is_the_first_n_that_passes(n, frac, target, alpha):
    holds = round(frac * n)
    want = _first_passing_n(holds, n, target, alpha)
    got = trials_to_pass(holds, n, target, alpha, limit=4096)
    assert got == (want if want is not None and want <= 4096 else None)


def _decided(**kw):
    row = ClaimRow(**kw)
    return decide([row], 0.95).apply([row])[0]


def test_inconclusive_rows_say_why():
    few = _decided(name="a", kind=PROBABILISTIC, statement="s", target=0.9, holds=10)
    assert few.verdict == INCONCLUSIVE
    need = trials_to_pass(10, 10, 0.9, 0.05)
    assert f"about {need} would decide it" in why_inconclusive(few) and need == 29
    und = _decided(name="a", kind=PROBABILISTIC, statement="s", target=0.9, holds=1, undecided=35)
    assert "undecided" in why_inconclusive(und) and "more trials will be undecided" in why_inconclusive(und)
    low = _decided(name="a", kind=PROBABILISTIC, statement="s", target=0.9, holds=27, violations=3)
    assert low.verdict == INCONCLUSIVE and "not above the target" in why_inconclusive(low)
    uni = _decided(name="a", kind=UNIVERSAL, statement="s", holds=3, undecided=2)
    assert "more trials will not help" in why_inconclusive(uni)
    vac = _decided(name="a", kind=UNIVERSAL, statement="s", vacuous=5)
    assert "hypothesis failed in all 5 trials" in why_inconclusive(vac)
    err = _decided(name="a", kind=UNIVERSAL, statement="s", holds=3, errors=1)
    assert "failed numerically" in why_inconclusive(err)
    ok = _decided(name="a", kind=PROBABILISTIC, statement="s", target=0.9, holds=29)
    assert ok.verdict == PASS and why_inconclusive(ok) is None


def test_the_suggested_trials_do_decide_the_row():
    """The count printed is the real one: at that N (same rate) the row PASSes, one below it not."""
    for holds, n in ((10, 10), (38, 40), (95, 100)):
        need = trials_to_pass(holds, n, 0.9, 0.05)
        at = _decided(name="a", kind=PROBABILISTIC, statement="s", target=0.9, holds=holds * need // n,
                      violations=need - holds * need // n)
        assert at.verdict == PASS
        below = need - 1
        if below >= n:
            b = _decided(name="a", kind=PROBABILISTIC, statement="s", target=0.9, holds=holds * below // n,
                         violations=below - holds * below // n)
            assert b.verdict != PASS


def test_a_deterministic_row_has_no_interval():
    row = _decided(name="a", kind=UNIVERSAL, statement="s", holds=1, deterministic=True)
    assert row.verdict == PASS and row.ci_low is None and row.ci_high is None
    assert row.to_dict()["deterministic"] is True


def test_a_universal_row_passes_under_auto_only_where_its_planned_bound_is_reached():
    """trials=auto plans N so that all-holding trials bound P(violation) by violation_bound at
    the row's level α/K; decide(universal_bound=...) PASSes such a row at that N and not one
    trial below it (INCONCLUSIVE, saying why), and without the bound (a --trials N the user
    chose) any violation-free N PASSes, with its interval."""
    for bound, k in ((0.1, 1), (0.05, 3), (0.2, 2)):
        rows = [ClaimRow(f"u{i}", UNIVERSAL, "for all") for i in range(k)]
        n = trials_needed(rows, 0.95, universal_bound=bound)
        at = [replace(r, holds=n) for r in rows]
        below = [replace(r, holds=n - 1, vacuous=7) for r in rows]
        assert decide(at, 0.95, universal_bound=bound).verdict == PASS
        short = decide(below, 0.95, universal_bound=bound).apply(below)[0]
        assert short.verdict == INCONCLUSIVE and short.decision.short_of == bound
        assert short.ci_high > bound >= decide(at, 0.95).apply(at)[0].ci_high
        assert f"held in only {n - 1} of {n + 6} trials" in why_inconclusive(short)
        assert decide(below, 0.95).verdict == PASS  # (no bound asked for: the rule for a fixed N)


def test_auto_does_not_pass_an_implication_whose_hypothesis_seldom_held(monkeypatch):
    """An implication whose hypothesis holds in 1% of trials and never fails: auto runs on to
    its cap (10 × the plan of 59) with about 6 trials of evidence, where P(violation) ≤ 0.5 or so —
    INCONCLUSIVE, not a PASS on next to no evidence (cor24 --m 8 --n 20 --d 5 --seed 6 PASSed
    on 1 trial of 390: P(viol.) ≤ 0.98); --trials sequential, out of budget, says so. At 30% the
    planned evidence comes and it PASSes."""
    from ntkcheck.checks.base import HOLDS, VACUOUS

    rate = {"p": 0.01}
    run_check = _implication_check(monkeypatch, "rare", lambda rng: HOLDS if rng.random() < rate["p"] else VACUOUS)
    res = run_check("rare", seed=1, workers=1)
    row = res.rows[0]
    assert res.trials == 10 * 59 and 0 < row.trials < 59  # (59: the default 5% bound at 95%)
    assert row.verdict == INCONCLUSIVE and res.verdict == INCONCLUSIVE and row.violations == 0
    assert "short of the bound 0.05" in why_inconclusive(row)
    fixed = run_check("rare", seed=1, workers=1, trials=590)  # the same trials, a count the user chose
    assert fixed.rows[0].trials == row.trials and fixed.rows[0].verdict == PASS
    seq = run_check("rare", seed=1, workers=1, trials="sequential", sets=["max_trials=400"])
    why = why_inconclusive(seq.rows[0])  # (it said "0 of 2 trials are undecided", the fixed-N text)
    assert seq.rows[0].verdict == INCONCLUSIVE and seq.rows[0].undecided == 0
    assert 0 < seq.rows[0].trials and f"held in only {seq.rows[0].trials} of 400 trials" in why
    assert "did not reach" in why
    rate["p"] = 0.3
    res = run_check("rare", seed=1, workers=1)
    assert res.rows[0].trials >= 59 and res.rows[0].verdict == PASS
