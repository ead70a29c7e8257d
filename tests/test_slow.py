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
