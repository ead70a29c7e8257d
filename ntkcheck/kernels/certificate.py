"""Lemma 2.3's certified bound: sup over the ball of ‖H(W) − H(W(0))‖₂ is at most λ_max(E).

For W(0) and radius R, the ball is {W : ‖w_k − w_k(0)‖₂ ≤ R for all k}. A sign
1{w_k·x_i ≥ 0} can change inside the ball only if |w_k(0)·x_i| ≤ R‖x_i‖: event A_ik.
Hence |ΔH_ij| ≤ E_ij = |x_i·x_j| (c_i + c_j − (AᵀA)_ij)/m with c_i = Σ_k A_ik, and since
E ≥ 0 entrywise, ‖ΔH‖₂ ≤ ‖|ΔH|‖₂ ≤ λ_max(E); λ_min(H(W)) ≥ λ_min(H(W(0))) − λ_max(E) by
Weyl. :func:`critical_radii` finds, per trial, the largest R a threshold still certifies.
All passes go over neurons in chunks, so memory does not grow with m.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..memory import cache_rows, chunk_rows, neuron_slices
from ..parallel import row_blocks, run_tasks, single_blas, work_threads
from .arccos import eigenvalue_tolerance
from .eig import eigenvalue_at
from .flippable import Flippable
from .gram import InputGrams, count_pass, gram_of_rows, require_safe_rows, sign_pass

_EPS = np.finfo(np.float64).eps


@dataclass
class Certificate:
    H0: np.ndarray  # H(W(0))
    E: np.ndarray  # entrywise bound on |ΔH| over the ball
    lam_max_E: float  # certified sup ‖ΔH‖₂
    lam_min_H0: float
    v_min_H0: np.ndarray
    v_perron: np.ndarray
    counts: np.ndarray  # c_i, number of flippable signs per input
    SS: np.ndarray  # Sᵀ S of W(0): activation counts (float32 up to 2^24 neurons: exact)
    active: np.ndarray  # neurons with at least one flippable sign (the only ones a move can change)
    tol: float  # floating-point allowance on eigenvalues of these n×n matrices
    #: with certify's ``band``: (band, flat indices k·n + i, float64 |w·x|) of the entries
    #: |w·x| ≤ band, for :func:`critical_radii`
    band: tuple[float, np.ndarray, np.ndarray] | None = None


def require_unit_rows(X: np.ndarray, what: str) -> None:
    """The certificate counts the signs with |w·x_i| ≤ R as flippable, which is the ball's
    reach only for ‖x_i‖ = 1 (a push of length R moves w·x_i by up to R‖x_i‖); Lemma 2.3 is
    stated for unit inputs, and other inputs are refused rather than under-counted."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    if X.size and not np.all(np.abs(norms - 1.0) <= 1e-12):
        raise ValueError(f"{what}: the rows of X must have unit norm (Lemma 2.3's setting; a row has "
                         f"norm {float(norms[np.argmax(np.abs(norms - 1.0))]):.6g}); normalise them first")


def require_radius(R: float, what: str) -> None:
    """A radius is a finite number ≥ 0: a NaN radius compared false with every |w·x| and gave
    the certificate of R = 0, silently."""
    if not (math.isfinite(R) and R >= 0):
        raise ValueError(f"{what} needs a finite radius R ≥ 0 (got {R!r})")


def certify(X: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float, band: float = 0.0) -> Certificate:
    """H(W(0)), the certified bound E for radius R (one pass over neurons, see
    :func:`certificate_matrices`), and their extreme eigenpairs. With ``band`` > R the same
    pass also gathers the entries |w·x| ≤ band with their float64 values (``Certificate.band``),
    which :func:`critical_radii` can search instead of a pass of its own."""
    require_radius(R, "certify")
    H0, E, cnt, SS, active, gathered = certificate_matrices(X, W0, R, working_memory_mb, band)
    # only the extreme eigenpairs are needed (LAPACK's syevr on an index range)
    lam_min_H0, v_min_H0 = eigenvalue_at(H0, 0, vector=True)
    lam_max_E, v_top_E = eigenvalue_at(E, -1, vector=True)  # as critical_radii computes it, bit for bit
    return Certificate(H0=H0, E=E, lam_max_E=lam_max_E, lam_min_H0=lam_min_H0,
                       v_min_H0=v_min_H0, v_perron=np.abs(v_top_E), counts=cnt, SS=SS,
                       active=active, tol=eigenvalue_tolerance(H0, E),
                       band=None if gathered is None else (band, *gathered))


