"""Bracketing sup over a ball of the Gram-matrix change (Lemma 2.3, ReLU).

For W(0) and radius R, the ball is {W : ‖w_k − w_k(0)‖₂ ≤ R for all k}. Two
one-sided quantities bracket the supremum of ‖H(W) − H(W(0))‖₂ (and the
infimum of λ_min(H(W))):

* **Certified upper bound.** A sign 1{w_k·x_i ≥ 0} can change inside the ball
  only if |w_k(0)·x_i| ≤ R (unit x_i): event A_ik. Hence
  |ΔH_ij| ≤ E_ij = |x_i·x_j| (c_i + c_j − (AᵀA)_ij)/m with c_i = Σ_k A_ik, and
  since E ≥ 0 entrywise, ‖ΔH‖₂ ≤ ‖|ΔH|‖₂ ≤ λ_max(E); λ_min(H(W)) ≥
  λ_min(H(W(0))) − λ_max(E) by Weyl.
* **Attack lower bound.** An explicit W in the ball whose H(W) is evaluated
  exactly. For a test vector v, vᵀ ΔH v = Σ_k (‖z'_k‖² − ‖z_k‖²)/m with
  z_k = Σ_i v_i s_ik x_i, so the best move is separable over neurons: each
  neuron takes the best of a few pushes of length R (no move; towards the single
  most profitable sign flip; along a gain-weighted combination of its flippable
  rows). v is then replaced by the extreme eigenvector of the new ΔH (or H) and
  the step repeats, like a power iteration. Every W tried is inside the ball,
  so whatever it reaches is a valid lower bound.

All passes go over neurons in chunks, so memory does not grow with m.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from .kernels import eigenvalue_tolerance
from .memory import cache_rows, chunk_rows, neuron_slices
from .network import (CountSum, count_pass, exact_entries, float32_error_bound, gram_of_rows, require_safe_rows,
                      sign_pass)
from .parallel import row_blocks, run_tasks, single_blas, work_threads

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


def _starts(k: np.ndarray) -> np.ndarray:
    """Where each run of equal values of the sorted non-negative array k starts (a mask)."""
    return np.diff(k, prepend=-1) != 0


def _csr_rows(flat: np.ndarray, vals: np.ndarray, rows: int, n: int) -> sparse.csr_matrix:
    """The rows × n CSR matrix with ``vals`` at the sorted flat indices k·n + i (built from
    row pointers: no sort)."""
    k = flat // n
    return sparse.csr_matrix((vals, flat - k * n, np.searchsorted(k, np.arange(rows + 1))), shape=(rows, n))


#: below this fraction of flippable entries, AᵀA is a sparse product (cost Σ_k r_k², r_k the
#: flippable entries of neuron k) rather than a dense one (cost m n²/2)
_SPARSE_FRACTION = 0.01


#: rows with at most this many entries have their pairs counted by offsets (see _pair_counts)
_PAIR_OFFSETS = 64


def _pair_counts(k: np.ndarray, i: np.ndarray, rows: int, n: int) -> np.ndarray:
    """AᵀA (n × n, int64) for the 0/1 matrix A (rows × n) with ones at the entries (k, i),
    sorted by k then i: the number of rows holding both i and j.

    With few entries per row (a sparse flippable set), the pairs of a row are entries at
    offsets 1, 2, ... of each other in the sorted list, so one vectorised step per offset up to
    the longest row collects them all, and one bincount adds them up — no sparse matrix and no
    dense copy of its product. Longer rows (a neuron near every input) go to the sparse product,
    whose cost grows with the pairs, not with the square of the longest row."""
    if k.size == 0:
        return np.zeros((n, n), dtype=np.int64)
    starts = np.flatnonzero(_starts(k))
    if np.diff(np.append(starts, k.size)).max() > _PAIR_OFFSETS:
        A = _csr_rows(k * n + i, np.ones(k.size, dtype=np.float32), rows, n)
        return (A.T @ A).toarray().astype(np.int64)  # float32 counts ≤ rows ≤ 2^24: exact
    keys = [i * (n + 1)]  # (i, i): every entry with itself
    for o in range(1, k.size):
        e = np.flatnonzero(k[o:] == k[:-o])  # entry e and entry e + o share a row
        if e.size == 0:
            break
        a, b = i[e], i[e + o]
        keys += [a * n + b, b * n + a]
    return np.bincount(np.concatenate(keys), minlength=n * n).reshape(n, n)


class Flippable:
    """A = [1{|w_k·x_i| ≤ R}] accumulated over neuron chunks: AᵀA, c = Aᵀ1, active neurons."""

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.counts = np.zeros(n)
        self.active: list[np.ndarray] = []
        self.sparse_AA: np.ndarray | None = None
        self.dense: CountSum | None = None

    def add(self, start: int, rows: int, flat: np.ndarray) -> None:
        """Chunk of ``rows`` neurons from ``start``; ``flat`` the sorted flat indices of its
        flippable entries. Runs as one task beside the chunk's count product."""
        k, i = np.divmod(flat, self.n)
        self.counts += np.bincount(i, minlength=self.n)
        self.active.append(start + k[_starts(k)])
        if flat.size > _SPARSE_FRACTION * rows * self.n:
            A = np.zeros((rows, self.n), dtype=np.float32)
            A.ravel()[flat] = 1.0
            if self.dense is None:
                self.dense = CountSum(self.n, self.m)
            self.dense.add(A)
        else:
            AA = _pair_counts(k, i, rows, self.n)
            self.sparse_AA = AA if self.sparse_AA is None else self.sparse_AA + AA

    def gram(self) -> np.ndarray:
        if self.dense is None:
            return np.zeros((self.n, self.n)) if self.sparse_AA is None else self.sparse_AA
        AA = self.dense.total()
        return AA if self.sparse_AA is None else np.add(AA, self.sparse_AA, dtype=np.float64)


