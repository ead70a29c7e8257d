"""Gram-matrix speed, measured in one run: ratios against a bare product and a naive loop.

    python benchmarks/bench_gram.py [--n 1000] [--d 100] [--m 4096] [--R 0.01]

Prints, for X (n × d, unit rows) and W (m × d, Gaussian):
  * ntkcheck.gram_matrix(X, W) against the bare float32 product S Sᵀ of the same shape
    (S = 1{X Wᵀ ≥ 0}, the floor: one symmetric rank-k update), each timed in its steady
    state, with the BLAS threads numpy has and with one thread. Each round times a block of
    back-to-back calls of every function (best call kept), each block started 0.15 s after the
    previous one so that OpenBLAS threads left spinning by the bare product's block do not
    compete with the next function's (measured: best-of-4 gram/bare 1.44-1.54 without the
    pause, 1.40-1.42 with it, the upper quartile 1.76-1.80 against 1.49-1.55; that case is
    timed on its own below); a ratio is the median over rounds
    of the ratio within a round (its range over the rounds in brackets), so a machine whose
    speed drifts during the run (a shared VM moved the bare product between 18 and 25 ms
    within one run) does not bias it; the times printed are medians over rounds. The share of
    CPU time the hypervisor took (steal, from /proc/stat) is printed at the end;
  * the same ratio when gram_matrix is called right after a threaded BLAS call: OpenBLAS's
    idle threads keep spinning for ~0.1 s after each call and compete with ours;
  * a per-neuron numpy loop Σ_k s_k s_kᵀ (timed on a slice of the neurons and scaled: it is
    linear in m);
  * Lemma 2.3's neuron passes at radius R: the certificate's matrices (H(W(0)), E), one pass
    of the attack on its own (with its sign pass), and one pass inside an attack (the attack
    makes 3 × iterations passes that share one sign pass), in units of the bare product;
  * where the time goes, on one thread (CPU time of the calling thread, in units of the bare
    product's on one thread): gram_matrix and the certificate, and their steps (the sign pass
    and its float32 product alone, the flippable pair counts AᵀA, the formation of E and
    H(W(0))). With the two-thread speed-up of the bare product measured in the same run, a
    pass whose work split perfectly over two threads would take (one-thread ratio) × speed-up / 2
    of the two-thread bare product: the floor its steps set, however well they are scheduled.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ntkcheck import gram_matrix
from ntkcheck.kernels.attack import AttackPasses, attack_pass
from ntkcheck.kernels.certificate import bound_former, certificate_matrices
from ntkcheck.kernels.eig import eigenvalue_at
from ntkcheck.kernels.flippable import Flippable
from ntkcheck.kernels.gram import gram_of_rows, sign_pass
from ntkcheck.parallel import single_blas, work_threads
from _args import add_results_option, positive_float, positive_int, recorded


def once(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


#: OpenBLAS's idle threads spin for 2^28 cycles (~0.12 s here) after a threaded call
SETTLE = 0.15


def cpu_once(f) -> float:
    t0 = time.thread_time()
    f()
    return time.thread_time() - t0


def settled_block(f, block: int) -> float:
    """The best of ``block`` back-to-back calls of f, started once no BLAS thread left spinning
    by the previous function competes with it."""
    time.sleep(SETTLE)
    return min(once(f) for _ in range(block))


def steady(fs, rounds=11, block=4) -> np.ndarray:
    """rounds × functions: per round, the best of a block of ``block`` back-to-back calls of
    each function in turn, each block started after a pause (:func:`settled_block`)."""
    return np.array([[settled_block(f, block) for f in fs] for _ in range(rounds)])


class Ratio(float):
    """The median over rounds of a ratio, printed with its range over the rounds."""

    def __new__(cls, per_round: np.ndarray):
        r = super().__new__(cls, float(np.median(per_round)))
        r.lo, r.hi = float(per_round.min()), float(per_round.max())
        return r

    def __format__(self, spec: str) -> str:
        return f"{format(float(self), spec)} (rounds {self.lo:{spec}}–{self.hi:{spec}})"


def ratios(t: np.ndarray) -> tuple[np.ndarray, list[Ratio]]:
    """(median time of each function, median over rounds of its time / column 0's time)."""
    return np.median(t, axis=0), [Ratio(col) for col in (t / t[:, :1]).T]


def cpu_ticks() -> tuple[int, int] | None:
    """(all, stolen) CPU ticks so far from /proc/stat (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]), fields[7]) if len(fields) >= 8 else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=positive_int, default=1000)
    ap.add_argument("--d", type=positive_int, default=100)
    ap.add_argument("--m", type=positive_int, default=4096)
    ap.add_argument("--R", type=positive_float, default=0.01)
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_gram.py", f"n = {a.n}, d = {a.d}, m = {a.m}, R = {a.R}"):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((a.n, a.d))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        W = rng.standard_normal((a.m, a.d))
        S = (X @ W.T >= 0).astype(np.float32)  # n × m

        def bare():
            return S @ S.T

        def gram():
            return gram_matrix(X, W)

        blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"  # numpy's (the products'), not scipy's
                for i in sorted(threadpool_info(), key=lambda i: "numpy" not in i["filepath"]) if i["user_api"] == "blas"][:1]
        ticks0 = cpu_ticks()
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; numpy {np.__version__}; "
              f"{', '.join(blas)}")
        print(f"shape: n={a.n} d={a.d} m={a.m}")
        X32 = X.astype(np.float32)
        buf = np.empty((a.m, a.n), dtype=np.float32)
        threads = work_threads(a.n, a.m)

        def signs():  # gram_matrix's first step: S with the signs of the float64 product
            with single_blas(threads):
                sign_pass(W, X, X32, buf, threads=threads)

        (t_bare, t_gram, t_sign), (_, r_gram, r_sign) = ratios(steady([bare, gram, signs]))
        print(f"bare float32 S Sᵀ            {t_bare * 1e3:9.2f} ms")
        print(f"gram_matrix                  {t_gram * 1e3:9.2f} ms   gram/bare = {r_gram:.2f}")
        print(f"  of which the sign pass     {t_sign * 1e3:9.2f} ms   ({float(r_sign):.2f} of the bare product: float32 "
              f"W Xᵀ, exact signs; the rest is the count product and X Xᵀ)")

        def after() -> float:  # gram_matrix right after a bare product, which leaves OpenBLAS's threads spinning
            bare()
            return once(gram)

        (_, t_a), (_, r_a) = ratios(np.array([[min(once(bare) for _ in range(4)), min(after() for _ in range(4))]
                                               for _ in range(5)]))
        print(f"gram_matrix after a BLAS call{t_a * 1e3:9.2f} ms   gram/bare = {r_a:.2f}"
              "   (OpenBLAS's spinning threads)")
        with threadpool_limits(1):
            (t_bare1, t_gram1), (_, r1) = ratios(steady([bare, gram], rounds=3))
        print(f"one BLAS thread: bare {t_bare1 * 1e3:.2f} ms, gram {t_gram1 * 1e3:.2f} ms   gram/bare = {r1:.2f}")
        torch_form(X, W, gram)

        k = min(a.m, 256)

        def loop():
            G = X @ X.T
            acc = np.zeros((a.n, a.n))
            for j in range(k):
                s = S[:, j].astype(np.float64)
                acc += np.outer(s, s)
            return G * acc

        t_loop = min(once(loop) for _ in range(2)) * a.m / k
        print(f"per-neuron loop              {t_loop * 1e3:9.2f} ms   loop/gram = {t_loop / t_gram:.1f}x")

        H0, E, cnt, SS, active, _ = certificate_matrices(X, W, a.R, 256)
        v = np.abs(eigenvalue_at(E, -1, vector=True)[1])  # the Perron vector the attack starts from
        G = gram_of_rows(X)
        Wa = W[active]
        push = AttackPasses(X, G, Wa, a.R, 256)
        (_, t_cert, t_att, t_push), (_, r_cert, r_att, r_push) = ratios(steady(
            [bare, lambda: certificate_matrices(X, W, a.R, 256), lambda: attack_pass(X, G, Wa, a.R, v, 1.0, 256),
             lambda: push(v, 1.0)], rounds=9, block=3))
        print(f"Lemma 2.3 at R={a.R}: {cnt.mean():.1f} flippable signs per input, "
              f"{active.size} of {a.m} neurons can move")
        print(f"certificate pass (H0, E)     {t_cert * 1e3:9.2f} ms   cert/bare = {r_cert:.2f}")
        print(f"one attack pass, on its own  {t_att * 1e3:9.2f} ms   attack/bare = {r_att:.2f}")
        print(f"one attack pass in an attack {t_push * 1e3:9.2f} ms   attack/bare = {r_push:.2f}"
              "   (sign pass shared)")
        floor(X, W, S, a.R)
        ticks1 = cpu_ticks()
        if ticks0 and ticks1 and ticks1[0] > ticks0[0]:
            print(f"CPU time taken by the hypervisor (steal) during the run: "
                  f"{100 * (ticks1[1] - ticks0[1]) / (ticks1[0] - ticks0[0]):.0f}% (/proc/stat)")


def torch_form(X: np.ndarray, W: np.ndarray, gram) -> None:
    """With torch installed: the hand-written float32 closed form (X Xᵀ) ∘ (S Sᵀ)/m, S from a
    float32 X Wᵀ (its signs unchecked: near 0 they may differ from the float64 product's),
    timed in the same rounds as gram_matrix, on torch's own threads (as many as numpy's BLAS)."""
    try:
        import torch
    except ImportError:
        print("torch float32 form             (torch is not installed)")
        return
    m = W.shape[0]
    torch.set_num_threads(max(1, max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")))
    Xt, Wt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(W.astype(np.float32))

    def form():
        S = (Xt @ Wt.T >= 0).to(torch.float32)
        return (Xt @ Xt.T) * (S @ S.T) / m

    diff = float(np.abs(form().double().numpy() - gram()).max() / np.abs(gram()).max())
    (t_gram, t_torch), (_, r) = ratios(steady([gram, form], rounds=7))
    print(f"torch {torch.__version__} float32 form {t_torch * 1e3:9.2f} ms   torch/gram = {r:.2f}   (gram_matrix "
          f"{t_gram * 1e3:.2f} ms in the same rounds; max relative difference {diff:.1e})")


def floor(X: np.ndarray, W: np.ndarray, S: np.ndarray, R: float) -> None:
    """One-thread CPU time of gram_matrix, the certificate and their steps, in bare products."""
    n, m = X.shape[0], W.shape[0]
    X32, W32 = X.astype(np.float32), W.astype(np.float32)
    buf = np.empty((m, n), dtype=np.float32)
    flat = sign_pass(W, X, X32, buf, radius=R)

    def pairs() -> Flippable:  # the certificate's pair counts AᵀA (and c) from the flippable entries
        f = Flippable(n, m)
        f.add(0, m, flat)
        return f

    flip = pairs()
    AA, cnt = flip.gram(), flip.counts
    SS = S @ S.T
    Gs = gram_of_rows(X / np.sqrt(m))
    E = np.empty((n, n))
    G2 = np.empty_like(Gs)

    def form():  # on a fresh copy of X Xᵀ/m (the copy is not timed)
        G2[...] = Gs
        t0 = time.thread_time()
        bound_former(G2, SS, AA, cnt, E, slice(0, n))()
        return time.thread_time() - t0

    steps = [("bare", lambda: cpu_once(lambda: S @ S.T)),
             ("gram", lambda: cpu_once(lambda: gram_matrix(X, W))),
             ("cert", lambda: cpu_once(lambda: certificate_matrices(X, W, R, 256))),
             ("sign0", lambda: cpu_once(lambda: sign_pass(W, X, X32, buf))),
             ("signR", lambda: cpu_once(lambda: sign_pass(W, X, X32, buf, radius=R))),
             ("product", lambda: cpu_once(lambda: np.matmul(W32, X32.T, out=buf))),
             ("pairs", lambda: cpu_once(lambda: pairs().gram())),
             ("form", form)]
    t, speed = [], []
    for _ in range(7):
        two = settled_block(lambda: S @ S.T, 3)  # wall time on the BLAS threads numpy has
        with threadpool_limits(1):  # everything then runs on the calling thread
            t.append([min(f() for _ in range(3)) for _, f in steps])
        speed.append(t[-1][0] / two)
    t = np.array(t)
    speed_up = Ratio(np.array(speed))
    r = dict(zip([k for k, _ in steps], ratios(t)[1]))
    print(f"one thread, CPU time in units of the bare product's ({np.median(t[:, 0]) * 1e3:.1f} ms):")
    print(f"  gram_matrix {r['gram']:.2f}: sign pass {float(r['sign0']):.2f} (its float32 W Xᵀ alone "
          f"{float(r['product']):.2f}), the rest the count product, X Xᵀ and H = G ∘ C")
    print(f"  certificate {r['cert']:.2f} = {float(r['cert']) / float(r['gram']):.2f} gram_matrix: sign pass with "
          f"the R band {float(r['signR']):.2f}, pair counts AᵀA {float(r['pairs']):.2f}, "
          f"E and H(W(0)) formed {float(r['form']):.2f}")
    half = float(speed_up) / 2
    print(f"  two threads: the bare product runs {speed_up:.2f} times as fast as on one; a pass whose work "
          f"split perfectly over two threads would take {float(r['gram']) * half:.2f} (gram_matrix) and "
          f"{float(r['cert']) * half:.2f} (certificate) of it at best")


if __name__ == "__main__":
    main()
