"""thm41's quadratic form aᵀKa, K_kl = κ1(b_k·b_l)/d, per width, measured in one run: the
blocked upper-triangle form (ntkcheck.rf.quad_form) against the row-chunked form over both
triangles it replaced, against a bare arccos over one triangle (what the form did before it took
arccos through arctan) and a bare arctan over it (the minimal transcendental work now), with two
processes side by side, and its peak memory.

    python benchmarks/bench_quadform.py [--widths 2048 8192] [--d 10] [--peak-width 16384] [--results …]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

from _args import add_results_option, positive_int, recorded
from ntkcheck.kernels import kappa1
from ntkcheck.rf import QUAD_BLOCK, quad_form


def chunked(B: np.ndarray, a: np.ndarray, d: int, working_memory_mb: float = 64.0) -> float:
    """The form before: row chunks of K over both triangles, κ1 with its temporaries."""
    m = B.shape[0]
    chunk = int(min(max(working_memory_mb * 2**20 // (m * 24), 64), m))
    total = 0.0
    for s in range(0, m, chunk):
        sl = slice(s, min(m, s + chunk))
        total += float(a[sl] @ (kappa1(B[sl] @ B.T) @ a))
    return total / d


def bare(B: np.ndarray, a: np.ndarray, d: int, f=np.arccos) -> float:
    """``f`` (arccos) alone over the upper triangle's blocks, in place (no sqrt, no product)."""
    m, b = B.shape[0], QUAD_BLOCK
    buf = np.empty((b, b))
    for i in range(0, m, b):
        for j in range(i, m, b):
            G = np.matmul(B[i:i + b], B[j:j + b].T, out=buf[:min(b, m - i), :min(b, m - j)])
            np.clip(G, -1.0, 1.0, out=G)
            f(G, out=G)
    return 0.0


def bare_arctan(B: np.ndarray, a: np.ndarray, d: int) -> float:
    return bare(B, a, d, np.arctan)


def case(m: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, d))
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    return B, rng.standard_normal(m)


def best(f, B, a, d, repeats: int = 3) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(B, a, d)
        out.append(time.perf_counter() - t0)
    return min(out)


def _one(args) -> float:
    m, d = args
    B, a = case(m, d)
    with threadpool_limits(1):
        t0 = time.perf_counter()
        quad_form(B, a, d)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=positive_int, nargs="+", default=[2048, 8192])
    ap.add_argument("--d", type=positive_int, default=10)
    ap.add_argument("--peak-width", type=positive_int, default=16384)
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_quadform.py", f"d = {a.d}, 1 BLAS thread, best of 3"):
        run(a)


def run(a) -> None:
    d = a.d
    with threadpool_limits(1):
        for m in a.widths:
            B, v = case(m, d)
            tq, tc = best(quad_form, B, v, d), best(chunked, B, v, d)
            tb, tt = best(bare, B, v, d), best(bare_arctan, B, v, d)
            rel = abs(quad_form(B, v, d) - chunked(B, v, d)) / abs(chunked(B, v, d))
            print(f"m = {m:6d}: blocked {tq:.3f} s ({m * m / tq / 1e6:.0f} M entries/s), chunked {tc:.3f} s, "
                  f"bare arccos {tb:.3f} s, bare arctan {tt:.3f} s; chunked/blocked = {tc / tq:.2f}x, "
                  f"blocked/bare arccos = {tq / tb:.2f}x, blocked/bare arctan = {tq / tt:.2f}x, "
                  f"relative difference {rel:.1e}")
    m = a.widths[-1]
    one = _one((m, d))
    with mp.get_context("fork").Pool(2) as pool:
        t0 = time.perf_counter()
        pool.map(_one, [(m, d), (m, d)])
        two = time.perf_counter() - t0
    print(f"m = {m:6d}: 2 forms in 2 processes {two:.3f} s against 1 in {one:.3f} s: "
          f"2 workers = {2 * one / two:.2f}x")
    B, v = case(a.peak_width, d)
    tracemalloc.start()
    quad_form(B, v, d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"m = {a.peak_width:6d}: peak memory of quad_form {peak / 2**20:.1f} MiB beyond B "
          f"({B.nbytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
