"""The NTK model's Gram matrix, computed chunk by chunk over neurons.

H_ij(W) = (x_i·x_j)/m · Σ_k 1{w_k·x_i ≥ 0} 1{w_k·x_j ≥ 0},  i.e.
H = (X Xᵀ) ∘ (Sᵀ S)/m with S = 1{W Xᵀ ≥ 0} (m × n).

Sᵀ S is a matrix of integer counts: it is formed in float32, which is exact for
0/1 products up to 2^24 terms, one neuron chunk at a time (chunks never exceed
2^24 neurons) and accumulated in float32 while the total stays below 2^24, in
float64 (exact to 2^53) beyond. Memory is bounded by the working-memory budget,
not by m (as in scikit-learn's ``pairwise_distances_chunked``).

Speed. The signs come from a float32 product W Xᵀ whose entries too close to 0
to be sure of are recomputed in float64 (:func:`sign_pass`). When BLAS may use
several threads, the work is split by hand instead of leaving it to BLAS: the
elementwise passes are split over neurons, and the count product Sᵀ S over
blocks of inputs (a symmetric product per diagonal block, a general one per
off-diagonal block), each task a single-threaded BLAS call on its own core.
OpenBLAS parallelises a symmetric rank-k update poorly, so this beats one
threaded ``S.T @ S`` (benchmarks/bench_gram.py measures both). Counts are exact integers, so
the result does not depend on the split: the same numbers for any number of
threads, chunk size or worker count.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import backend as _backend
from ..memory import DEFAULT_WORKING_MEMORY_MB, MAX_EXACT_F32, cache_rows, chunk_rows, neuron_slices
from ..parallel import one_blas_thread, row_blocks, run_tasks, single_blas, work_threads

#: a sign pass recomputes the entries near its thresholds in float64 one by one; above this
#: fraction of a block of rows it computes the whole block in float64 instead
_DENSE_FRACTION = 0.02


# ---------------------------------------------------------------------------- signs

_U32 = float(np.finfo(np.float32).eps) / 2
_U64 = float(np.finfo(np.float64).eps) / 2


def float32_error_bound(Wc: np.ndarray, X: np.ndarray, wmax: float | None = None,
                        xmax: float | None = None) -> np.float32:
    """A bound on |P₃₂ − P₆₄| for P = W Xᵀ formed from float32 copies: rounding of both
    factors and of a sum of d products is at most (d + 2)·u₃₂·‖w_k‖·‖x_i‖ (Cauchy–Schwarz),
    plus what float32's gradual underflow loses (at most 2^-150 per factor entry and per
    product: (√d (‖w_k‖ + ‖x_i‖) + d)·2^-150), doubled for safety. It assumes no float32
    overflow: callers pass rows scaled into [½, 1) by :func:`unit_rows` (or refuse others).
    ``wmax``, ``xmax``: the largest row norms of Wc and X if the caller has them
    (:func:`_safe_norm`: the same numbers), else formed here."""
    d = X.shape[1]
    if wmax is None:
        wmax = _max_norm(Wc)
    if xmax is None:
        xmax = _max_norm(X)
    return np.float32(2 * ((d + 2) * _U32 * wmax * xmax + (np.sqrt(d) * (wmax + xmax) + d) * 2.0**-150))


#: rows whose largest |entry| lies outside [2^-SAFE_EXPONENT, 2^SAFE_EXPONENT] are outside what
#: the float32 sign pass handles as they are (float32 overflows above 2^128, loses relative
#: precision below 2^-126, and a product of two such rows must stay inside both ranges)
SAFE_EXPONENT = 60


def _row_top(A: np.ndarray) -> np.ndarray:
    """max_j |A_kj| per row (NaN where a row has one), without an m × d temporary: |A| as a new
    array costs its page faults (~2.5 ms for W of 4096 × 100 inside gram_matrix, where the
    allocator hands out fresh pages) against ~0.4 ms for the two reductions."""
    if A.size == 0:
        return np.zeros(A.shape[0])
    return np.maximum(A.max(axis=1), -A.min(axis=1))


def _max_norm(A: np.ndarray) -> float:
    """The largest row norm of A (0 for no entries)."""
    return float(np.sqrt(np.einsum("ij,ij->i", A, A).max())) if A.size else 0.0


def _safe_norm(A: np.ndarray) -> float | None:
    """The largest row norm of A (:func:`_max_norm`'s number) when every row of A is shown
    zero or with max |entry| in [2^-SAFE_EXPONENT, 2^SAFE_EXPONENT] and finite entries, else
    None (not shown: the caller checks row by row). One whole-array reduction, the row norms:
    every |entry| is at most its row's norm, so a largest norm ≤ 2^SAFE_EXPONENT shows the upper
    end (NaN and ±∞, or squares that overflow, fail it), and a row's max |entry| is at least
    its norm over √d, so only rows whose squared norm is below twice d·2^(−2·SAFE_EXPONENT) (the
    2 covers the sum's rounding) are looked at entry by entry. Reductions along rows of a few
    entries cost ~10 ns an entry in numpy (0.1 s for W of 2^20 × 10); this costs ~2, and the
    sign pass's error bound reuses the norm."""
    if A.size == 0:
        return 0.0
    sq = np.einsum("ij,ij->i", A, A)
    top = float(sq.max())
    if not top <= 2.0 ** (2 * SAFE_EXPONENT):
        return None
    small = sq < 2.0 * A.shape[1] * 2.0 ** (-2 * SAFE_EXPONENT)
    if np.count_nonzero(small):
        low = _row_top(A[small])
        if not np.all((low == 0) | (low >= 2.0**-SAFE_EXPONENT)):
            return None
    return float(np.sqrt(top))


def unit_rows(A: np.ndarray, what: str = "unit_rows") -> np.ndarray:
    """A with every nonzero row scaled by a power of two into max |entry| ∈ [½, 1). Scaling by
    a power of two is exact in float64 and does not change the sign of any product w·x (nor
    any comparison of it with 0), so signs may be computed from the scaled rows; zero rows stay
    zero (their products are 0, sign 1{0 ≥ 0} = 1). Returns A itself when every row is already
    in the safe range, a scaled copy otherwise. Refuses (ValueError, naming ``what``) rows with
    a NaN or an infinite entry: a NaN has no sign, so a count built on it would be silently wrong
    (the row maxima say it: max and min propagate NaN and ±∞)."""
    return _unit_rows(A, what)[0]


def _unit_rows(A: np.ndarray, what: str) -> tuple[np.ndarray, float | None]:
    """:func:`unit_rows`, and the largest row norm of what it returns when the rows were
    shown safe as they were (:func:`_safe_norm`), else None."""
    norm = _safe_norm(A)
    if norm is not None:
        return A, norm
    top = _row_top(A)
    if not np.all(np.isfinite(top)):
        raise ValueError(f"{what} needs finite X and W")
    _, e = np.frexp(top)  # (a row is zero or scaled into [½, 1): safe, whatever _safe_norm showed)
    return np.ldexp(A, -e[:, None]), None


def require_safe_rows(A: np.ndarray, what: str) -> None:
    """Refuse (ValueError) rows outside the range the float32 sign pass handles unscaled: paths
    that compare w·x with a radius cannot rescale rows without rescaling the radius."""
    if _safe_norm(A) is not None:
        return
    top = _row_top(A)
    bad = (top != 0) & ((top < 2.0**-SAFE_EXPONENT) | (top > 2.0**SAFE_EXPONENT) | ~np.isfinite(top))
    if bad.any():
        raise ValueError(f"{what} row {int(np.argmax(bad))} has entries of size {top[bad][0]:.3g}, outside "
                         f"[2^-{SAFE_EXPONENT}, 2^{SAFE_EXPONENT}]; scale the rows first")


def exact_entries(Wc: np.ndarray, X: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """The values of the flat entries ``idx`` of W Xᵀ as float64 (one dot product each in the
    factors' precision: exact float64 values for float64 factors; gathered in blocks of about
    512 KiB per factor, so that the gathered rows of both factors are still in cache when their
    dot products are taken, and memory stays bounded however many entries are asked for)."""
    out = np.empty(idx.size)
    step = int(min(1 << 16, max(64, (1 << 19) // max(1, Wc.shape[1] * np.result_type(Wc, X).itemsize))))
    for a in range(0, idx.size, step):
        k, i = np.divmod(idx[a:a + step], n)
        out[a:a + step] = np.einsum("ij,ij->i", Wc[k], X[i])
    return out


#: rows of a block of the sign pass: each block's float32 product (about this many bytes) and
#: its masks stay in the core's cache while the elementwise steps run over them; smaller
#: blocks only add calls (and, on several threads, hand-overs of the GIL).
BLOCK_BYTES = 2 << 20


def block_rows(n: int) -> int:
    return cache_rows(n, 4, BLOCK_BYTES)


def _blocks(rows: int, n: int) -> np.ndarray:
    """The boundaries of the blocks of a sign pass over ``rows`` rows (0 first, ``rows`` last):
    none longer than :func:`block_rows`, their lengths within one row of each other and, when
    there are several, an even number of them, so that two threads (which take whole blocks)
    get equal shares: 4096 rows of n = 200 went as blocks of 2621 and 1475, one per thread,
    and the pass took 0.64 of one thread's time instead of 0.5. They depend on ``rows`` and n
    alone, not on the number of threads: a block goes to float64 or not by its own entries,
    so the numbers returned stay the same for any number of threads."""
    k = -(-rows // block_rows(n)) if rows else 1
    k += k % 2 if k > 1 else 0
    return np.arange(k + 1) * rows // k


def _sign_rows(Wc: np.ndarray, X: np.ndarray, X32: np.ndarray, out: np.ndarray,
               radius: float, tau: np.float32, exact_values: bool,
               bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sign_pass` on one thread, in the blocks of rows between ``bounds`` (:func:`_blocks`,
    counted from the first of these rows): every elementwise step of a block
    runs while its product is in cache (over the whole array each mask would be a pass over
    memory); the entries float32 cannot decide are recomputed together at the end (one call of
    :func:`exact_entries`, not one per block)."""
    rows, n = out.shape
    W32 = Wc.astype(np.float32)
    masks = np.empty((2, int(np.diff(bounds).max(initial=0)), n), dtype=bool)
    flats, vals, decided = [], [], []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        f, v, done = _sign_block(Wc[a:b], W32[a:b], X, X32, out[a:b], radius, tau, exact_values, masks[:, : b - a])
        flats.append(f + a * n)
        vals.append(v)
        decided.append(np.full(f.size, done))
    if not flats:
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    cand, pv, done = (x[0] if len(x) == 1 else np.concatenate(x) for x in (flats, vals, decided))
    # float32 decides an entry unless it lies within tau of 0 (its sign) or of ±radius (|p| ≤ radius)
    if exact_values:
        unsure = ~done
    else:
        unsure = (pv <= tau) | (pv >= np.float32(radius) - tau)
        unsure &= ~done
    exact = exact_entries(Wc, X, cand[unsure], n)
    out.ravel()[cand[unsure]] = exact >= 0
    pv[unsure] = np.abs(exact)
    inside = pv <= radius  # decided entries: their values are those of the float64 product
    inside[~(done | unsure)] = True  # the float32 values strictly inside the band
    return cand[inside], pv[inside]


def _sign_block(Wc: np.ndarray, W32: np.ndarray, X: np.ndarray, X32: np.ndarray, out: np.ndarray,
                radius: float, tau: np.float32, exact_values: bool,
                masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """One block of :func:`_sign_rows`: S into ``out`` and the candidate entries (flat indices
    into the block) with their |w·x|, and whether these are final (float64 values, signs
    settled: the wide-band case) or float32 values still to be checked."""
    np.matmul(W32, X32.T, out=out)
    bound = np.nextafter(np.float32(radius) + tau, np.float32(np.inf))  # ≥ radius + tau
    mask, other = masks
    np.less_equal(out, bound, out=mask)
    np.greater_equal(out, -bound, out=other)
    mask &= other
    if radius > 0 and not exact_values and np.count_nonzero(mask) > _DENSE_FRACTION * out.size:
        P = Wc @ X.T  # a wide band: the whole block in float64 is cheaper
        np.greater_equal(P, 0, out=out, casting="unsafe")
        np.abs(P, out=P)
        # entries within float64 rounding of 0 or of radius take the values exact_entries
        # gives, as everywhere else (a GEMM and a dot product may differ in the last bit)
        eps = float(tau) * _U64 / _U32
        cand = np.flatnonzero(P <= radius + eps)
        pv = P.ravel()[cand]
        del P
        edge = (pv <= eps) | (pv >= radius - eps)
        exact = exact_entries(Wc, X, cand[edge], out.shape[1])
        out.ravel()[cand[edge]] = exact >= 0
        pv[edge] = np.abs(exact)
        inside = pv <= radius
        return cand[inside], pv[inside], True
    cand = np.flatnonzero(mask)
    pv = np.abs(out.ravel()[cand]).astype(np.float64)
    np.greater_equal(out, 0, out=out, casting="unsafe")
    return cand, pv, False


def sign_pass(Wc: np.ndarray, X: np.ndarray, X32: np.ndarray, out: np.ndarray,
              radius: float = 0.0, threads: int = 1, values: bool = False, exact_values: bool = False,
              tau: np.float32 | None = None):
    """Write S = 1{W Xᵀ ≥ 0} into ``out`` (float32, chunk × n), with the signs of the float64
    product W Xᵀ, and return the flat indices (into ``out``) of the entries with
    |w_k·x_i| ≤ ``radius`` (by the float64 product too), in increasing order; with ``values``
    also their |w_k·x_i| (float64 where it was computed, else float32, within
    :func:`float32_error_bound` of the float64 value; with ``exact_values`` all of them the
    float64 values of :func:`exact_entries`).

    The product is formed in float32 (half the memory traffic of float64). An entry farther
    than :func:`float32_error_bound` (tau) from 0 has the same sign in both precisions, and one
    farther than tau from ±radius is on the same side of it; the few others (a handful per
    million, plus those near ±radius) are recomputed in float64. The rows go in blocks of about
    2 MiB of product each (kept in cache); if more than 2% of a block lies within radius + tau,
    the block is computed in float64 instead. With ``threads`` > 1 the blocks are split over
    that many threads (each BLAS call single-threaded), which changes no number returned.
    ``tau``: float32_error_bound(Wc, X) if the caller has formed it.
    """
    if tau is None:
        tau = float32_error_bound(Wc, X)
    rows, n = out.shape
    bounds = _blocks(rows, n)
    if threads <= 1 or bounds.size <= 2:
        flat, vals = _sign_rows(Wc, X, X32, out, radius, tau, exact_values, bounds)
    else:
        # cut at block boundaries: every block is then computed as on one thread, so the values
        # returned (float32 or float64 by block) do not depend on the number of threads
        at = np.linspace(0, bounds.size - 1, threads + 1).astype(int)
        cuts = bounds[at]
        parts = run_tasks(threads, [(1.0, (lambda a=a, b=b, p=p, q=q: _sign_rows(
                                        Wc[a:b], X, X32, out[a:b], radius, tau, exact_values, bounds[p:q + 1] - a)))
                                    for a, b, p, q in zip(cuts[:-1], cuts[1:], at[:-1], at[1:])])
        flat = np.concatenate([p[0] + a * n for p, a in zip(parts, cuts[:-1])])
        vals = np.concatenate([p[1] for p in parts])
    return (flat, vals) if values or exact_values else flat


# ---------------------------------------------------------------------------- counts

class CountSum:
    """Σ over neuron chunks of Sᵀ S for 0/1 matrices S (chunk × n), exactly.

    Each chunk's product is float32 (exact: chunks hold at most 2^24 neurons), or torch's int8
    product where the :mod:`.backend` setting in force resolves to torch for this size; the
    running sum is float32 while ``m_total`` ≤ 2^24, float64 beyond.
    With ``threads`` > 1 the float32 product is split into blocks of inputs, one single-threaded
    BLAS call per block pair.
    """

    def __init__(self, n: int, m_total: int, threads: int = 1):
        self.n = n
        self.dtype = np.float32 if m_total <= MAX_EXACT_F32 else np.float64
        self.torch = _backend.resolve(_backend.current(), float(m_total) * n * n) == "torch"
        self.threads = threads if n >= 2 * threads and not self.torch else 1
        self.C: np.ndarray | None = None
        cuts = np.linspace(0, n, self.threads + 1).astype(int)
        self.blocks = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]

    def add(self, S: np.ndarray, extra: list[tuple[float, Callable[[], object]]] = ()) -> list:
        """Add Sᵀ S; run the ``extra`` (weight, task) pairs alongside; return their results."""
        first = self.C is None
        if first:
            self.C = np.empty((self.n, self.n), dtype=self.dtype)
        C = self.C
        if self.threads == 1:  # (always with torch: it threads its own product)
            results = [f() for _, f in extra]
            if self.torch:  # (int32 counts of one chunk, each ≤ 2^24: exact in float32 too)
                prod = _backend.torch_counts(S)
            elif first and self.dtype == np.float32:
                np.matmul(S.T, S, out=C)
                return results
            else:
                prod = S.T @ S
            if first:
                C[...] = prod
            else:
                C += prod
            return results

        def block(p: slice, q: slice) -> Callable[[], None]:
            def go() -> None:
                A, B = S[:, p], S[:, q]
                prod = A.T @ A if p == q else A.T @ B  # A.T @ A: a symmetric rank-k update
                if first:
                    C[p, q] = prod
                else:
                    C[p, q] += prod
            return go

        tasks = [((b.stop - b.start) * (q.stop - q.start) * (0.5 if i == j else 1.0), block(b, q))
                 for i, b in enumerate(self.blocks) for j, q in enumerate(self.blocks) if i <= j]
        return run_tasks(self.threads, tasks + list(extra))[len(tasks):]

    def total(self) -> np.ndarray:
        if self.C is None:
            return np.zeros((self.n, self.n), dtype=self.dtype)
        for i, p in enumerate(self.blocks):  # the lower blocks mirror the upper ones
            for q in self.blocks[i + 1:]:
                self.C[q, p] = self.C[p, q].T
        return self.C


def count_pass(X: np.ndarray, W: np.ndarray, working_memory_mb: float,
               extra: list[tuple[float, Callable[[], object]]] = (), radius: float = 0.0,
               on_chunk: Callable[[int, int, np.ndarray], None] | None = None,
               bytes_per_entry: int = 12, what: str = "count_pass",
               band: float = 0.0) -> tuple[np.ndarray, list, int, tuple[np.ndarray, np.ndarray] | None]:
    """The one pass over neuron chunks behind H and Lemma 2.3's certificate: exact signs
    (:func:`sign_pass`) and their count product Sᵀ S, with the ``extra`` (weight, task) pairs
    run alongside the first chunk's product. If ``on_chunk`` is given it receives
    (first neuron, rows, flat indices of the entries with |w·x| ≤ ``radius``) per chunk, as a
    task of one thread alongside that chunk's product.
    With ``band`` > ``radius`` the pass also gathers the entries with |w·x| ≤ ``band`` (flat
    indices k·n + i over all neurons, and their float64 values, as ``sign_pass`` gives them
    with ``exact_values``), from the same products: those ≤ ``radius`` among them, by their
    float64 values, are the ones ``on_chunk`` receives.
    ``what`` names the caller in the refusal of non-finite rows.
    Returns (Sᵀ S, the extra tasks' results, threads used, the band or None)."""
    n, m = X.shape[0], W.shape[0]
    wide = band > radius
    xmax = None
    if radius == 0 and not wide:  # only signs are needed: rows may be rescaled (exactly) into float32's range
        X, xmax = _unit_rows(X, what)
    else:
        require_safe_rows(X, "X")
        require_safe_rows(W, "W")
    X32 = X.astype(np.float32)
    chunk = max(1, min(m, chunk_rows(n, working_memory_mb, bytes_per_entry)))
    threads = work_threads(n, chunk)
    acc = CountSum(n, m, threads)
    buf = np.empty((chunk, n), dtype=np.float32)
    results = None
    flats, vals = [], []
    with single_blas(threads):
        for sl in neuron_slices(m, chunk):
            S = buf[: sl.stop - sl.start]
            Wc, wmax = _unit_rows(W[sl], what) if radius == 0 and not wide else (W[sl], None)
            tau = float32_error_bound(Wc, X, wmax, xmax)  # (with the row norms the check above formed)
            if wide:
                fb, vb = sign_pass(Wc, X, X32, S, radius=band, threads=threads, exact_values=True, tau=tau)
                flats.append(fb + sl.start * n)
                vals.append(vb)
                flat = fb[vb <= radius]
            else:
                flat = sign_pass(Wc, X, X32, S, radius=radius, threads=threads, tau=tau)
            first = list(extra if results is None else ())
            chunk_task = [] if on_chunk is None else [  # it reads only ``flat``, not S
                (S.size / 4, lambda start=sl.start, rows=S.shape[0], flat=flat: on_chunk(start, rows, flat))]
            r = acc.add(S, first + chunk_task)[: len(first)]
            results = r if results is None else results
        if results is None:  # no neurons
            results = [f() for _, f in extra]
        gathered = None
        if wide:
            gathered = (np.concatenate(flats), np.concatenate(vals)) if flats else (
                np.zeros(0, dtype=np.intp), np.zeros(0))
        return acc.total(), results, threads, gathered


def _as_inputs(X: np.ndarray, W: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    if X.ndim != 2 or W.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"{what} needs X (n×d) and W (m×d); got {X.shape} and {W.shape}")
    return X, W


def activation_counts(X: np.ndarray, W: np.ndarray,
                      working_memory_mb: float = DEFAULT_WORKING_MEMORY_MB,
                      dtype: type | None = np.float64) -> np.ndarray:
    """Sᵀ S = [#{k : w_k·x_i ≥ 0 and w_k·x_j ≥ 0}]_ij, exactly (float64 unless ``dtype``
    is None: then float32 when m ≤ 2^24, where float32 is exact)."""
    X, W = _as_inputs(X, W, "activation_counts")
    C = count_pass(X, W, working_memory_mb, what="activation_counts")[0]
    return C if dtype is None else C.astype(dtype, copy=False)


#: entries of G ∘ C below which one thread does it: handing rows to a second thread costs
#: ~0.2 ms, more than the whole product at n = 200 (0.02 ms); at n = 1000 two threads gain ~20%
HADAMARD_PARALLEL_MIN = 1 << 19


def hadamard(G: np.ndarray, C: np.ndarray, threads: int = 1) -> np.ndarray:
    """G ← G ∘ C in place (split over rows on ``threads`` threads when G has at least
    HADAMARD_PARALLEL_MIN entries; elementwise, so the numbers do not depend on the split)."""
    if G.size < HADAMARD_PARALLEL_MIN:
        threads = 1
    def rows(r: slice) -> Callable[[], None]:
        def go() -> None:
            np.multiply(G[r], C[r], out=G[r])
        return go

    run_tasks(threads, [(1.0, rows(r)) for r in row_blocks(G.shape[0], threads)])
    return G


def gram_matrix(X: np.ndarray, W: np.ndarray,
                working_memory_mb: float = DEFAULT_WORKING_MEMORY_MB) -> np.ndarray:
    """H(W) of the NTK model for inputs X (n × d) and first-layer weights W (m × d)."""
    X, W = _as_inputs(X, W, "gram_matrix")
    n, d = X.shape
    m = W.shape[0]
    if m == 0:
        raise ValueError("gram_matrix needs at least one neuron (W has no rows)")
    Xs = X / np.sqrt(m)  # the 1/m is folded into the inputs, saving a pass over the n × n result

    def inputs_gram() -> np.ndarray:
        with np.errstate(over="ignore", under="ignore"):  # (refused below, in one sentence, not warned)
            return gram_of_rows(Xs)

    C, (G,), threads, _ = count_pass(X, W, working_memory_mb, extra=[(n * d / 2, inputs_gram)], what="gram_matrix")
    diag = np.diag(G)
    if not np.all(np.isfinite(diag)) or np.any((diag == 0) & np.any(X != 0, axis=1)):
        raise ValueError("gram_matrix: X Xᵀ/m overflows or underflows float64 for these inputs; "
                         "scale X (H scales with the square of its rows)")
    return hadamard(G, C, threads)


def gram_of_rows(X: np.ndarray) -> np.ndarray:
    """X Xᵀ with single-threaded BLAS: a threaded symmetric product can round differently
    (seen at n = 300, d = 10), and H must not depend on how many threads ran."""
    with one_blas_thread():
        return X @ X.T


@dataclass(frozen=True)
class InputGrams:
    """What Lemma 2.3's passes derive from the inputs alone, for m neurons: G = X Xᵀ, Gs = X Xᵀ/m
    as :func:`gram_matrix` forms it (1/m folded into the inputs: H(W) = Gs ∘ SᵀS) and the row
    sums g_i = Σ_j |x_i·x_j|. Every trial of a run has the same X and m, so a run forms them once
    (:meth:`of`) for the band guess, the critical radii and the attack; each of those forms them
    itself, the same numbers, when not given them. Read-only: they are shared."""

    m: int
    G: np.ndarray
    Gs: np.ndarray
    g: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, m: int) -> "InputGrams":
        G = gram_of_rows(X)
        out = cls(m, G, gram_of_rows(X / np.sqrt(m)), np.abs(G).sum(axis=1))
        for a in (out.G, out.Gs, out.g):
            a.setflags(write=False)
        return out

    @classmethod
    def given(cls, grams: "InputGrams | None", X: np.ndarray, m: int) -> "InputGrams":
        """``grams`` if given (checked against X's size and m), else formed here."""
        if grams is None:
            return cls.of(X, m)
        if grams.m != m or grams.G.shape != (X.shape[0],) * 2:
            raise ValueError(f"InputGrams for m = {grams.m} and n = {grams.G.shape[0]} given with m = {m}, "
                             f"n = {X.shape[0]}")
        return grams
