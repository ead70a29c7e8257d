"""Cost of cor24's gradient flow per trial: the exact event-driven flow against the
Bogacki–Shampine pair, per width, measured in one run.

    python benchmarks/bench_flow.py [--widths 16 64 1024] [--trials 3] [--n 20] [--d 10]
                                    [--results benchmarks/RESULTS.md]

Prints seconds per trial for both integrators, their ratio exact/bs3, and the median number
of kink events of the exact flow; with --results, appends the figures (date, machine,
spread over the trials) to that file.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import ntkcheck
from _args import add_results_option, positive_int, recorded


def per_trial(integrator: str, m: int, n: int, d: int, trials: int) -> tuple[list[float], float]:
    """Seconds of flow in each of ``trials`` single-trial runs (seeds 0, 1, …; as the check
    measures them) and the median number of kink events."""
    secs, events = [], []
    for seed in range(trials):
        res = ntkcheck.run_check("cor24", m=m, n=n, d=d, trials=1, workers=1, seed=seed,
                                 sets=["dynamics.method=flow", f"dynamics.integrator={integrator}"])
        row = next(r for r in res.rows if r.name == "flow_loss")
        secs.append(float(row.figures["seconds_per_trial"]))
        events.append(float(row.figures.get("kink_events_median", 0.0)))
    return secs, float(np.median(events))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=positive_int, nargs="+", default=[16, 64, 1024])
    ap.add_argument("--trials", type=positive_int, default=3)
    ap.add_argument("--n", type=positive_int, default=20)
    ap.add_argument("--d", type=positive_int, default=10)
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_flow.py", f"n = {a.n}, d = {a.d}, {a.trials} trials per width, 1 worker"):
        run(a)


def run(a) -> None:
    for m in a.widths:
        t0 = time.perf_counter()
        exact, events = per_trial("exact", m, a.n, a.d, a.trials)
        bs3, _ = per_trial("bs3", m, a.n, a.d, a.trials)
        line = (f"m = {m:6d}: exact {np.median(exact):.3f} s/trial ({min(exact):.3f}–{max(exact):.3f}), "
                f"bs3 {np.median(bs3):.3f} s/trial ({min(bs3):.3f}–{max(bs3):.3f}), "
                f"exact/bs3 = {np.median(exact) / max(np.median(bs3), 1e-9):.2f}x, kink events {events:.0f} "
                f"[{time.perf_counter() - t0:.1f} s]")
        print(line)


if __name__ == "__main__":
    main()
