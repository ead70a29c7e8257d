"""Longer sweeps, excluded from the default run (`python -m pytest -m slow`).

Each has a reduced version in the default suite (test_stats.py, test_checks.py).
"""
import numpy as np
import pytest

import ntkcheck
from ntkcheck.stats import FAIL, PASS, PROBABILISTIC, ClaimRow, decide

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("p_true,wrong", [(0.9, FAIL), (0.898, PASS), (0.902, FAIL)])
def test_wrong_verdict_rate_with_many_tables(p_true, wrong):
    rng = np.random.default_rng(11)
    runs, n = 20000, 1000
    holds = rng.binomial(n, p_true, size=(runs, 2))
    bad = 0
    for h in holds:
        rows = [ClaimRow(f"r{i}", PROBABILISTIC, "", target=0.9, holds=int(x), violations=n - int(x))
                for i, x in enumerate(h)]
        bad += any(d.verdict == wrong for d in decide(rows, 0.95).rows.values())
    assert bad / runs <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / runs)


def test_lemma23_at_a_large_width_passes_and_fails_as_expected():
    ok = ntkcheck.run_check("lemma23", m=1 << 16, n=100, d=20)
    assert ok.verdict == PASS
    bad = ntkcheck.run_check("lemma23", m=1 << 14, n=100, d=20, trials=5, sets=["claim.c=1e7"])
    assert bad.rows[0].verdict == FAIL


def test_the_exact_flows_error_budget_bounds_its_true_error_over_many_networks():
    # 600 networks against the 50-digit reference (test_reluflow.py runs 60 generated ones and
    # nine chosen ones by default; docs/methods.md gives the figures of a sweep of 1500)
    from test_reluflow import _true_errors

    rng = np.random.default_rng(3)
    compared, worst = 0, 0.0
    for _ in range(600):
        m, n, d = int(rng.integers(2, 17)), int(rng.integers(2, 6)), int(rng.integers(2, 6))
        got = _true_errors(m, n, d, int(rng.integers(10**6)), float(rng.choice([1.0, 2.0, 4.0, 8.0])))
        if got is None:
            continue
        compared += 1
        for dw, err_theta, dr, err_u in got[2]:
            worst = max(worst, dw / err_theta, dr / err_u)
    assert compared >= 560  # (584: the reference follows about 96% of them; most of the rest are degenerate)
    assert worst <= 1.0
