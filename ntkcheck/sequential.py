"""Sequential, anytime-valid verdicts (``trials: sequential``).

Trials run in batches of ``BATCH`` (by trial index, so the looks do not depend on the
number of workers); after each batch every row not yet decided is tested with an
e-process, and the run stops when every primary row is decided or the budget is spent.

* **PASS of "P(holds) ≥ p0".** With k holding trials of n (undecided, errors, divergences
  count against), E⁺_n = ∫ Π_i (q/p0)^{X_i} ((1 − q)/(1 − p0))^{1 − X_i} π(dq) with the prior
  π = ½δ₁ + ½U(p0, 1]. For one alternative q ≥ p0 and any true P(holds) = p ≤ p0, a factor
  has mean pq/p0 + (1 − p)(1 − q)/(1 − p0) ≤ 1 (it is 1 at p = p0 and increases in p), so
  E⁺ is a nonnegative supermartingale whenever the claim is false, and by Ville's inequality
  P(E⁺_n ≥ 1/a for some n) ≤ a. The point mass at q = 1 makes an unbroken run of holding
  trials decide almost as early as the fixed design; the uniform part keeps a run with a few
  failures decidable.
* **FAIL of "P(holds) ≥ p0".** The mirror image with s = holds + undecided + errors +
  divergences (trials that could hold) and π = U[0, p0): a supermartingale whenever the claim
  is true.
* **Universal rows.** A verified violation (or a divergence) is a counterexample: FAIL, no
  error possible. PASS bounds P(violation) by ``violation_bound`` = b: the PASS test above
  with p0 = 1 − b and "holds" = a trial with neither violation nor undecided outcome.
* **The family.** A table with K primary rows tests each at a = α/K (Bonferroni on
  e-values: the union of K events of probability ≤ α/K); a row can only be wrong in one
  direction (PASS when the claim is false, FAIL when it is true), so the family-wise error
  of the decided verdicts is ≤ α under any number of looks. Other rows (controls, variants)
  are tested alone at α.
* **Intervals.** Inverting the tests over p0 gives a confidence sequence, valid at every
  look: the reported interval at a row's stop is the set of p0 neither test rejects.

Scaling rows (a slope across widths, by an exact permutation test of a fixed sample) are not
sequential; a check with primary scaling rows runs ``trials: auto`` and says so.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import betainc, betaincc, betaln

#: trials per look (looks fall after trial BATCH·j − 1, whatever the number of workers)
BATCH = 8
#: the budget of a sequential run unless one is given
MAX_TRIALS = 2000
METHOD = "sequential: e-process (prior ½δ₁ + ½U(p0, 1] for PASS, U[0, p0) for FAIL), Bonferroni α/K"


def log_e_pass(k, n, p0):
    """log E⁺: evidence that P(holds) > p0, from k holding of n (arrays broadcast)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    base = -k * math.log(p0) - (n - k) * math.log1p(-p0)  # log of 1/(p0^k (1 − p0)^(n−k))
    with np.errstate(divide="ignore"):
        point = np.where(k == n, -n * math.log(p0), -np.inf)  # q = 1: (1/p0)^n while all hold
        tail = np.log(betaincc(k + 1, n - k + 1, p0)) + betaln(k + 1, n - k + 1) - math.log1p(-p0)
    return np.logaddexp(point, base + tail) - math.log(2.0)


def log_e_fail(s, n, p0):
    """log E⁻: evidence that P(holds) < p0, from s trials of n that could hold."""
    s, n = np.asarray(s, dtype=float), np.asarray(n, dtype=float)
    base = -s * math.log(p0) - (n - s) * math.log1p(-p0)
    with np.errstate(divide="ignore"):
        head = np.log(betainc(s + 1, n - s + 1, p0)) + betaln(s + 1, n - s + 1) - math.log(p0)
    return base + head


def decision(k: int, s: int, n: int, p0: float, level: float) -> str | None:
    """"pass", "fail" or None (undecided yet) for a probabilistic row at this look."""
    if n == 0:
        return None
    thr = math.log(1.0 / level)
    if float(log_e_pass(k, n, p0)) >= thr:
        return "pass"
    if float(log_e_fail(s, n, p0)) >= thr:
        return "fail"
    return None


def interval(k: int, s: int, n: int, level: float) -> tuple[float, float]:
    """The confidence sequence at this look: p0 not rejected by either test at ``level``."""
    thr = math.log(1.0 / level)
    if n == 0:
        return 0.0, 1.0

    def bisect(reject, lo, hi):  # the boundary of {p0 : reject(p0)}, rejected at the ``lo`` end
        for _ in range(60):
            mid = (lo + hi) / 2
            if reject(mid):
                lo = mid
            else:
                hi = mid
        return lo

    low = 0.0 if not float(log_e_pass(k, n, 1e-12)) >= thr else \
        bisect(lambda p: float(log_e_pass(k, n, p)) >= thr, 1e-12, 1 - 1e-12)
    high = 1.0 if not float(log_e_fail(s, n, 1 - 1e-12)) >= thr else \
        1 - bisect(lambda p: float(log_e_fail(s, n, 1 - p)) >= thr, 1e-12, 1 - 1e-12)
    return low, high


def simulate_stops(p: float, p0: float, level: float, batch: int, max_trials: int, reps: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo of one probabilistic row with true P(holds) = p (no undecided trials):
    per replication the stopping trial (max_trials if none) and the verdict (1 pass,
    −1 fail, 0 inconclusive)."""
    looks = np.arange(batch, max_trials + 1, batch)
    x = rng.random((reps, looks[-1])) < p
    k = np.cumsum(x, axis=1)[:, looks - 1]
    thr = math.log(1.0 / level)
    ep = log_e_pass(k, looks[None, :], p0) >= thr
    ef = log_e_fail(k, looks[None, :], p0) >= thr
    hit = ep | ef
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    stop = np.where(first >= 0, looks[np.maximum(first, 0)], max_trials)
    verdict = np.where(first < 0, 0, np.where(ep[np.arange(reps), np.maximum(first, 0)], 1, -1))
    return stop, verdict


def expected_trials(plan: dict, guess: float, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """For ``plan`` (api.plan_trials' "sequential": the primary rows' (target, level) and the
    budget): the expected number of trials of the run if every trial of every row holds with
    probability ``guess`` (rows independent; the run stops when the last row is decided), and
    the fraction of runs in which every row is decided within the budget."""
    rng = np.random.default_rng(seed)
    cap = int(plan["max_trials"])
    stops, decided = np.full(reps, BATCH, dtype=float), np.ones(reps, dtype=bool)
    for p0, level in plan["rows"]:
        stop, v = simulate_stops(guess, p0, level, BATCH, max(cap, BATCH), reps, rng)
        stops = np.maximum(stops, np.minimum(stop, cap))
        decided &= v != 0
    return float(stops.mean()), float(decided.mean())
