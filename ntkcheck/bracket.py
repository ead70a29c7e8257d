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

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from .kernels import eigenvalue_tolerance
from .network import (CountSum, chunk_rows, count_pass, exact_entries, float32_error_bound, gram_of_rows,
                      neuron_slices, sign_pass, single_blas, work_threads)

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
    SS: np.ndarray  # Sᵀ S of W(0): activation counts
    active: np.ndarray  # neurons with at least one flippable sign (the only ones a move can change)
    tol: float  # floating-point allowance on eigenvalues of these n×n matrices


#: below this fraction of flippable entries, AᵀA is a sparse product (cost Σ_k r_k², r_k the
#: flippable entries of neuron k) rather than a dense one (cost m n²/2)
_SPARSE_FRACTION = 0.01


class Flippable:
    """A = [1{|w_k·x_i| ≤ R}] accumulated over neuron chunks: AᵀA, c = Aᵀ1, active neurons."""

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.counts = np.zeros(n)
        self.active: list[np.ndarray] = []
        self.sparse_AA: np.ndarray | None = None
        self.dense: CountSum | None = None

    def add(self, start: int, rows: int, flat: np.ndarray, threads: int = 1) -> None:
        """Chunk of ``rows`` neurons from ``start``; ``flat`` the flat indices of its flippable
        entries; ``threads`` for a dense AᵀA (the caller has BLAS single-threaded already)."""
        k, i = np.divmod(flat, self.n)
        self.counts += np.bincount(i, minlength=self.n)
        self.active.append(start + np.unique(k))
        if flat.size > _SPARSE_FRACTION * rows * self.n:
            A = np.zeros((rows, self.n), dtype=np.float32)
            A.ravel()[flat] = 1.0
            if self.dense is None:
                self.dense = CountSum(self.n, self.m, threads)
            self.dense.add(A)
        else:
            A = sparse.csr_matrix((np.ones(flat.size), (k, i)), shape=(rows, self.n))
            AA = (A.T @ A).toarray()
            self.sparse_AA = AA if self.sparse_AA is None else self.sparse_AA + AA

    def gram(self) -> np.ndarray:
        if self.dense is None:
            return np.zeros((self.n, self.n)) if self.sparse_AA is None else self.sparse_AA
        AA = self.dense.total().astype(np.float64)
        return AA if self.sparse_AA is None else AA + self.sparse_AA


