"""Planning from the verdict rules: the fewest trials that could PASS a table, and the largest
value of a monotone parameter (Lemma 2.3's constant c) at which a table still PASSes."""
from __future__ import annotations

import math

import numpy as np

from .stats import PASS, PROBABILISTIC, SCALING, UNIVERSAL, ClaimRow, decide


def trials_needed(rows: list[ClaimRow], confidence: float,
                  universal_bound: float = 0.05, cap: int = 100_000) -> int:
    """Smallest N for which all-holding trials would PASS every primary row.

    With N trials all holding, a probabilistic row with target p0 has p-value p0^N. Holm's
    step-down (as :func:`decide` runs it over the K statistical rows) sorts the p-values: the
    row in place j (0-based, smallest p first) is rejected at α/(K − j), so N must satisfy
    p0_(j)^N ≤ α/(K − j) for every j; a row with a smaller target needs fewer trials and takes an
    earlier place. Scaling rows count in K and are assumed to come last (the least favourable
    order for the probabilistic rows). Universal rows pass with any N; for them N is chosen so
    that the reported bound on the violation probability, 1 − (α/K_all)^{1/N}, is at most
    ``universal_bound`` (their level, as :func:`decide` uses it). N is fixed before the first
    trial (a single look), so the Clopper–Pearson interval stays valid.
    """
    alpha = 1.0 - confidence
    primary = [r for r in rows if r.primary]
    k_all = max(1, len(primary))
    k_stat = sum(r.kind in (PROBABILISTIC, SCALING) for r in primary)
    n = 1
    targets = sorted(r.target for r in primary if r.kind == PROBABILISTIC)  # smallest p0^N first
    for j, t in enumerate(targets):
        n = max(n, math.ceil(math.log(alpha / (k_stat - j)) / math.log(t) - 1e-12))
    if any(r.kind == UNIVERSAL for r in primary):
        n = max(n, math.ceil(math.log(alpha / k_all) / math.log(1.0 - universal_bound) - 1e-12))
    if n > cap:
        raise ValueError(n)
    return n


def critical_value(thresholds: list[np.ndarray], targets: list[float], confidence: float
                   ) -> tuple[float | None, list[float | None]]:
    """Largest parameter value at which probabilistic rows still PASS, from per-trial thresholds.

    Row r's trial t holds exactly while the parameter is below ``thresholds[r][t]``
    (a monotone outcome, common random numbers across values), so at value c row r
    has #{t : threshold > c} holds. The verdicts are those of :func:`decide`
    (Holm across the rows) at each c. Returns the supremum of c for which every
    row PASSes, and for each row the supremum for which that row PASSes; None
    where no value passes.
    """
    cands = np.unique(np.concatenate([np.asarray(t, dtype=float) for t in thresholds]))[::-1]
    table: float | None = None
    per_row: list[float | None] = [None] * len(thresholds)
    for v in cands:  # descending: the first value that passes is the supremum
        rows = [ClaimRow(f"r{i}", PROBABILISTIC, "", target=tg,
                         holds=int(np.count_nonzero(np.asarray(th) >= v)),
                         violations=int(np.count_nonzero(np.asarray(th) < v)))
                for i, (th, tg) in enumerate(zip(thresholds, targets))]
        decision = decide(rows, confidence)
        if table is None and decision.verdict == PASS:
            table = float(v)
        for i, r in enumerate(rows):
            if per_row[i] is None and decision.rows[r.name].verdict == PASS:
                per_row[i] = float(v)
        if table is not None and all(p is not None for p in per_row):
            break
    return table, per_row