def certificate_matrices(X: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float, band: float = 0.0):
    """One pass over neurons: (H(W(0)), E, c, SᵀS, active neurons, the entries ≤ ``band`` as
    :func:`ntkcheck.kernels.gram.count_pass` gathers them, or None) for radius R.

    The pass is the Gram-matrix pass of :mod:`ntkcheck.kernels.gram` (float32 products with exact
    signs, threaded count products); :func:`ntkcheck.kernels.gram.sign_pass` also returns the
    flippable entries |w·x| ≤ R (exactly, float64 where float32 cannot tell), so A costs no
    extra product, and AᵀA is a sparse product while A is sparse.
    """
    require_unit_rows(X, "certify")
    n, m = X.shape[0], W0.shape[0]
    flip = Flippable(n, m)
    Xs = X / np.sqrt(m)  # 1/m folded into the inputs as gram_matrix folds it: H0 is gram_matrix(X, W0)
    # work arrays: float32 S, its bool mask, float64 P if the band is wide, A, index lists
    SS, (Gs,), threads, gathered = count_pass(X, W0, working_memory_mb, radius=R, on_chunk=flip.add,
                                              bytes_per_entry=40, band=band,
                                              extra=[(n * X.shape[1] / 2, lambda: gram_of_rows(Xs))])
    AA, cnt = flip.gram(), flip.counts
    E = np.empty((n, n))
    run_tasks(threads, [(1.0, bound_former(Gs, SS, AA, cnt, E, r)) for r in row_blocks(n, threads)])
    active = np.concatenate(flip.active) if flip.active else np.zeros(0, dtype=np.int64)
    return Gs, E, cnt, SS, active, gathered  # Gs now holds H0


def bound_former(Gs: np.ndarray, SS: np.ndarray, AA: np.ndarray, c: np.ndarray, E: np.ndarray,
            rows: slice) -> Callable[[], None]:
    """A task forming, on the rows ``rows``, E = |Gs| ∘ (c_i + c_j − AᵀA) and then H0 = Gs ∘ SᵀS in
    place of Gs = X Xᵀ/m, in sub-blocks of about 1 MiB per matrix, so that the three inputs of
    each elementwise step are still in cache (a whole-matrix pass reads each from memory once per
    step). :func:`critical_radii` forms E the same way (:func:`_bound_rows`)."""
    def go() -> None:
        step = cache_rows(E.shape[1], 8, 1 << 20)
        absG = np.empty((min(step, rows.stop - rows.start), E.shape[1]))
        for a in range(rows.start, rows.stop, step):
            r = slice(a, min(rows.stop, a + step))
            _bound_rows(np.abs(Gs[r], out=absG[: r.stop - r.start]), c[r], c, AA[r], E[r])
            Gs[r] *= SS[r]
    return go


def _bound_rows(absG_rows: np.ndarray, c_rows: np.ndarray, c: np.ndarray, AA_rows, out: np.ndarray) -> None:
    """Rows of E = |x_i·x_j|/m · (c_i + c_j − (AᵀA)_ij) into ``out``, from the rows of
    |Gs| = |X Xᵀ|/m (one rounding per entry: the count is an exact integer)."""
    np.add(c_rows[:, None], c[None, :], out=out)
    out -= AA_rows
    out *= absG_rows


#: below this density of the pairs asked for, their dot products are gathered one by one;
#: above it, one dense float32 product and a gather are cheaper: gathering costs d flops per
#: pair without BLAS, the dense product m·n·d flops at BLAS speed, and the two meet near 1%


#: inputs over which the critical radius takes its first cap
_CAP_INPUTS = 8
#: power steps the critical radius tries before its eigensolver (one n × n product each)
_POWER_STEPS = 40
#: how far the first band's guess overshoots the edge it estimates (see band_guess)
_GUESS = 4.0


def critical_radius(X: np.ndarray, W0: np.ndarray, threshold: float, tol: float,
                    working_memory_mb: float) -> float:
    """sup{R : λ_max(E(R)) < threshold − tol}: the largest radius still certified (see
    :func:`critical_radii`)."""
    return critical_radii(X, W0, [threshold], tol, working_memory_mb)[0]