def certify(X: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float) -> Certificate:
    """H(W(0)), the certified bound E for radius R (one pass over neurons, see
    :func:`certificate_matrices`), and their extreme eigenpairs."""
    H0, E, cnt, SS, active = certificate_matrices(X, W0, R, working_memory_mb)
    # only the extreme eigenpairs are needed (LAPACK's syevr on an index range)
    lam_min_H0, v_min_H0 = _eig(H0, 0, vector=True)
    lam_max_E, v_top_E = _eig(E, -1, vector=True)  # as critical_radii computes it, bit for bit
    return Certificate(H0=H0, E=E, lam_max_E=lam_max_E, lam_min_H0=lam_min_H0,
                       v_min_H0=v_min_H0, v_perron=np.abs(v_top_E), counts=cnt, SS=SS,
                       active=active, tol=eigenvalue_tolerance(H0, E))


def certificate_matrices(X: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float):
    """One pass over neurons: (H(W(0)), E, c, SᵀS, active neurons) for radius R.

    The pass is the Gram-matrix pass of :mod:`ntkcheck.network` (float32 products with exact
    signs, threaded count products); :func:`ntkcheck.network.sign_pass` also returns the
    flippable entries |w·x| ≤ R (exactly, float64 where float32 cannot tell), so A costs no
    extra product, and AᵀA is a sparse product while A is sparse.
    """
    n, m = X.shape[0], W0.shape[0]
    flip = Flippable(n, m)
    Xs = X / np.sqrt(m)  # 1/m folded into the inputs as gram_matrix folds it: H0 is gram_matrix(X, W0)
    # work arrays: float32 S, its bool mask, float64 P if the band is wide, A, index lists
    SS, (Gs,), threads = count_pass(X, W0, working_memory_mb, radius=R, on_chunk=flip.add,
                                    bytes_per_entry=40, extra=[(n * X.shape[1] / 2, lambda: gram_of_rows(Xs))])
    AA, cnt = flip.gram(), flip.counts
    E = np.empty((n, n))
    run_tasks(threads, [(1.0, _former(Gs, SS, AA, cnt, E, r)) for r in row_blocks(n, threads)])
    active = np.concatenate(flip.active) if flip.active else np.zeros(0, dtype=np.int64)
    return Gs, E, cnt, SS, active  # Gs now holds H0


