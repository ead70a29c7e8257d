"""Trials per second with 1 and 2 worker processes, measured in one run.

    python benchmarks/bench_workers.py [--check cor24] [--trials 40]

Same seed, same trials: the JSON claims are identical (tested); only the wall time changes.
"""
from __future__ import annotations

import argparse
import time

import ntkcheck
from _args import add_results_option, positive_int, recorded
from ntkcheck.checks import REGISTRY


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", default="cor24", choices=sorted(REGISTRY))
    ap.add_argument("--trials", type=positive_int, default=40)
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_workers.py", f"--check {a.check}, {a.trials} trials"):
        rates = {}
        for w in (1, 2):
            t0 = time.perf_counter()
            res = ntkcheck.run_check(a.check, trials=a.trials, workers=w)
            dt = time.perf_counter() - t0
            rates[w] = res.trials / dt
            print(f"{a.check}: {res.trials} trials with {w} worker(s): {dt:.2f} s, {rates[w]:.2f} trials/s")
        print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
