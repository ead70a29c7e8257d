"""Gram-matrix speed, measured in one run: ratios against a bare product and a naive loop.

    python benchmarks/bench_gram.py [--n 1000] [--d 100] [--m 4096]

Prints the best-of-5 times of
  * ntkcheck.gram_matrix(X, W)                       (sign matrix, float32 counts, Hadamard with XXᵀ)
  * the bare float32 product S Sᵀ of the same shape  (the floor: one GEMM)
  * a per-neuron numpy loop Σ_k s_k s_kᵀ             (what a direct transcription does; timed on a
                                                    slice of the neurons and scaled, it is linear in m)
and the ratios between them.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from ntkcheck import gram_matrix


def best(f, reps=5):
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return min(t)


def best_interleaved(fs, reps=15):
    """Best-of-reps for several functions, alternating them so that machine noise hits all alike."""
    t = [[] for _ in fs]
    for _ in range(reps):
        for j, f in enumerate(fs):
            t0 = time.perf_counter()
            f()
            t[j].append(time.perf_counter() - t0)
    return [min(x) for x in t]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--m", type=int, default=4096)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.n, a.d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W = rng.standard_normal((a.m, a.d))
    S = (X @ W.T >= 0).astype(np.float32)  # n × m

    t_gram, t_bare = best_interleaved([lambda: gram_matrix(X, W), lambda: S @ S.T])
    k = min(a.m, 256)

    def loop():
        G = X @ X.T
        acc = np.zeros((a.n, a.n))
        for j in range(k):
            s = S[:, j].astype(np.float64)
            acc += np.outer(s, s)
        return G * acc

    t_loop = best(loop, reps=2) * a.m / k
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; numpy {np.__version__}")
    print(f"shape: n={a.n} d={a.d} m={a.m}")
    print(f"gram_matrix           {t_gram * 1e3:9.2f} ms")
    print(f"bare float32 S Sᵀ     {t_bare * 1e3:9.2f} ms   gram/bare = {t_gram / t_bare:.2f}")
    print(f"per-neuron loop       {t_loop * 1e3:9.2f} ms   loop/gram = {t_loop / t_gram:.1f}x")


if __name__ == "__main__":
    main()
