"""The count product Sᵀ S at the int8 limit, measured in one run: numpy's float32 product (the
default backend) against torch's exact int8 × int8 → int32 product (compute.backend: torch,
`pip install 'ntkcheck[fast]'`), and gram_matrix under each backend.

    python benchmarks/bench_counts.py [--n 200 1000] [--m 4096] [--d 100] [--rounds 5]
                                      [--results benchmarks/RESULTS.md]

Prints what the machine offers for int8 products (the CPU flags the auto backend looks for,
torch's CPU capability, a CUDA device), then per n: the median over rounds of the best of a
few calls of each product (interleaved, each with the threads numpy's BLAS has), their ratio
float32/int8 (above 1: torch is faster), whether the counts are the same bit for bit, and
which backend ``auto`` takes for that size. Without torch it says so and times numpy alone.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
from threadpoolctl import threadpool_info

from ntkcheck import gram_matrix
from ntkcheck.kernels import backend
from _args import add_results_option, best, positive_int, recorded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=positive_int, nargs="+", default=[200, 1000])
    ap.add_argument("--m", type=positive_int, default=4096)
    ap.add_argument("--d", type=positive_int, default=100)
    ap.add_argument("--rounds", type=positive_int, default=5)
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_counts.py", f"n = {', '.join(map(str, a.n))}, d = {a.d}, m = {a.m}, "
                                                f"{a.rounds} rounds"):
        run(a)


def run(a) -> None:
    have = backend.torch_installed()
    threads = max([1] + [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
    flags = backend.cpu_flags()
    int8 = [x for x in ("amx_int8", "avx512_vnni", "avx_vnni") if x in flags] or ["none"]
    line = f"CPU int8 instructions: {', '.join(int8)}; {threads} BLAS threads"
    if have:
        import torch

        torch.set_num_threads(threads)
        line += (f"; torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
                 f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    else:
        line += "; torch is not installed (pip install 'ntkcheck[fast]'): numpy alone"
    print(line)
    rng = np.random.default_rng(0)
    for n in a.n:
        X = rng.standard_normal((n, a.d))
        W = rng.standard_normal((a.m, a.d))
        S = (W @ X.T >= 0).astype(np.float32)
        auto = backend.resolve("auto", float(a.m) * n * n)
        fs = {"float32": lambda: S.T @ S}
        if have:
            fs["int8"] = lambda: backend.torch_counts(S)
        times: dict[str, list[float]] = {k: [] for k in fs}
        for _ in range(a.rounds):
            for k, f in fs.items():
                times[k].append(best(f, 3, warm_up=True))
        med = {k: statistics.median(v) for k, v in times.items()}
        text = f"n = {n:5d}: float32 SᵀS {med['float32'] * 1e3:9.2f} ms"
        if have:
            same = np.array_equal(backend.torch_counts(S), (S.T @ S).astype(np.int32))
            ratio = [x / y for x, y in zip(times["float32"], times["int8"])]
            with backend.using("numpy"):
                g_np = best(lambda: gram_matrix(X, W), 3, warm_up=True)
            with backend.using("torch"):
                g_t = best(lambda: gram_matrix(X, W), 3, warm_up=True)
            text += (f", int8 {med['int8'] * 1e3:9.2f} ms, float32/int8 = {statistics.median(ratio):.3g} "
                     f"(rounds {min(ratio):.3g}–{max(ratio):.3g}), same counts: {'yes' if same else 'NO'}; "
                     f"gram_matrix numpy {g_np * 1e3:.2f} ms, torch {g_t * 1e3:.2f} ms")
        print(text + f"; auto takes {auto}")


if __name__ == "__main__":
    main()
