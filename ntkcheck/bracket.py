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
from scipy import sparse

from .kernels import eigenvalue_tolerance
from .network import chunk_rows, neuron_slices

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


def certify(X: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float) -> Certificate:
    """One pass over neurons: H(W(0)) and the certified bound E for radius R."""
    n = X.shape[0]
    m = W0.shape[0]
    G = X @ X.T
    SS = np.zeros((n, n))
    AA = np.zeros((n, n))
    cnt = np.zeros(n)
    active = []
    chunk = chunk_rows(n, working_memory_mb, bytes_per_entry=24)
    for sl in neuron_slices(m, chunk):
        P = W0[sl] @ X.T
        S = (P >= 0).astype(np.float32)
        A = (np.abs(P) <= R).astype(np.float32)
        SS += S.T @ S
        AA += A.T @ A
        cnt += A.sum(axis=0, dtype=np.float64)
        active.append(sl.start + np.flatnonzero(A.any(axis=1)))
    H0 = G * SS / m
    E = np.abs(G) * (cnt[:, None] + cnt[None, :] - AA) / m
    wH, VH = np.linalg.eigh(H0)
    wE, VE = np.linalg.eigh(E)
    return Certificate(H0=H0, E=E, lam_max_E=float(wE[-1]), lam_min_H0=float(wH[0]),
                       v_min_H0=VH[:, 0], v_perron=np.abs(VE[:, -1]), counts=cnt, SS=SS,
                       active=np.concatenate(active), tol=eigenvalue_tolerance(H0, E))


def _attack_pass(X: np.ndarray, G: np.ndarray, W0: np.ndarray, R: float, v: np.ndarray,
                 sign: float, working_memory_mb: float) -> np.ndarray:
    """Best per-neuron pushes for the objective sign·vᵀΔHv.

    ``W0`` holds only the neurons that can change a sign; returns S'ᵀS' − SᵀS over
    them, so H(W) = G ∘ (SᵀS of W(0) + returned change)/m.
    """
    n = X.shape[0]
    m, d = W0.shape
    SS = np.zeros((n, n))
    chunk = chunk_rows(n, working_memory_mb, bytes_per_entry=160)
    shrink = 1.0 - 8 * _EPS  # keeps ‖R·u‖ ≤ R after rounding
    for sl in neuron_slices(m, chunk):
        Wc = W0[sl]
        P = Wc @ X.T
        S = P >= 0
        A = np.abs(P) <= R
        Sv = S * v
        base = np.einsum("ki,ki->k", Sv @ G, Sv)
        zx = Sv @ G  # z_k·x_i
        d_on = np.where(S, -1.0, 1.0)  # push direction that flips sign i: +x_i turns on
        gain1 = sign * (2.0 * d_on * v * zx + v * v)  # first-order gain of flipping i alone
        gain1 = np.where(A, gain1, -np.inf)
        best_i = np.argmax(gain1, axis=1)
        has = np.isfinite(gain1[np.arange(Wc.shape[0]), best_i])
        U1 = d_on[np.arange(Wc.shape[0]), best_i][:, None] * X[best_i]
        wts = np.where(np.isfinite(gain1) & (gain1 > 0), gain1 * d_on, 0.0)
        U2 = wts @ X
        cands = [U1, U2]
        best_gain = np.zeros(Wc.shape[0])
        best_U = np.zeros((Wc.shape[0], d))
        for U in cands:
            nu = np.linalg.norm(U, axis=1)
            ok = has & (nu > 0)
            Uu = np.where(ok[:, None], U / np.where(nu > 0, nu, 1.0)[:, None], 0.0) * (R * shrink)
            Sc = ((Wc + Uu) @ X.T) >= 0
            q = Sc * v
            val = sign * (np.einsum("ki,ki->k", q @ G, q) - base)
            better = ok & (val > best_gain)
            best_gain = np.where(better, val, best_gain)
            best_U[better] = Uu[better]
        Sf = (((Wc + best_U) @ X.T) >= 0).astype(np.float32)  # the W actually tried
        S32 = S.astype(np.float32)
        SS += Sf.T @ Sf - S32.T @ S32
    return SS


@dataclass
class Attack:
    norm_dH: float  # largest ‖H(W) − H(W(0))‖₂ found
    lam_min: float  # smallest λ_min(H(W)) found


def attack(X: np.ndarray, W0: np.ndarray, R: float, cert: Certificate, iterations: int,
           working_memory_mb: float) -> Attack:
    """Search the ball for large ‖ΔH‖₂ and small λ_min(H(W)) (lower/upper bounds)."""
    m = W0.shape[0]
    G = X @ X.T
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
    G = np.abs(X @ X.T)
    g = G.sum(axis=1)
    k_cap = int(np.ceil(target * m))
    chunk = chunk_rows(n, working_memory_mb, bytes_per_entry=24)
    if k_cap > m:
        cap = np.inf
    else:  # per input, the k_cap-th smallest |w·x_i|: the diagonal bound's cap
        keep = np.empty((0, n))
        for sl in neuron_slices(m, chunk):
            both = np.vstack([keep, np.abs(W0[sl] @ X.T)])
            kk = min(k_cap, both.shape[0])
            keep = np.partition(both, kk - 1, axis=0)[:kk]
        cap = float(keep.max(axis=0).min()) if keep.shape[0] >= k_cap else np.inf
        del keep
    rows, cols, vals = [], [], []
    for sl in neuron_slices(m, chunk):
        absP = np.abs(W0[sl] @ X.T)
        k, i = np.nonzero(absP <= cap)
        rows.append((k + sl.start).astype(np.int64))
        cols.append(i.astype(np.int32))
        vals.append(absP[k, i])
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
