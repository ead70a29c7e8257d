"""Lemma 2.3 time and peak memory against width, measured in one run (one process per width).

    python benchmarks/bench_lemma23.py [--n 200] [--d 10] [--trials 2] [--max-log2m 20]

Each width runs `ntkcheck lemma23 --n N --d D --m M --trials T --workers 1` in a fresh process and
reads its peak resident memory from the OS; the last column is the time per trial divided by m,
which stays flat when the cost is linear in m.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from _args import add_results_option, positive_int, recorded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=positive_int, default=200)
    ap.add_argument("--d", type=positive_int, default=10)
    ap.add_argument("--trials", type=positive_int, default=2)
    ap.add_argument("--min-log2m", type=positive_int, default=10)
    ap.add_argument("--max-log2m", type=positive_int, default=20)
    add_results_option(ap)
    a = ap.parse_args()
    if a.n < 2:
        ap.error("--n must be at least 2 (lemma23 needs two inputs for λ0)")
    if a.min_log2m > a.max_log2m:
        ap.error("--min-log2m must not exceed --max-log2m")
    with recorded(a.results, "bench_lemma23.py", f"n = {a.n}, d = {a.d}, {a.trials} trials per width, 1 worker"):
        print(f"lemma23, n={a.n}, d={a.d}, {a.trials} trials per width, 1 worker")
        print(f"{'m':>9} {'seconds':>9} {'s/trial':>9} {'peak RSS MiB':>13} {'µs per trial per neuron':>24}")
        for k in range(a.min_log2m, a.max_log2m + 1, 2):
            m = 1 << k
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "ntkcheck", "lemma23", "--n", str(a.n), "--d", str(a.d),
                                "--m", str(m), "--trials", str(a.trials), "--workers", "1", "--quiet"],
                               capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if p.returncode not in (0, 1, 3):
                print(p.stderr)
                raise SystemExit(1)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rss = max(peak, before) / 1024
            print(f"{m:>9} {dt:>9.2f} {dt / a.trials:>9.3f} {rss:>13.0f} {1e6 * dt / a.trials / m:>24.2f}")


if __name__ == "__main__":
    main()