def certify(X: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float) -> Certificate:
    """H(W(0)), the certified bound E for radius R (one pass over neurons, see
    :func:`certificate_matrices`), and their extreme eigenpairs."""
    n = X.shape[0]
    H0, E, cnt, SS, active = certificate_matrices(X, W0, R, working_memory_mb)
    # only the extreme eigenpairs are needed (LAPACK's syevr on an index range)
    wH, VH = linalg.eigh(H0, subset_by_index=[0, 0])
    wE, VE = linalg.eigh(E, subset_by_index=[n - 1, n - 1])
    return Certificate(H0=H0, E=E, lam_max_E=float(wE[-1]), lam_min_H0=float(wH[0]),
                       v_min_H0=VH[:, 0], v_perron=np.abs(VE[:, -1]), counts=cnt, SS=SS,
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
    # work arrays: float32 S, its bool mask, float64 P if the band is wide, A, index lists
    SS, (G,), _ = count_pass(X, W0, working_memory_mb, extra=[(n * X.shape[1] / 2, lambda: gram_of_rows(X))],
                             radius=R, on_chunk=flip.add, bytes_per_entry=40)
    counts = SS.astype(np.float64)
    H0 = G * counts
    H0 /= m
    cnt = flip.counts
    E = cnt[:, None] + cnt[None, :]
    E -= flip.gram()
    E *= np.abs(G)
    E /= m
    active = np.concatenate(flip.active) if flip.active else np.zeros(0, dtype=np.int64)
    return H0, E, cnt, counts, active


#: below this density of the pairs asked for, their dot products are gathered one by one;
#: above it, one dense float32 product and a gather are cheaper (measured: 0.4% of the chunk)
_GATHER_FRACTION = 1 / 256


def _pair_dots(A: np.ndarray, B32: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """A[k]·B[i] (float32 accuracy, float64 result) for the flat indices k·n + i of a
    rows × n matrix, n = len(B32)."""
    n = B32.shape[0]
    A32 = A.astype(np.float32)
    if flat.size > _GATHER_FRACTION * A.shape[0] * n:
        return (A32 @ B32.T).ravel()[flat].astype(np.float64)
    out = np.empty(flat.size)
    step = 1 << 16
    for a in range(0, flat.size, step):
        k, i = np.divmod(flat[a:a + step], n)
        out[a:a + step] = np.einsum("ij,ij->i", A32[k], B32[i])
    return out


#: above this density of a rows × n coefficient matrix its products are dense BLAS products
_DENSE_ROWS = 1 / 16


def _rows_matrix(flat: np.ndarray, vals: np.ndarray, rows: int, n: int):
    """The rows × n matrix with ``vals`` at the sorted flat indices ``flat``: a CSR matrix,
    or a dense array when it is not sparse enough for sparse products to pay."""
    if flat.size > _DENSE_ROWS * rows * n:
        A = np.zeros(rows * n, dtype=vals.dtype)
        A[flat] = vals
        return A.reshape(rows, n)
    k = flat // n
    indptr = np.searchsorted(k, np.arange(rows + 1))  # flat is sorted: rows in order
    return sparse.csr_matrix((vals, flat - k * n, indptr), shape=(rows, n))


def _attack_pass(X: np.ndarray, G: np.ndarray, W0: np.ndarray, R: float, v: np.ndarray,
                 sign: float, working_memory_mb: float,
                 moves: np.ndarray | None = None) -> np.ndarray:
    """Best per-neuron pushes for the objective sign·vᵀΔHv.

    ``W0`` holds only the neurons that can change a sign; returns S'ᵀS' − SᵀS over
    them, so H(W) = G ∘ (SᵀS of W(0) + returned change)/m. If ``moves`` (m × d) is given,
    the chosen pushes are written there (W = W0 + moves is the point of the ball tried).

    A push u (‖u‖ ≤ R) changes the sign of w·x_i only where |w·x_i| ≤ R‖x_i‖: the near
    entries, a small sparse set that :func:`ntkcheck.network.sign_pass` returns with the signs.
    Everything after the sign pass works on that set: the objective of neuron k is
    ‖z_k‖² with z_k = Σ_i v_i s_ik x_i, one dense product (rows × n × d) for all z_k, and a
    push changes it by 2 z_k·δz_k + ‖δz_k‖², δz_k summed over the signs it changes. Two pushes
    are tried per neuron, towards the most profitable single flip (its effect on every near
    entry read off X Xᵀ) and along the gain-weighted combination of the profitable flips (one
    product). Choosing the pushes is a heuristic and runs in float32; what is returned is
    exact: the new values of the near entries are known within the float32 rounding bound, and
    those within it of 0 are recomputed in float64 (as ``sign_pass`` does), so the signs are
    those of the float64 product for the W tried, and (S'ᵀS' − SᵀS) = sym((S' − S)ᵀ(S' + S)) is
    an integer matrix formed from the few signs that changed.
    """
    n = X.shape[0]
    m, d = W0.shape
    X32 = X.astype(np.float32)
    gdiag = np.diag(G).copy()
    xmax = float(np.sqrt(gdiag.max()))
    # z_k lives in the span of the inputs: any F with F Fᵀ = X Xᵀ gives the same objective,
    # and for d > n one with n columns is cheaper
    F = X if d <= n else np.linalg.qr(X.T, mode="r").T
    F32 = F.astype(np.float32)
    vF32 = (v[:, None] * F).astype(np.float32)
    acc, dd = None, []
    chunk = max(1, min(m, chunk_rows(n, working_memory_mb, bytes_per_entry=24), 1 << 23))
    threads = work_threads(n, chunk)
    Rm = R * (1.0 - 8 * _EPS)  # push length: ‖u‖ ≤ R after rounding
    S = np.empty((min(m, chunk), n), dtype=np.float32)
    for sl in neuron_slices(m, chunk):
        Wc = W0[sl]
        rows = Wc.shape[0]
        Sc = S[:rows]
        wmax = float(np.sqrt(np.einsum("ij,ij->i", Wc, Wc).max()))
        # beyond R‖x‖ plus the float64 rounding of w·x before and after the push, no sign moves
        slack = 4 * (d + 2) * _EPS * (wmax + R) * xmax
        with single_blas(threads):
            near, a0 = sign_pass(Wc, X, X32, Sc, radius=R * xmax + slack, threads=threads, values=True)
        if near.size == 0:
            if moves is not None:
                moves[sl] = 0.0
            continue
        k, i = np.divmod(near, n)
        s = Sc.ravel()[near].astype(np.float64)
        dsg = 1.0 - 2.0 * s  # +1: the sign is off, a push along x_i turns it on; −1: on
        p0 = np.where(s > 0, a0, -a0)
        tau0 = float(float32_error_bound(Wc, X))
        Z = Sc @ vF32  # z_k, rows × (d or n)
        Z64 = Z.astype(np.float64)
        zx = _pair_dots(Z, F32, near)
        vi = v[i]
        # gain of flipping sign (k, i) alone: sign·(2 d_i v_i z_k·x_i + v_i² ‖x_i‖²)
        g = sign * (2 * dsg * vi * zx + vi * vi * gdiag[i])
        g[a0 > Rm * np.sqrt(gdiag[i])] = -np.inf  # a push of length R cannot reach it
        first = np.r_[True, k[1:] != k[:-1]]  # entries are sorted by row
        start = np.flatnonzero(first)
        grp = np.cumsum(first) - 1  # entry → its row's group
        kr = k[start]
        top = np.maximum.reduceat(g, start)
        at = np.flatnonzero(g == top[grp])
        b = at[np.r_[True, grp[at[1:]] != grp[at[:-1]]]]  # per row, its first entry of largest gain
        has = np.zeros(rows, dtype=bool)
        has[kr] = np.isfinite(top)
        # push 1: u_k = Rm d_j x_j/‖x_j‖ towards the best single flip j; u_k·x_i = coef·G_ji
        jb = i[b]
        coef1 = dsg[b] * Rm / np.sqrt(gdiag[jb])
        U1 = np.zeros((rows, d))
        U1[kr] = coef1[:, None] * X[jb]
        du1 = coef1[grp] * G[jb[grp], i]
        # push 2: along Σ_i max(gain_i, 0) d_i x_i, normalised to length Rm
        U2 = np.asarray(_rows_matrix(near, np.maximum(g, 0) * dsg, rows, n) @ X)
        nu2 = np.linalg.norm(U2, axis=1)
        ok2 = has & (nu2 > 0)
        U2 *= np.where(ok2, Rm / np.where(nu2 > 0, nu2, 1.0), 0.0)[:, None]
        du2 = _pair_dots(U2, X32, near)
        tau2 = float(float32_error_bound(U2, X))
        best_gain = np.zeros(rows)
        choice = np.zeros(rows, dtype=np.int8)
        for c, (ok, du) in enumerate(((has, du1), (ok2, du2)), start=1):
            flips = ((p0 + du) >= 0) != (s > 0)
            flips &= ok[k]
            e = np.flatnonzero(flips)
            dz = np.asarray(_rows_matrix(near[e], vi[e] * dsg[e], rows, n) @ F)
            val = sign * (2 * np.einsum("kj,kj->k", Z64, dz) + np.einsum("kj,kj->k", dz, dz))
            better = ok & (val > best_gain)
            best_gain[better] = val[better]
            choice[better] = c
        best_U = np.zeros((rows, d))
        for c, U in ((1, U1), (2, U2)):
            best_U[choice == c] = U[choice == c]
        if moves is not None:
            moves[sl] = best_U
        ce = choice[k]
        moved = np.flatnonzero(ce > 0)
        if moved.size == 0:
            continue
        # the W tried: new values of its near entries, exact signs (float64 within the bound)
        q = p0[moved] + np.where(ce[moved] == 1, du1[moved], du2[moved])
        pos = q >= 0
        unsure = np.abs(q) <= 2 * (tau0 + tau2) + slack
        if unsure.any():
            pos[unsure] = exact_entries(Wc + best_U, X, near[moved[unsure]], n) >= 0
        ch = moved[pos != (s[moved] > 0)]
        if ch.size == 0:
            continue
        # S' = S + D with D = ±1 on the changed signs: S'ᵀS' − SᵀS = DᵀS + SᵀD + DᵀD, integers
        # (|entries| ≤ 2·chunk ≤ 2^24, exact in float32)
        D = _rows_matrix(near[ch], dsg[ch].astype(np.float32), rows, n)
        DS = np.asarray(D.T @ Sc)  # n × n: DᵀS, a row of S per changed sign
        acc = DS if acc is None else np.add(acc, DS, dtype=np.float64)  # float64 across chunks
        DD = D.T @ D
        dd.append(DD.tocoo() if sparse.issparse(DD) else DD)
    out = np.zeros((n, n))
    if acc is not None:
        np.add(acc, acc.T, out=out)
    for DD in dd:
        if isinstance(DD, np.ndarray):
            out += DD
        else:
            out[DD.row, DD.col] += DD.data  # (row, col) pairs are distinct
    return out


@dataclass
class Attack:
    norm_dH: float  # largest ‖H(W) − H(W(0))‖₂ found
    lam_min: float  # smallest λ_min(H(W)) found


def attack(X: np.ndarray, W0: np.ndarray, R: float, cert: Certificate, iterations: int,
           working_memory_mb: float) -> Attack:
    """Search the ball for large ‖ΔH‖₂ and small λ_min(H(W)) (lower/upper bounds)."""
    m = W0.shape[0]
    G = gram_of_rows(X)
    H0 = cert.H0
    best_norm = 0.0
    best_min = cert.lam_min_H0  # W = W(0) is in the ball
    if iterations <= 0 or R <= 0 or cert.active.size == 0:
        return Attack(best_norm, best_min)
    Wa = W0[cert.active]
    for sign in (1.0, -1.0):  # raise, then lower, vᵀΔHv
        v = cert.v_perron
        for _ in range(iterations):
            dH = G * _attack_pass(X, G, Wa, R, v, sign, working_memory_mb) / m
            w, V = np.linalg.eigh(dH)
            best_norm = max(best_norm, float(max(abs(w[0]), abs(w[-1]))))
            best_min = min(best_min, float(np.linalg.eigvalsh(H0 + dH)[0]))
            v = V[:, -1] if sign > 0 else V[:, 0]
    v = cert.v_min_H0
    for _ in range(iterations):
        H = G * (cert.SS + _attack_pass(X, G, Wa, R, v, -1.0, working_memory_mb)) / m
        w, V = np.linalg.eigh(H)
        best_min = min(best_min, float(w[0]))
        best_norm = max(best_norm, float(np.linalg.norm(H - H0, 2)))
        v = V[:, 0]
    return Attack(best_norm, best_min)


def critical_radius(X: np.ndarray, W0: np.ndarray, threshold: float, tol: float,
                    working_memory_mb: float) -> float:
    """sup{R : λ_max(E(R)) < threshold − tol}: the largest radius still certified.

    λ_max(E(R)) is a nondecreasing step function of R that jumps only at the values
    |w_k(0)·x_i|. Two cheap lower bounds on it, each a function of the counts
    c_i(R) = #{k : |w_k(0)·x_i| ≤ R}, say where the certificate is certainly lost:
    λ_max(E) ≥ E_ii = c_i/m, and, with the unit vector 1/√n,
    λ_max(E) ≥ (1/n) Σ_ij E_ij ≥ (1/(n m)) Σ_i g_i c_i with g_i = Σ_j |x_i·x_j|
    (because c_i + c_j − (AᵀA)_ij ≥ c_i). Only the entries below the smaller of the two
    caps matter, a small sparse set (of the order of n·m·threshold/mean(g) entries);
    a binary search over their sorted values gives the exact supremum. Memory stays
    within the chunk budget plus that set, whatever m is.
    """
    n = X.shape[0]
    m = W0.shape[0]
    target = threshold - tol
    if target <= 0:
        return 0.0
    G = np.abs(gram_of_rows(X))
    g = G.sum(axis=1)
    X32 = X.astype(np.float32)
    k_cap = int(np.ceil(target * m))
    chunk = chunk_rows(n, working_memory_mb, bytes_per_entry=24)
    if k_cap > m:
        cap = np.inf
    else:  # per input, the k_cap-th smallest |w·x_i|: the diagonal bound's cap
        # in float32, raised by the chunk's rounding bound: an upper bound on the exact cap
        # suffices (it only admits more entries; the search below uses float64 values)
        keep = np.empty((0, n), dtype=np.float32)
        for sl in neuron_slices(m, chunk):
            P = np.abs(W0[sl].astype(np.float32) @ X32.T)
            P += float32_error_bound(W0[sl], X)
            both = np.vstack([keep, P])
            del P
            kk = min(k_cap, both.shape[0])
            keep = np.partition(both, kk - 1, axis=0)[:kk]
        cap = float(keep.max(axis=0).min()) if keep.shape[0] >= k_cap else np.inf
        del keep
    rows, cols, vals = [], [], []
    buf = np.empty((min(m, chunk), n), dtype=np.float32)
    for sl in neuron_slices(m, chunk):  # the entries |w·x| ≤ cap, with their float64 values
        near = sign_pass(W0[sl], X, X32, buf[: sl.stop - sl.start], radius=cap)
        k, i = np.divmod(near, n)
        rows.append((k + sl.start).astype(np.int64))
        cols.append(i.astype(np.int32))
        vals.append(np.abs(exact_entries(W0[sl], X, near, n)))
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    order = np.argsort(vals, kind="stable")
    rows, cols, vals = rows[order], cols[order], vals[order]
    # the averaged bound: once Σ_i g_i c_i ≥ n·m·target the certificate is lost
    reach = np.searchsorted(np.cumsum(g[cols]), n * m * target)
    if reach < vals.size:
        cut = np.searchsorted(vals, vals[reach], side="right")
        rows, cols, vals = rows[:cut], cols[:cut], vals[:cut]
        cap = float(vals[-1])

    def lam(j: int) -> float:  # λ_max(E) at R = vals[j]: the entries ≤ vals[j] are flippable
        upto = np.searchsorted(vals, vals[j], side="right")
        A = sparse.csr_matrix((np.ones(upto), (rows[:upto], cols[:upto])), shape=(m, n))
        c = np.bincount(cols[:upto], minlength=n).astype(float)
        E = G * (c[:, None] + c[None, :] - (A.T @ A).toarray()) / m
        return float(np.linalg.eigvalsh(E)[-1])

    if vals.size == 0:
        return float(cap)
    lo, hi = -1, vals.size - 1  # lam(lo) < target (lo = -1: nothing flippable)
    if lam(hi) < target:
        return float(cap)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lam(mid) < target:
            lo = mid
        else:
            hi = mid
    return float(vals[hi])
