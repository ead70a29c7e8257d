"""gram_matrix against an autodiff empirical NTK (torch.func), when PyTorch is installed.

    python benchmarks/bench_autodiff.py [--n 200] [--d 100] [--m 4096]

The autodiff version is what users write today: the Jacobian of the network's outputs with
respect to W by torch.func.jacrev (vmap inside), then J Jᵀ. Both give H(W) (checked); the
ratio is their time. Without PyTorch the script says so and exits 0.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ntkcheck import gram_matrix
from _args import add_results_option, positive_int, recorded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=positive_int, default=200)
    ap.add_argument("--d", type=positive_int, default=100)
    ap.add_argument("--m", type=positive_int, default=4096)
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_autodiff.py", f"n = {a.n}, d = {a.d}, m = {a.m}"):
        try:
            import torch
            from torch.func import jacrev
        except ImportError:
            print("PyTorch is not installed: no autodiff comparison (pip install torch).")
            return
        torch.set_num_threads(2)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((a.n, a.d))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        W = rng.standard_normal((a.m, a.d))
        av = rng.choice([-1.0, 1.0], a.m)
        Xt, Wt, at = (torch.tensor(v) for v in (X, W, av))

        def f(w):
            return torch.relu(Xt @ w.T) @ at / np.sqrt(a.m)

        def ntk():
            J = jacrev(f)(Wt).reshape(a.n, -1)
            return J @ J.T

        def best(fn, reps=3):
            t = []
            for _ in range(reps):
                t0 = time.perf_counter()
                out = fn()
                t.append(time.perf_counter() - t0)
            return min(t), out

        t_auto, H_auto = best(ntk)
        t_ours, H_ours = best(lambda: gram_matrix(X, W))
        err = float(np.abs(H_auto.numpy() - H_ours).max())
        print(f"torch {torch.__version__}; n={a.n} d={a.d} m={a.m}")
        print(f"autodiff empirical NTK  {t_auto * 1e3:9.1f} ms")
        print(f"ntkcheck.gram_matrix    {t_ours * 1e3:9.1f} ms   speed-up {t_auto / t_ours:.1f}x   max |ΔH| = {err:.1e}")


if __name__ == "__main__":
    main()
