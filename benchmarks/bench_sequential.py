"""Fixed-N against sequential verdicts at equal guarantees (family-wise α = 0.05), measured in
one run: (a) a probabilistic row with target 0.9 by Monte Carlo, for true probabilities from 1
down to the target — the expected number of trials and the fractions of PASS, FAIL and
INCONCLUSIVE; (b) each default check that can run sequentially, run with trials=auto and with
trials=sequential — trials used, verdict, wall time; (c) a real scenario whose probability is
near 0.97 against 0.9 (cor22 at m = 9000 on the default data, P(joint) ≈ 0.97 from 400 trials),
run with ``--near-runs`` seeds on the same data — the fraction of each verdict and the mean
number of trials, fixed against sequential.

    python benchmarks/bench_sequential.py [--reps 20000] [--checks lemma21 cor22 lemma23 thm41 cor24]
                                          [--near-runs 40] [--results benchmarks/RESULTS.md]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _args import add_results_option, positive_int, recorded


def fixed_design(p: float, p0: float, alpha: float, reps: int, rng) -> tuple[int, dict[str, float]]:
    """trials=auto: N fixed before the first trial; the verdict by the exact binomial tests."""
    from ntkcheck.planning import trials_needed
    from ntkcheck.stats import PROBABILISTIC, ClaimRow, decide

    n = trials_needed([ClaimRow("r", PROBABILISTIC, "", target=p0)], 1 - alpha)
    verdict_of_k = []
    for k in range(n + 1):
        row = ClaimRow("r", PROBABILISTIC, "", target=p0, holds=k, violations=n - k)
        verdict_of_k.append(str(decide([row], 1 - alpha).verdict))
    ks = rng.binomial(n, p, size=reps)
    v = np.array(verdict_of_k)[ks]
    return n, {x: float((v == x).mean()) for x in ("pass", "fail", "inconclusive")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=positive_int, default=20000)
    ap.add_argument("--checks", nargs="*", default=["lemma21", "cor22", "lemma23", "thm41", "cor24"])
    ap.add_argument("--near-runs", type=int, default=40)
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_sequential.py", f"{a.reps} simulated runs per probability; target 0.9, "
                                                   "α = 0.05, looks every 8 trials, budget 2000"):
        run(a)


def run(a) -> None:
    from ntkcheck import sequential as seq

    rng = np.random.default_rng(0)
    p0, alpha = 0.9, 0.05
    print("one probabilistic row, target 0.9, α = 0.05 (Monte Carlo)")
    print(f"{'true p':>7} | {'fixed: N':>8} {'pass':>6} {'fail':>6} {'inconc.':>7} | "
          f"{'seq.: E[N]':>10} {'median':>6} {'pass':>6} {'fail':>6} {'inconc.':>7}")
    for p in (1.0, 0.99, 0.97, 0.95, 0.93, 0.91, 0.9, 0.85):
        n, fx = fixed_design(p, p0, alpha, a.reps, rng)
        stop, v = seq.simulate_stops(p, p0, alpha, seq.BATCH, seq.MAX_TRIALS, a.reps, rng)
        print(f"{p:7.2f} | {n:8d} {fx['pass']:6.3f} {fx['fail']:6.3f} {fx['inconclusive']:7.3f} | "
              f"{stop.mean():10.1f} {np.median(stop):6.0f} {(v == 1).mean():6.3f} {(v == -1).mean():6.3f} "
              f"{(v == 0).mean():7.3f}")
    import ntkcheck

    if a.near_runs > 0:
        import os
        import tempfile

        X = ntkcheck.api.prepare("cor22", None, {})[2].state.X
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "X.npy")
            np.save(path, X)
            print(f"\ncor22, m = 9000, the default data (n = 20), {a.near_runs} seeds of the trials")
            for trials in ("auto", "sequential"):
                rs = [ntkcheck.run_check("cor22", data=path, m=9000, seed=s, trials=trials) for s in range(a.near_runs)]
                v = [str(r.verdict) for r in rs]
                print(f"{trials:>10}: mean trials {np.mean([r.trials for r in rs]):6.1f}, "
                      + ", ".join(f"{x} {v.count(x) / len(v):.3f}" for x in ("pass", "fail", "inconclusive")))
    if not a.checks:
        return

    print("\ndefault checks, trials=auto against trials=sequential (2 workers)")
    print(f"{'check':>8} | {'auto: trials':>12} {'verdict':>12} {'s':>6} | {'seq.: trials':>12} {'verdict':>12} "
          f"{'s':>6}")
    for c in a.checks:
        out = []
        for trials in ("auto", "sequential"):
            t0 = time.perf_counter()
            r = ntkcheck.run_check(c, trials=trials)
            out.append((r.trials, str(r.verdict), time.perf_counter() - t0))
        (n1, v1, s1), (n2, v2, s2) = out
        print(f"{c:>8} | {n1:12d} {v1:>12} {s1:6.1f} | {n2:12d} {v2:>12} {s2:6.1f}")


if __name__ == "__main__":
    main()
