"""Lemma 2.3 and Lemma 2.1 end to end through the Python API."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkcheck
from ntkcheck.stats import FAIL, PASS

SMALL = dict(m=2048, n=20, d=8)


def test_default_constant_passes_and_the_critical_constant_is_exact():
    res = ntkcheck.run_check("lemma23", **SMALL)
    assert res.verdict == PASS
    cstar = res.quantities["critical_c"]
    assert cstar is not None and cstar > res.quantities["c"]
    below = ntkcheck.run_check("lemma23", **SMALL, sets=[f"claim.c={cstar * (1 - 1e-6)!r}"])
    above = ntkcheck.run_check("lemma23", **SMALL, sets=[f"claim.c={cstar * (1 + 1e-6)!r}"])
    assert below.verdict == PASS
    assert above.verdict != PASS


def test_a_large_constant_fails_both_conclusions_through_the_attack():
    res = ntkcheck.run_check("lemma23", **SMALL, sets=["claim.c=1e6"])
    assert res.verdict == FAIL
    for row in res.rows:
        assert row.verdict == FAIL and row.violations > 0  # found, not merely undecided
        assert row.counterexample is not None
    norm = next(r for r in res.rows if r.name == "norm")
    assert norm.figures["attack_worst"] >= norm.figures["threshold"]
    assert norm.figures["certified_worst"] >= norm.figures["attack_worst"]


def test_result_object_has_the_json_fields():
    res = ntkcheck.run_check("lemma23", trials=2, **SMALL)
    d = res.to_dict()
    assert d["claims"] == res.claims and d["verdict"] == res.verdict
    assert d["quantities"]["lambda0"] > 0 and d["quantities"]["radius"] > 0
    assert d["scenario"]["network"]["m"] == SMALL["m"]


def test_same_seed_same_numbers_other_seed_other_draws():
    a = ntkcheck.run_check("lemma23", trials=3, seed=7, sets=["claim.c=2e3"], **SMALL).to_dict()
    b = ntkcheck.run_check("lemma23", trials=3, seed=7, sets=["claim.c=2e3"], **SMALL).to_dict()
    c = ntkcheck.run_check("lemma23", trials=3, seed=8, sets=["claim.c=2e3"], **SMALL).to_dict()
    for x in (a, b, c):
        x.pop("elapsed_seconds")
    assert a == b
    assert a["claims"] != c["claims"] and a["quantities"]["lambda0"] != c["quantities"]["lambda0"]


def test_chunk_size_does_not_change_any_number():
    kw = dict(trials=3, sets=["claim.c=2e3"], **SMALL)
    a = ntkcheck.run_check("lemma23", **kw).to_dict()
    b = ntkcheck.run_check("lemma23", **{**kw, "sets": kw["sets"] + ["compute.working_memory_mb=0.01"]}).to_dict()
    for x in (a, b):
        x.pop("elapsed_seconds")
        x["scenario"].pop("compute")
        for c in x["claims"]:
            c.get("counterexample", {}).pop("replay", None)  # the command names the chunk setting; numbers do not
    assert a == b


def test_lemma21_default_passes_with_lambda0_and_pair():
    res = ntkcheck.run_check("lemma21")
    assert res.verdict == PASS
    q = res.quantities
    assert q["lambda0"] > q["lambda0_error"] > 0
    i, j = q["most_parallel_pair"]
    assert 0 <= i < j < q["n"]
    assert res.rows[1].verdict == FAIL  # the variant without the hypothesis is refuted


def test_lemma21_variant_is_a_real_control():
    """The variant fails because λ0 is really 0 with a duplicated row, not by construction:
    a near-duplicate (rows 1e-3 apart) keeps λ0 certified positive, and the lemma holds."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.vstack([X, X[0] + 1e-3 * rng.standard_normal(4)])
    lam = ntkcheck.lambda0(Y / np.linalg.norm(Y, axis=1, keepdims=True))
    assert lam.certified_positive and lam.value < 1e-3


def _strip_timing(d):
    if isinstance(d, dict):
        return {k: _strip_timing(v) for k, v in d.items()
                if "seconds" not in k and k not in ("workers", "replay")}
    if isinstance(d, list):
        return [_strip_timing(v) for v in d]
    return d


@pytest.mark.parametrize("check,kw", [
    ("lemma23", dict(trials=6, sets=["claim.c=2e3"], **SMALL)),
    ("cor24", dict(trials=4, n=10, d=6, m=256)),
    ("thm41", dict(trials=4, m=256)),
    ("lemma43", dict(trials=2, m=128)),
])
def test_numbers_are_identical_for_one_and_two_workers(check, kw):
    one = ntkcheck.run_check(check, workers=1, **kw).to_dict()
    two = ntkcheck.run_check(check, workers=2, **kw).to_dict()
    assert _strip_timing(one) == _strip_timing(two)
    again = ntkcheck.run_check(check, workers=1, **kw).to_dict()
    assert _strip_timing(one) == _strip_timing(again)


@pytest.mark.parametrize("n,workers", [(1, 2), (7, 2), (39, 2), (40, 3), (2000, 2)])
def test_pool_batches_cover_the_trials_in_order_and_shrink_at_the_end(n, workers):
    """Guided scheduling: batches of at most 4 trials, in trial order, none lost or repeated,
    and single trials once fewer than 4 per worker are left (no worker alone with a long batch)."""
    from ntkcheck.trials import guided_batches

    batches = guided_batches(list(range(n)), workers)
    assert [i for b in batches for i in b] == list(range(n))
    sizes = [len(b) for b in batches]
    assert max(sizes) <= 4 and sizes == sorted(sizes, reverse=True)
    assert all(size == 1 for size, b in zip(sizes, batches) if n - b[0] < 4 * workers)
    if n >= 16 * workers:
        assert sizes[0] == 4


@settings(max_examples=40)
@given(m=st.integers(1, 40_000), d=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_the_control_radius_is_the_largest_distance_to_the_witness(m, d, seed):
    """lemma23's control radius max_k ‖w_k(0) + x_1‖, formed in row blocks, against the
    distances one by one (math.dist, float64 with its own rounding) and the whole-array
    expression it replaced (the same numbers, bit for bit)."""
    import math

    from ntkcheck.checks.lemma23 import largest_distance

    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, d))
    x = rng.standard_normal(d)
    got = largest_distance(W, -x)
    assert got == float(np.sqrt(((W + x) ** 2).sum(axis=1)).max())
    assert got == pytest.approx(max(math.dist(w, -x) for w in W), rel=4e-16 * d)
