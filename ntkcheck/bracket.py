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


def _quad(Sv: np.ndarray, X32: np.ndarray, G32: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron k, ‖z_k‖² and z_k·x_i for z_k = Σ_i (s_k v)_i x_i: through the d-vectors z_k
    when d < n (products of size chunk × n × d), through G = X Xᵀ otherwise."""
    if G32 is None:
        Z = Sv @ X32
        return np.einsum("kj,kj->k", Z, Z), Z @ X32.T
    zx = Sv @ G32
    return np.einsum("ki,ki->k", zx, Sv), zx


def _attack_pass(X: np.ndarray, G: np.ndarray, W0: np.ndarray, R: float, v: np.ndarray,
                 sign: float, working_memory_mb: float,
                 moves: np.ndarray | None = None) -> np.ndarray:
    """Best per-neuron pushes for the objective sign·vᵀΔHv.

    ``W0`` holds only the neurons that can change a sign; returns S'ᵀS' − SᵀS over
    them, so H(W) = G ∘ (SᵀS of W(0) + returned change)/m. If ``moves`` (m × d) is given,
    the chosen pushes are written there (W = W0 + moves is the point of the ball tried).

    Choosing the pushes is a heuristic and runs in float32; what is returned is exact: the
    signs of the W actually tried come from :func:`ntkcheck.network.sign_pass` (the signs of
    the float64 product), and the change of the counts, (S'ᵀS' − SᵀS) = sym((S' − S)ᵀ(S' + S)),
    is an integer matrix formed from the few signs that changed.
    """
    n = X.shape[0]
    m, d = W0.shape
    X32 = X.astype(np.float32)
    G32 = None if d < n else G.astype(np.float32)
    v32 = v.astype(np.float32)
    vv = v32 * v32
    out = np.zeros((n, n))
    chunk = max(1, min(m, chunk_rows(n, working_memory_mb, bytes_per_entry=64), 1 << 23))
    threads = work_threads(n, chunk)
    shrink = 1.0 - 8 * _EPS  # keeps ‖R·u‖ ≤ R after rounding
    for sl in neuron_slices(m, chunk):
        Wc = W0[sl]
        rows = Wc.shape[0]
        r = np.arange(rows)
        S = np.empty((rows, n), dtype=np.float32)
        with single_blas(threads):
            flippable = sign_pass(Wc, X, X32, S, radius=R, threads=threads)
        flip = 1 - 2 * S  # d_i: −1 if the sign is on (push along −x_i), +1 if off
        frozen = np.ones((rows, n), dtype=bool)  # signs no push of length R can flip
        frozen.ravel()[flippable] = False
        base, zx = _quad(S * v32, X32, G32)
        # first-order gain of flipping sign i alone: sign·(2 d_i v_i (z·x_i) + v_i²), where
        # in place, float32
        g = zx
        g *= v32
        g *= 2
        g *= flip
        g += vv
        if sign < 0:
            np.negative(g, out=g)
        np.copyto(g, np.float32(-np.inf), where=frozen)
        best_i = np.argmax(g, axis=1)
        has = np.isfinite(g[r, best_i])
        U1 = flip[r, best_i].astype(np.float64)[:, None] * X[best_i]
        np.maximum(g, 0, out=g)  # gain-weighted push over the profitable flips
        g *= flip
        U2 = (g @ X32).astype(np.float64)
        del g, zx
        best_gain = np.zeros(rows, dtype=np.float32)
        best_U = np.zeros((rows, d))
        Q = np.empty((rows, n), dtype=np.float32)
        for U in (U1, U2):
            nu = np.linalg.norm(U, axis=1)
            ok = has & (nu > 0)
            Uu = np.where(ok[:, None], U / np.where(nu > 0, nu, 1.0)[:, None], 0.0) * (R * shrink)
            np.matmul((Wc + Uu).astype(np.float32), X32.T, out=Q)  # approximate signs: a heuristic
            np.greater_equal(Q, 0, out=Q, casting="unsafe")
            Q *= v32
            val = sign * (_quad(Q, X32, G32)[0] - base)
            better = ok & (val > best_gain)
            best_gain = np.where(better, val, best_gain)
            best_U[better] = Uu[better]
        del Q
        if moves is not None:
            moves[sl] = best_U
        moved = np.flatnonzero(best_U.any(axis=1))
        if moved.size == 0:
            continue
        if moved.size < rows // 2:
            Wm, Sm = Wc[moved] + best_U[moved], S[moved]
        else:  # most neurons moved: skip the copies (unmoved rows keep their signs)
            Wm, Sm = Wc + best_U, S
        Sf = np.empty_like(Sm)
        with single_blas(threads):
            sign_pass(Wm, X, X32, Sf, threads=threads)  # the W actually tried, exact signs
        ch = np.flatnonzero(Sf != Sm)
        if ch.size == 0:
            continue
        k, i = np.divmod(ch, n)
        ks, kinv = np.unique(k, return_inverse=True)  # rows with a changed sign
        T = Sf[ks]
        T += Sm[ks]  # S' + S on those rows
        if ch.size <= _SPARSE_FRACTION * Sm.size:
            D = sparse.csr_matrix((Sf.ravel()[ch] - Sm.ravel()[ch], (i, kinv)), shape=(n, ks.size))
            M = np.asarray(D @ T, dtype=np.float64)
        else:
            Dd = np.zeros((ks.size, n), dtype=np.float32)
            Dd[kinv, i] = Sf.ravel()[ch] - Sm.ravel()[ch]
            M = (Dd.T @ T).astype(np.float64)  # |entries| ≤ 2·chunk ≤ 2^24: exact in float32
        M += M.T
        M /= 2  # M + Mᵀ = 2(S'ᵀS' − SᵀS): even, so halving is exact
        out += M
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