def critical_radii(X: np.ndarray, W0: np.ndarray, thresholds: list[float], tol: float,
                   working_memory_mb: float,
                   band: tuple[float, np.ndarray, np.ndarray] | None = None,
                   grams: InputGrams | None = None) -> list[float]:
    """sup{R : λ_max(E(R)) < t − tol} for each threshold t, from one pass over the neurons.

    λ_max(E(R)) is a nondecreasing step function of R that jumps only at the values
    |w_k(0)·x_i|, so a binary search over the sorted values of the entries up to the edge gives
    the exact supremum (:func:`_critical_from`). Two cheap lower bounds on λ_max(E), each a
    function of the counts c_i(R) = #{k : |w_k(0)·x_i| ≤ R}, say where the certificate is
    certainly lost: λ_max(E) ≥ E_ii = c_i/m, and, with the unit vector 1/√n,
    λ_max(E) ≥ (1/n) Σ_ij E_ij ≥ (1/(n m)) Σ_i g_i c_i with g_i = Σ_j |x_i·x_j|
    (because c_i + c_j − (AᵀA)_ij ≥ c_i). The first gives a cap (:func:`_caps`), the second
    lets each search sort only the entries it can reach: a prefix of L sorted entries has
    Σ g ≥ L·min(g), so the first ⌈n·m·target/min(g)⌉ + 1 suffice (a partition, not a full sort).

    The caps are loose (for Gaussian W(0) and n = 200 the edges lie ~100× below them, and the
    band up to them held 5.4M entries where ~50k matter), so the entries are first taken only
    up to a guess (:func:`band_guess`), or from ``band`` = (radius, flat indices k·n + i,
    float64 values) of the entries up to a radius that a pass already gathered
    (:func:`certify` with ``band``). A guess is never trusted: a threshold's search is exact
    within a band once its certificate is lost inside the band (its first failing entry is then
    in it), and a search whose certificate still holds with the whole band is done again over
    the entries up to its cap. Memory stays within the chunk budget plus the band, whatever m is.
    ``grams``: X's Gram matrices for m = len(W0) if a run formed them (:class:`InputGrams`).
    """
    require_unit_rows(X, "critical_radii")
    if not (all(math.isfinite(t) for t in thresholds) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"critical_radii needs finite thresholds and a finite tol ≥ 0 (got {thresholds!r}, {tol!r})")
    n = X.shape[0]
    m = W0.shape[0]
    require_safe_rows(X, "X")
    require_safe_rows(W0, "W0")
    targets = [t - tol for t in thresholds]
    out: list[float | None] = [0.0 if t <= 0 else None for t in targets]
    todo = [j for j, r in enumerate(out) if r is None]
    if not todo:
        return out
    grams = InputGrams.given(grams, X, m)
    g = grams.g
    absGs = np.abs(grams.Gs)  # |X Xᵀ|/m as certificate_matrices forms it, for E
    chunk = chunk_rows(n, working_memory_mb, bytes_per_entry=24)
    max_pairs = int(working_memory_mb * 2**20 // _PAIR_BYTES)
    if band is None:
        radius = _guess(X, W0, max(targets[j] for j in todo), float(g.mean()))
        band = (radius, *_band(X, W0, radius, n, chunk))
    radius, flat, vals = band
    for j in todo:
        out[j] = _critical_from(flat, vals, np.inf, targets[j], absGs, g, n, m, max_pairs, complete=False)
    todo = [j for j, r in enumerate(out) if r is None]
    if todo:  # the band fell short: every entry up to the caps
        caps = dict(zip(todo, _caps(X, W0, [targets[j] for j in todo])))
        top = max(caps.values())
        if top > radius:
            flat, vals = _band(X, W0, top, n, chunk)
        for j in todo:
            out[j] = _critical_from(flat, vals, caps[j], targets[j], absGs, g, n, m, max_pairs)
    return out


def band_guess(X: np.ndarray, W0: np.ndarray, targets: list[float], grams: InputGrams | None = None) -> float:
    """A radius below which the edges of :func:`critical_radii` for these targets (thresholds
    less tol) likely lie, about ``_GUESS``-fold: λ_max(E) ≈ 2λ_max(|G|)·c/m for c flippable
    signs per input, and mean(g) ≤ λ_max(|G|), so c = _GUESS·t·m/(2 mean(g)) overshoots the
    edge's c; the radius where one input (of largest norm) has that many |w·x| below it.
    One matrix-vector product over the neurons. 0 if no target is positive. ``grams``: as in
    :func:`critical_radii`."""
    t = max(targets, default=0.0)
    return _guess(X, W0, t, float(InputGrams.given(grams, X, W0.shape[0]).g.mean())) if t > 0 else 0.0


def _guess(X: np.ndarray, W0: np.ndarray, t: float, gmean: float) -> float:
    """:func:`band_guess` for the largest target t > 0, given mean(g). It takes at most ⌈t·m⌉
    signs of its input, where that input's diagonal bound E_jj ≥ c_j/m already reaches t (the
    certificate is lost there): with inputs far from each other (mean(g) near 1) the guess
    would otherwise take up to twice as many, half of all entries at t = 1/4."""
    m = W0.shape[0]
    k = min(math.ceil(_GUESS * t * m / (2 * gmean)) if gmean > 0 else m + 1, math.ceil(t * m))
    if k > m:
        return np.inf
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    j = int(np.argmax(norms))
    p = np.abs(W0 @ X[j])
    return float(np.partition(p, k - 1)[k - 1])


def _caps(X: np.ndarray, W0: np.ndarray, targets: list[float]) -> list[float]:
    """Per target t > 0, an upper bound on the edge from the diagonal bound: min over i of the
    ⌈t·m⌉-th smallest |w·x_i| (∞ if t·m > m). An upper bound on it suffices (it only admits
    more entries; the searches use the exact values), so it is taken over a few inputs only,
    those of largest norm (in distribution the smallest quantiles; unit inputs differ only by
    sampling noise): one matrix-vector product over the neurons each, raised by its float64
    rounding bound."""
    m = W0.shape[0]
    k_caps = [math.ceil(t * m) for t in targets]
    need = sorted({k for k in k_caps if k <= m})
    best = dict.fromkeys(need, np.inf)
    if need:
        norms = np.sqrt(np.einsum("ij,ij->i", X, X))
        wmax = float(np.sqrt(np.einsum("ij,ij->i", W0, W0).max()))
        p = np.empty(m)  # (one buffer for every input, partitioned in place: no copies of m numbers)
        for j in np.argsort(-norms, kind="stable")[:_CAP_INPUTS]:
            np.matmul(W0, X[j], out=p)
            np.abs(p, out=p)
            p.partition([k - 1 for k in need])
            slack = 4 * (X.shape[1] + 2) * _EPS * wmax * float(norms[j])
            for k in need:
                best[k] = min(best[k], float(p[k - 1]) + slack)
    return [best[k] if k <= m else np.inf for k in k_caps]


def _band(X: np.ndarray, W0: np.ndarray, radius: float, n: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """The entries |w·x| ≤ ``radius`` over all neurons (flat indices k·n + i) with their float64
    values, from the sign pass (threaded as the certificate's: the numbers do not depend on it)."""
    m = W0.shape[0]
    X32 = X.astype(np.float32)
    flats, vals = [], []
    buf = np.empty((min(m, chunk), n), dtype=np.float32)
    threads = work_threads(n, chunk)
    with single_blas(threads):
        for sl in neuron_slices(m, chunk):
            near, v = sign_pass(W0[sl], X, X32, buf[: sl.stop - sl.start], radius=radius, threads=threads,
                                exact_values=True)
            flats.append(near + sl.start * n)
            vals.append(v)
    return np.concatenate(flats), np.concatenate(vals)


#: bytes per same-neuron pair of flippable entries in :class:`_PairCounts` (four int64 arrays
#: while they are formed and sorted)
_PAIR_BYTES = 40


class _PairCounts:
    """(AᵀA)_ij for every prefix of a list of flippable entries (neuron k_e, input i_e) sorted
    by value, without forming A: (AᵀA)_ij counts the neurons with both (k, i) and (k, j) in
    the prefix, i.e. the pairs (e, f) of entries of one neuron (e = f included: the diagonal
    c_i) whose later member is inside it. Each pair is listed once with its admission
    position max(e, f); a prefix of ``upto`` entries is a bincount over the pairs admitted
    before ``upto``. There are Σ_k s_k² pairs for s_k entries of neuron k; they are counted
    before they are formed."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n: int, max_pairs: int):
        """The pairs, unless there are more than ``max_pairs`` (then ``ok`` is False)."""
        self.n = n
        by = np.argsort(rows, kind="stable")  # entry positions grouped by neuron
        r = rows[by]
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]]) if r.size else np.zeros(0, dtype=np.int64)
        sizes = np.diff(np.r_[starts, r.size])
        self.ok = int((sizes.astype(np.int64) ** 2).sum()) <= max_pairs
        if not self.ok:
            return
        each = np.repeat(sizes, sizes)  # per grouped entry: its neuron's number of entries
        first = np.repeat(starts, sizes)  # and where that neuron's group starts
        left = np.repeat(np.arange(r.size), each)
        right = np.repeat(first, each) + (np.arange(left.size) - np.repeat(np.cumsum(each) - each, each))
        admit = np.maximum(by[left], by[right])
        order = np.argsort(admit, kind="stable")
        self.admit = admit[order]
        self.row, self.col = cols[by[left]][order], cols[by[right]][order]  # (i, j) of each pair

    def gram(self, upto: int) -> np.ndarray:
        """AᵀA (float64, exact integers) for the first ``upto`` entries."""
        p = np.searchsorted(self.admit, upto)
        key = self.row[:p] * self.n + self.col[:p]
        return np.bincount(key, minlength=self.n * self.n).reshape(self.n, self.n).astype(np.float64)

    def bound_times(self, upto: int, absGs: np.ndarray, c: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
        """x ↦ E x for E = |Gs| ∘ (c_i + c_j − (AᵀA)_ij) of the first ``upto`` entries (as
        :func:`_bound_rows` forms it), without forming E: c ∘ (|Gs| x) + |Gs| (c ∘ x) − Σ over
        the prefix's pairs (i, j) of |Gs|_ij x_j into row i. Only the rows and columns of the
        inputs F with c_i > 0 enter (E_ij = 0 when c_i = c_j = 0, since (AᵀA)_ij ≤ min(c_i, c_j)),
        so the products take the rows F of |Gs| alone: 2|F|·n flops per product, where forming
        E costs passes over all n² entries and the n² counts AᵀA. The same numbers up to
        rounding (c_i + c_j − (AᵀA)_ij ≥ max(c_i, c_j): the terms cancel by at most half). None
        when the prefix has too many pairs for this to pay."""
        p = int(np.searchsorted(self.admit, upto))
        n = self.n
        if p > n * n // 4:
            return None
        rows, cols = self.row[:p], self.col[:p]
        weights = absGs[rows, cols]
        F = np.flatnonzero(c)
        B, cF = absGs[F], c[F]  # (the rows F of the symmetric |Gs|: its columns F too)

        def times(x: np.ndarray) -> np.ndarray:
            out = (cF * x[F]) @ B  # |Gs| (c ∘ x)
            out[F] += cF * (B @ x)  # c ∘ (|Gs| x), zero outside F
            out -= np.bincount(rows, weights=weights * x[cols], minlength=n)
            return out
        return times


def prefix_bound(total: float, g: np.ndarray, size: int) -> int:
    """How many of the smallest entries certainly carry Σ g ≥ ``total`` (at most ``size``)."""
    return int(min(size, np.ceil(total / g.min()) + 1)) if g.min() > 0 else size


def _critical_from(flat: np.ndarray, vals: np.ndarray, cap: float, target: float, absGs: np.ndarray,
                   g: np.ndarray, n: int, m: int, max_pairs: int, complete: bool = True) -> float | None:
    """One threshold's search (see :func:`critical_radii`) over the entries ``flat`` with
    |w·x| = ``vals``: all those ≤ ``cap`` if ``complete``, else all those up to a smaller band
    radius (None is returned when the certificate holds with every entry of that band: its edge
    lies beyond); λ_max(E) is computed as :func:`certify`
    computes it (the same E, the same LAPACK call), so the radius found is the edge of the
    certificate itself. AᵀA of each step's prefix comes from the entries' same-neuron pairs
    (:class:`_PairCounts`), or, when there are more than ``max_pairs`` of them, from a sparse
    A formed anew at each step."""
    if np.isfinite(cap) and vals.size and vals.max() > cap:
        keep = vals <= cap
        flat, vals = flat[keep], vals[keep]
    # the averaged bound is reached within the first `bound` entries in sorted order; take them
    # (and every entry tied with the last) by a partition, and sort only those. Should rounding
    # of the running sum leave the bound unreached there, the whole set is sorted instead.
    bound = prefix_bound(n * m * target, g, vals.size)
    sets = [(flat, vals)]
    if bound < vals.size:
        keep = vals <= np.partition(vals, bound - 1)[bound - 1]
        sets.insert(0, (flat[keep], vals[keep]))
    for flat, vals in sets:
        order = np.argsort(vals)  # ties need no order: every use below takes all entries ≤ a value
        flat, vals = flat[order], vals[order]
        rows, cols = np.divmod(flat, n)
        # the averaged bound: once Σ_i g_i c_i ≥ n·m·target the certificate is lost
        reach = np.searchsorted(np.cumsum(g[cols]), n * m * target)
        if reach < vals.size:
            break
    if reach < vals.size:
        cut = np.searchsorted(vals, vals[reach], side="right")
        rows, cols, vals = rows[:cut], cols[:cut], vals[:cut]
        cap = float(vals[-1])

    perron = np.ones(n)  # the last Perron vector computed (1 before the first)
    pairs = _PairCounts(rows, cols, n, max_pairs)

    def pair_gram(upto: int) -> np.ndarray:
        if pairs.ok:
            return pairs.gram(upto)
        from scipy import sparse  # (here: importing scipy.sparse costs ~0.1 s at start-up)

        A = sparse.csr_matrix((np.ones(upto), (rows[:upto], cols[:upto])), shape=(m, n))
        return (A.T @ A).toarray()

    def bound(upto: int, c: np.ndarray) -> np.ndarray:
        """E of the first ``upto`` entries, as :func:`certify` forms it."""
        E = np.empty((n, n))
        _bound_rows(absGs, c, c, pair_gram(upto), E)
        return E

    def below(j: int) -> bool:
        """λ_max(E) < target at R = vals[j] (the entries ≤ vals[j] are flippable), as
        :func:`certify` would find it. E ≥ 0 entrywise, so for any x > 0
        min_i (Ex)_i/x_i ≤ λ_max(E) ≤ max_i (Ex)_i/x_i (Collatz–Wielandt), and xᵀEx/xᵀx ≤ λ_max.
        Power steps from the last Perron vector found (or 1) tighten these bounds; as soon as
        one settles the comparison with a relative margin of 1e-9 (far beyond the ~1e-13
        rounding of the bounds and of the eigensolver) the answer is known. Only a step whose
        λ_max lies within the margin of the target, or whose bounds stall, calls the
        eigensolver."""
        nonlocal perron
        upto = np.searchsorted(vals, vals[j], side="right")
        c = np.bincount(cols[:upto], minlength=n).astype(float)
        times = pairs.bound_times(upto, absGs, c) if pairs.ok else None
        E = None
        if times is None:
            E = bound(upto, c)
            times = E.__matmul__
        x = perron
        gap = np.inf
        for _ in range(_POWER_STEPS):
            Ex = times(x)
            lower = (x @ Ex) / (x @ x)
            if lower >= target * (1 + 1e-9):
                return False
            if x.min() <= 0:  # (a zero row of E): no upper bound from x
                break
            upper = (Ex / x).max()
            if upper < target * (1 - 1e-9):
                return True
            if not upper - lower < 0.5 * gap:  # the bracket stopped shrinking
                break
            gap = upper - lower
            x = Ex / np.linalg.norm(Ex)
        lam, v = eigenvalue_at(bound(upto, c) if E is None else E, -1, vector=True)
        perron = np.abs(v)
        return lam < target

    if vals.size == 0:
        return float(cap) if complete else None
    lo, hi = -1, vals.size - 1  # below(lo) (lo = -1: nothing flippable)
    if below(hi):  # certified with every entry of the band: the edge lies beyond it
        return float(cap) if complete else None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if below(mid):
            lo = mid
        else:
            hi = mid
    return float(vals[hi])
