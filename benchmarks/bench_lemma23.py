"""Lemma 2.3 cost against width, measured in one run: time per trial and its ratio to one Gram matrix.

    python benchmarks/bench_lemma23.py [--n 50] [--d 10] [--max-log2m 16] [--trials 4]

A trial is one certified pass, the attack (3 iterations × 3 searches over the neurons that can flip a
sign) and two exact critical-radius searches; the ratio says how many Gram-matrix evaluations of
the same shape one trial costs.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import ntkcheck


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--max-log2m", type=int, default=16)
    ap.add_argument("--trials", type=int, default=4)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.n, a.d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    print(f"{'m':>8} {'s/trial':>9} {'gram ms':>9} {'trial/gram':>10} {'peak RSS MiB':>12}")
    for k in range(10, a.max_log2m + 1, 2):
        m = 1 << k
        W = rng.standard_normal((m, a.d))
        t0 = time.perf_counter()
        ntkcheck.gram_matrix(X, W)
        tg = time.perf_counter() - t0
        t0 = time.perf_counter()
        ntkcheck.run_check("lemma23", m=m, n=a.n, d=a.d, trials=a.trials)
        tt = (time.perf_counter() - t0) / a.trials
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{m:>8} {tt:>9.4f} {tg * 1e3:>9.2f} {tt / tg:>10.1f} {rss:>12.0f}")


if __name__ == "__main__":
    main()