def _former(Gs: np.ndarray, SS: np.ndarray, AA: np.ndarray, c: np.ndarray, E: np.ndarray,
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
#: (benchmarks/bench_gram.py times both sides)
_GATHER_FRACTION = 1 / 100
#: above this density of a rows × n coefficient matrix its products are dense BLAS products
_DENSE_ROWS = 1 / 16
#: above this fraction of near entries in a chunk, the attack treats every entry as near
#: (contiguous arrays instead of gathers)
_ALL_NEAR = 1 / 4


class _Near:
    """The entries (k, i) of a chunk (rows × n) whose sign a push can change, as sorted flat
    indices k·n + i, with |w_k·x_i| for each. When most entries are near, every entry is
    taken (the far ones with |w·x| = ∞, which no push reaches) and gathers become reshapes."""

    def __init__(self, flat: np.ndarray, absval: np.ndarray, rows: int, n: int):
        self.rows, self.n = rows, n
        self.all = flat.size > _ALL_NEAR * rows * n
        if self.all:
            self.a = np.full(rows * n, np.inf)
            self.a[flat] = absval
            self.flat = self.k = self.i = None
        else:
            self.a, self.flat = absval, flat
            self.k, self.i = np.divmod(flat, n)

    @property
    def size(self) -> int:
        return self.a.size

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in (self.a, self.flat, self.k, self.i) if x is not None)

    def index(self, sub: np.ndarray) -> np.ndarray:
        """The flat indices k·n + i of the entries ``sub``."""
        return sub if self.all else self.flat[sub]

    def row(self, vec: np.ndarray) -> np.ndarray:
        """vec[k] for each entry (vec of length rows)."""
        return np.repeat(vec, self.n) if self.all else vec[self.k]

    def col(self, vec: np.ndarray) -> np.ndarray:
        """vec[i] for each entry (vec of length n)."""
        return np.tile(vec, self.rows) if self.all else vec[self.i]

    def of(self, M: np.ndarray, by_row: np.ndarray | None = None) -> np.ndarray:
        """M[k, i] for each entry of a rows × n array M; with ``by_row``, M[by_row[k], i]."""
        if self.all:
            return (M if by_row is None else M[by_row]).ravel()
        return M.ravel()[self.flat] if by_row is None else M[by_row[self.k], self.i]

    def best(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the largest g over its entries (−∞ if none) and the flat index of the
        first entry reaching it (0 for rows without entries)."""
        if self.all:
            g2 = g.reshape(self.rows, self.n)
            j = np.argmax(g2, axis=1)
            return g2[np.arange(self.rows), j], np.arange(self.rows) * self.n + j
        top = np.full(self.rows, -np.inf)
        flat = np.zeros(self.rows, dtype=np.int64)
        start = np.flatnonzero(_starts(self.k))  # entries are sorted by row
        top[self.k[start]] = np.maximum.reduceat(g, start)
        at = np.flatnonzero(g == top[self.k])
        at = at[_starts(self.k[at])]  # the first per row
        flat[self.k[at]] = self.flat[at]
        return top, flat

    def dots(self, A: np.ndarray, B32: np.ndarray) -> np.ndarray:
        """A[k]·B[i] (float32 accuracy, float64 result) for each entry (B of n rows)."""
        A32 = A.astype(np.float32)
        if self.size > _GATHER_FRACTION * self.rows * self.n:
            return self.of(A32 @ B32.T).astype(np.float64)
        return exact_entries(A32, B32, self.flat, self.n)  # float32 dot products, gathered

    def matrix(self, vals: np.ndarray, subset: np.ndarray | None = None):
        """The rows × n matrix with ``vals`` at the entries (or at those of ``subset``): CSR,
        or a dense array when it is not sparse enough for sparse products to pay."""
        rows, n = self.rows, self.n
        if subset is None and self.all:
            return vals.reshape(rows, n)
        flat = self.flat if subset is None else self.index(subset)
        if flat.size > _DENSE_ROWS * rows * n:
            A = np.zeros(rows * n, dtype=vals.dtype)
            A[flat] = vals
            return A.reshape(rows, n)
        return _csr_rows(flat, vals, rows, n)


class _Pushes:
    """The attack's passes over the neurons ``W0`` that can change a sign, for radius R.

    A call ``(v, sign)`` chooses per-neuron pushes for the objective sign·vᵀΔHv and returns
    S'ᵀS' − SᵀS over these neurons, so H(W) = G ∘ (SᵀS of W(0) + returned change)/m; if
    ``moves`` (m × d) is given, the chosen pushes are written there (W = W0 + moves is the
    point of the ball tried).

    A push u (‖u‖ ≤ R) changes the sign of w·x_i only where |w·x_i| ≤ R‖x_i‖: the near
    entries, a small sparse set that :func:`ntkcheck.network.sign_pass` returns with the signs.
    The sign pass depends on W0 and R only, so while its results fit the working-memory budget
    it is done once and shared by every call (an attack makes 3 × iterations calls). Everything after it
    works on the near set: the objective of neuron k is ‖z_k‖² with z_k = Σ_i v_i s_ik x_i, one
    dense product (rows × n × d) for all z_k, and a push changes it by 2 z_k·δz_k + ‖δz_k‖²,
    δz_k summed over the signs it changes. Two pushes are tried per neuron, towards the most
    profitable single flip (its effect on every near entry read off X Xᵀ) and along the
    gain-weighted combination of the profitable flips (one product). Choosing the pushes is a
    heuristic and runs in float32; what is returned is exact: the new values of the near
    entries are known within the float32 rounding bound, and those within it of 0 are
    recomputed in float64 (as ``sign_pass`` does), so the signs are those of the float64
    product for the W tried, and S'ᵀS' − SᵀS = DᵀS + SᵀD + DᵀD (D = S' − S) is an integer
    matrix formed from the few signs that changed.
    """

    def __init__(self, X: np.ndarray, G: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float,
                 keep: bool = True):
        self.X, self.G, self.W0, self.R = X, G, W0, R
        require_safe_rows(X, "X")
        require_safe_rows(W0, "W0")
        n = X.shape[0]
        m, d = W0.shape
        self.X32 = X.astype(np.float32)
        self.gdiag = np.diag(G).copy()
        self.xmax = float(np.sqrt(self.gdiag.max()))
        # z_k lives in the span of the inputs: any F with F Fᵀ = X Xᵀ gives the same objective,
        # and for d > n one with n columns is cheaper
        self.F = X if d <= n else np.linalg.qr(X.T, mode="r").T
        self.F32 = self.F.astype(np.float32)
        self.Rm = R * (1.0 - 8 * _EPS)  # push length: ‖u‖ ≤ R after rounding
        self.reach = self.Rm * np.sqrt(self.gdiag)  # how far a push can move w·x_i
        # per entry of a chunk a call holds S and, for each near entry, its index, value, gain
        # and push terms: the chunk is sized for a sparse near set, so a wide ball (most entries
        # near) can exceed the budget in that pass
        chunk = max(1, min(m, chunk_rows(n, working_memory_mb, bytes_per_entry=64), 1 << 23))
        self.threads = work_threads(n, chunk)
        self.slices = list(neuron_slices(m, chunk))
        # with ``keep``, the sign passes are kept for every call while they fit the budget
        self.cached: list | None = [] if keep else None
        held = 0
        for sl in self.slices if keep else ():
            state = self._signs(sl, np.empty((sl.stop - sl.start, n), dtype=np.float32))
            if state is not None:  # what it holds: every array but Wc (a view of W0)
                held += sum(x.nbytes for key, x in state.items() if key != "Wc" and hasattr(x, "nbytes"))
            if held > working_memory_mb * 2**20:
                self.cached = None
                break
            self.cached.append(state)
        self.S = np.empty((min(m, chunk), n), dtype=np.float32) if self.cached is None else None

    def _signs(self, sl: slice, Sc: np.ndarray) -> dict | None:
        """The sign pass of a chunk into ``Sc`` and what the calls need of it (None: nothing
        is near)."""
        Wc = self.W0[sl]
        rows, d = Wc.shape
        n = self.X.shape[0]
        wmax = float(np.sqrt(np.einsum("ij,ij->i", Wc, Wc).max()))
        # beyond R‖x‖ plus the float64 rounding of w·x before and after the push, no sign moves
        slack = 4 * (d + 2) * _EPS * (wmax + self.R) * self.xmax
        with single_blas(self.threads):
            flat, a0 = sign_pass(Wc, self.X, self.X32, Sc, radius=self.R * self.xmax + slack,
                                 threads=self.threads, values=True)
        if flat.size == 0:
            return None
        near = _Near(flat, a0, rows, n)
        s0 = near.of(Sc).astype(np.float64)  # (arithmetic, not np.where: the signs are random)
        dsg = 1.0 - 2.0 * s0  # +1: the sign is off, a push along x_i turns it on; −1: on
        return dict(Wc=Wc, Sc=Sc, near=near, on=s0 > 0, dsg=dsg,
                    p0=-dsg * near.a,  # w·x (±∞ for entries no push reaches)
                    # a push of length R cannot flip these (nor anything of an input x = 0)
                    far=(near.a > near.col(self.reach)) | near.col(self.reach == 0),
                    tau0=float(float32_error_bound(Wc, self.X)), slack=slack)

    def __call__(self, v: np.ndarray, sign: float, moves: np.ndarray | None = None) -> np.ndarray:
        n = self.X.shape[0]
        vF32 = (v[:, None] * self.F).astype(np.float32)
        acc, dd = None, []
        for j, sl in enumerate(self.slices):
            c = self.cached[j] if self.cached is not None else self._signs(sl, self.S[: sl.stop - sl.start])
            if c is None:
                if moves is not None:
                    moves[sl] = 0.0
                continue
            best_U, DS, DD = self._chunk(v, vF32, sign, **c)
            if moves is not None:
                moves[sl] = best_U
            if DS is not None:
                acc = DS if acc is None else np.add(acc, DS, dtype=np.float64)  # float64 across chunks
                dd.append(DD)
        out = np.zeros((n, n))
        if acc is not None:
            np.add(acc, acc.T, out=out)
        for DD in dd:
            if isinstance(DD, np.ndarray):
                out += DD
            else:
                out[DD.row, DD.col] += DD.data  # (row, col) pairs are distinct
        return out

    def _chunk(self, v, vF32, sign, Wc, Sc, near, on, dsg, p0, far, tau0, slack):
        """One chunk: (pushes, DᵀS, DᵀD) with D = S' − S (None, None if no sign changed)."""
        X, X32, G, F, Rm, gdiag = self.X, self.X32, self.G, self.F, self.Rm, self.gdiag
        rows, d = Wc.shape
        n = X.shape[0]
        Z = Sc @ vF32  # z_k, rows × (d or n)
        Z64 = Z.astype(np.float64)
        vi = near.col(v)
        # gain of flipping sign (k, i) alone: sign·(2 d_i v_i z_k·x_i + v_i² ‖x_i‖²)
        g = near.dots(Z, self.F32)
        g *= 2 * dsg * vi
        g += vi * vi * near.col(gdiag)
        g *= sign
        g[far] = -np.inf
        top, b = near.best(g)
        has = np.isfinite(top)
        # push 1: u_k = Rm d_j x_j/‖x_j‖ towards the best single flip j; u_k·x_i = coef_k G_ji
        jb = b % n
        coef1 = np.where(has, np.where(Sc.ravel()[b] > 0, -Rm, Rm) / np.sqrt(np.where(has, gdiag[jb], 1.0)), 0.0)
        U1 = coef1[:, None] * X[jb]
        du1 = near.row(coef1) * near.of(G, by_row=jb)
        # push 2: along Σ_i max(gain_i, 0) d_i x_i, normalised to length Rm
        U2 = np.asarray(near.matrix(np.maximum(g, 0) * dsg) @ X)
        nu2 = np.linalg.norm(U2, axis=1)
        ok2 = has & (nu2 > 0)
        U2 *= np.where(ok2, Rm / np.where(nu2 > 0, nu2, 1.0), 0.0)[:, None]
        du2 = near.dots(U2, X32)
        tau2 = float(float32_error_bound(U2, X))
        best_gain = np.zeros(rows)
        choice = np.zeros(rows, dtype=np.int8)
        for c, (ok, du) in enumerate(((has, du1), (ok2, du2)), start=1):
            flips = ((p0 + du) >= 0) != on
            flips &= near.row(ok)
            e = np.flatnonzero(flips)
            dz = np.asarray(near.matrix(vi[e] * dsg[e], subset=e) @ F)
            val = sign * (2 * np.einsum("kj,kj->k", Z64, dz) + np.einsum("kj,kj->k", dz, dz))
            better = ok & (val > best_gain)
            best_gain[better] = val[better]
            choice[better] = c
        best_U = np.zeros((rows, d))
        for c, U in ((1, U1), (2, U2)):
            best_U[choice == c] = U[choice == c]
        ce = near.row(choice)
        moved = np.flatnonzero(ce > 0)
        if moved.size == 0:
            return best_U, None, None
        # the W tried: new values of its near entries, exact signs (float64 within the bound)
        c1 = ce[moved] == 1
        q = p0[moved] + (du1[moved] * c1 + du2[moved] * ~c1)  # x·1 + y·0 = x exactly
        pos = q >= 0
        unsure = np.abs(q) <= 2 * (tau0 + tau2) + slack
        if unsure.any():
            pos[unsure] = exact_entries(Wc + best_U, X, near.index(moved[unsure]), n) >= 0
        ch = moved[pos != on[moved]]
        if ch.size == 0:
            return best_U, None, None
        # S' = S + D with D = ±1 on the changed signs: S'ᵀS' − SᵀS = DᵀS + SᵀD + DᵀD, integers
        # (|entries| ≤ 2·chunk ≤ 2^24, exact in float32)
        D = near.matrix(dsg[ch].astype(np.float32), subset=ch)
        DS = np.asarray(D.T @ Sc)  # n × n: DᵀS, a row of S per changed sign
        DD = D.T @ D
        return best_U, DS, (DD.tocoo() if sparse.issparse(DD) else DD)


def _attack_pass(X: np.ndarray, G: np.ndarray, W0: np.ndarray, R: float, v: np.ndarray,
                 sign: float, working_memory_mb: float, moves: np.ndarray | None = None) -> np.ndarray:
    """One pass of the attack (see :class:`_Pushes`), its sign pass included."""
    return _Pushes(X, G, W0, R, working_memory_mb, keep=False)(v, sign, moves)


@dataclass
class Attack:
    norm_dH: float  # largest ‖H(W) − H(W(0))‖₂ found
    lam_min: float  # smallest λ_min(H(W)) found


def _eig(M: np.ndarray, index: int, vector: bool = False):
    """The eigenvalue of the symmetric M at ``index`` in increasing order (with its unit
    eigenvector if ``vector``), from LAPACK's syevr on that index alone: the tridiagonal
    reduction is shared, but only one eigenpair is found and back-transformed instead of n."""
    i = index % M.shape[0]
    if not vector:
        return float(linalg.eigh(M, eigvals_only=True, subset_by_index=[i, i], driver="evr")[0])
    w, V = linalg.eigh(M, subset_by_index=[i, i], driver="evr")
    return float(w[0]), V[:, 0]


def _ends(M: np.ndarray, vector_at_top: bool | None = None):
    """(λ_min, λ_max) of the symmetric M and, if ``vector_at_top`` is not None, the unit
    eigenvector of λ_max (True) or of λ_min (False)."""
    if vector_at_top is None:
        return _eig(M, 0), _eig(M, -1), None
    if vector_at_top:
        hi, v = _eig(M, -1, vector=True)
        return _eig(M, 0), hi, v
    lo, v = _eig(M, 0, vector=True)
    return lo, _eig(M, -1), v


def attack(X: np.ndarray, W0: np.ndarray, R: float, cert: Certificate, iterations: int,
           working_memory_mb: float) -> Attack:
    """Search the ball for large ‖ΔH‖₂ and small λ_min(H(W)) (lower/upper bounds)."""
    m = W0.shape[0]
    G = gram_of_rows(X)
    Gs = gram_of_rows(X / np.sqrt(m))  # as certificate_matrices forms H0 = Gs ∘ SᵀS: ΔH is exactly 0 unmoved
    H0 = cert.H0
    best_norm = 0.0
    best_min = cert.lam_min_H0  # W = W(0) is in the ball
    if iterations <= 0 or R <= 0 or cert.active.size == 0:
        return Attack(best_norm, best_min)
    push = _Pushes(X, G, W0[cert.active], R, working_memory_mb)
    for sign in (1.0, -1.0):  # raise, then lower, vᵀΔHv
        v = cert.v_perron
        for _ in range(iterations):
            dH = Gs * push(v, sign)
            lo, hi, v = _ends(dH, vector_at_top=sign > 0)
            best_norm = max(best_norm, abs(lo), abs(hi))
            best_min = min(best_min, _eig(H0 + dH, 0))
    v = cert.v_min_H0
    for _ in range(iterations):
        H = Gs * (cert.SS + push(v, -1.0))
        w0, v = _eig(H, 0, vector=True)
        best_min = min(best_min, w0)
        lo, hi, _ = _ends(H - H0)  # symmetric: its 2-norm is its largest |eigenvalue|
        best_norm = max(best_norm, -lo, hi)
    return Attack(best_norm, best_min)


#: inputs over which the critical radius takes its first cap
_CAP_INPUTS = 8
#: power steps the critical radius tries before its eigensolver (one n × n product each)
_POWER_STEPS = 40


def critical_radius(X: np.ndarray, W0: np.ndarray, threshold: float, tol: float,
                    working_memory_mb: float) -> float:
    """sup{R : λ_max(E(R)) < threshold − tol}: the largest radius still certified (see
    :func:`critical_radii`)."""
    return critical_radii(X, W0, [threshold], tol, working_memory_mb)[0]


def critical_radii(X: np.ndarray, W0: np.ndarray, thresholds: list[float], tol: float,
                   working_memory_mb: float) -> list[float]:
    """sup{R : λ_max(E(R)) < t − tol} for each threshold t, from one pass over the neurons.

    λ_max(E(R)) is a nondecreasing step function of R that jumps only at the values
    |w_k(0)·x_i|. Two cheap lower bounds on it, each a function of the counts
    c_i(R) = #{k : |w_k(0)·x_i| ≤ R}, say where the certificate is certainly lost:
    λ_max(E) ≥ E_ii = c_i/m, and, with the unit vector 1/√n,
    λ_max(E) ≥ (1/n) Σ_ij E_ij ≥ (1/(n m)) Σ_i g_i c_i with g_i = Σ_j |x_i·x_j|
    (because c_i + c_j − (AᵀA)_ij ≥ c_i). Only the entries below the smaller of the two
    caps matter, a small sparse set (of the order of n·m·threshold/mean(g) entries);
    a binary search over their sorted values gives the exact supremum. Memory stays
    within the chunk budget plus that set, whatever m is.

    The thresholds share the matrix-vector products of the first cap and the sign pass
    (taken to the largest cap); each then sorts only the entries the averaged bound can
    reach: a prefix of L sorted entries has Σ g ≥ L·min(g), so the first
    ⌈n·m·target/min(g)⌉ + 1 suffice (found by a partition, not a full sort).
    """
    n = X.shape[0]
    m = W0.shape[0]
    require_safe_rows(X, "X")
    require_safe_rows(W0, "W0")
    targets = [t - tol for t in thresholds]
    g = np.abs(gram_of_rows(X)).sum(axis=1)
    absGs = np.abs(gram_of_rows(X / np.sqrt(m)))  # |X Xᵀ|/m as certificate_matrices forms it, for E
    X32 = X.astype(np.float32)
    k_caps = [int(np.ceil(t * m)) for t in targets]  # ≥ 1 where t > 0
    chunk = chunk_rows(n, working_memory_mb, bytes_per_entry=24)
    need = sorted({k for t, k in zip(targets, k_caps) if t > 0 and k <= m})
    best = dict.fromkeys(need, np.inf)
    if need:  # the diagonal bound's cap: min over i of the k_cap-th smallest |w·x_i|
        # An upper bound on it suffices (it only admits more entries; the search below uses
        # the exact values), so it is taken over a few inputs only, those of largest norm (in
        # distribution the smallest quantiles; unit inputs differ only by sampling noise): one
        # matrix-vector product over the neurons each, raised by its float64 rounding bound
        norms = np.sqrt(np.einsum("ij,ij->i", X, X))
        wmax = float(np.sqrt(np.einsum("ij,ij->i", W0, W0).max()))
        for j in np.argsort(-norms, kind="stable")[:_CAP_INPUTS]:
            p = np.partition(np.abs(W0 @ X[j]), [k - 1 for k in need])
            slack = 4 * (X.shape[1] + 2) * _EPS * wmax * float(norms[j])
            for k in need:
                best[k] = min(best[k], float(p[k - 1]) + slack)
    caps = [(best[k] if k <= m else np.inf) if t > 0 else 0.0 for t, k in zip(targets, k_caps)]
    live = [c for t, c in zip(targets, caps) if t > 0]
    if not live:
        return [0.0] * len(thresholds)
    radius = max(live)
    flats, vals = [], []
    buf = np.empty((min(m, chunk), n), dtype=np.float32)
    for sl in neuron_slices(m, chunk):  # the entries |w·x| ≤ the largest cap, with their float64 values
        near, v = sign_pass(W0[sl], X, X32, buf[: sl.stop - sl.start], radius=radius, exact_values=True)
        flats.append(near + sl.start * n)  # flat index k·n + i over all neurons
        vals.append(v)
    flat_all, vals_all = np.concatenate(flats), np.concatenate(vals)
    del flats, vals
    return [0.0 if t <= 0 else _critical_from(flat_all, vals_all, c, t, absGs, g, n, m)
            for t, c in zip(targets, caps)]


def _prefix_bound(total: float, g: np.ndarray, size: int) -> int:
    """How many of the smallest entries certainly carry Σ g ≥ ``total`` (at most ``size``)."""
    return int(min(size, np.ceil(total / g.min()) + 1)) if g.min() > 0 else size


def _critical_from(flat: np.ndarray, vals: np.ndarray, cap: float, target: float, absGs: np.ndarray,
                   g: np.ndarray, n: int, m: int) -> float:
    """One threshold's search (see :func:`critical_radii`) over the entries ``flat`` with
    |w·x| = ``vals``, a superset of those ≤ ``cap``; λ_max(E) is computed as :func:`certify`
    computes it (the same E, the same LAPACK call), so the radius found is the edge of the
    certificate itself."""
    if np.isfinite(cap) and vals.size and vals.max() > cap:
        keep = vals <= cap
        flat, vals = flat[keep], vals[keep]
    # the averaged bound is reached within the first `bound` entries in sorted order; take them
    # (and every entry tied with the last) by a partition, and sort only those. Should rounding
    # of the running sum leave the bound unreached there, the whole set is sorted instead.
    bound = _prefix_bound(n * m * target, g, vals.size)
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
        A = sparse.csr_matrix((np.ones(upto), (rows[:upto], cols[:upto])), shape=(m, n))
        c = np.bincount(cols[:upto], minlength=n).astype(float)
        E = np.empty((n, n))
        _bound_rows(absGs, c, c, (A.T @ A).toarray(), E)
        x = perron
        gap = np.inf
        for _ in range(_POWER_STEPS):
            Ex = E @ x
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
        lam, v = _eig(E, -1, vector=True)
        perron = np.abs(v)
        return lam < target

    if vals.size == 0:
        return float(cap)
    lo, hi = -1, vals.size - 1  # below(lo) (lo = -1: nothing flippable)
    if below(hi):
        return float(cap)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if below(mid):
            lo = mid
        else:
            hi = mid
    return float(vals[hi])
