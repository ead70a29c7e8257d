"""Single eigenpairs of symmetric matrices from LAPACK's syevr: the certificate and the attack
need only the extreme ones; and a Cholesky test of whether λ_min lies below a value."""
from __future__ import annotations

import numpy as np


def eigenvalue_at(M: np.ndarray, index: int, vector: bool = False):
    """The eigenvalue of the symmetric M at ``index`` in increasing order (with its unit
    eigenvector if ``vector``), from LAPACK's syevr on that index alone: the tridiagonal
    reduction is shared, but only one eigenpair is found and back-transformed instead of n."""
    from scipy import linalg  # (here: importing scipy.linalg costs ~0.1 s at start-up)

    i = index % M.shape[0]
    if not vector:
        return float(linalg.eigh(M, eigvals_only=True, subset_by_index=[i, i], driver="evr")[0])
    w, V = linalg.eigh(M, subset_by_index=[i, i], driver="evr")
    return float(w[0]), V[:, 0]


def may_lie_below(M: np.ndarray, mu: float) -> bool:
    """Whether λ_min(M) < mu is possible, for a symmetric M: False when M − mu·I has a Cholesky
    factor (LAPACK's dpotrf, about a third of the time of :func:`eigenvalue_at` at n = 1000),
    which shows M − mu·I + E positive definite for Cholesky's backward error E, i.e.
    λ_min(M) > mu − ‖E‖. The caller raises mu by a rounding allowance where that matters.
    (M itself is not changed.)"""
    from scipy.linalg.lapack import dpotrf

    A = np.array(M, order="F")  # (a copy dpotrf may overwrite)
    A.flat[:: A.shape[0] + 1] -= mu
    return dpotrf(A, lower=1, clean=0, overwrite_a=1)[1] != 0


def extreme_eigenvalues(M: np.ndarray, vector_at_top: bool | None = None):
    """(λ_min, λ_max) of the symmetric M and, if ``vector_at_top`` is not None, the unit
    eigenvector of λ_max (True) or of λ_min (False)."""
    if vector_at_top is None:
        return eigenvalue_at(M, 0), eigenvalue_at(M, -1), None
    if vector_at_top:
        hi, v = eigenvalue_at(M, -1, vector=True)
        return eigenvalue_at(M, 0), hi, v
    lo, v = eigenvalue_at(M, 0, vector=True)
    return lo, eigenvalue_at(M, -1), v


def bordered_extremes(M: np.ndarray, T: np.ndarray, vector_at_top: bool | None = None):
    """:func:`extreme_eigenvalues` of a symmetric M that vanishes outside the rows and columns
    ``T`` (M[N, N] = 0 for the other indices N), as Lemma 2.3's ΔH does (only the inputs with
    a changed sign have rows or columns in it). With Q₂R = M[N, T] (QR), the range of M lies
    in span{e_T} ⊕ span(Q₂), on which M is K = [[M_TT, Rᵀ], [R, 0]]: M = Q K Qᵀ exactly, so
    M's nonzero eigenvalues are K's, and its extreme ones too — the other eigenvalues of M
    are 0, which lies between K's extremes (K's zero diagonal block makes it indefinite when
    R ≠ 0, and singular when R = 0). One eigensolve of the 2|T| × 2|T| matrix K instead of
    full ones (Rayleigh–Ritz on an invariant subspace); the eigenvector is Q u for K's u.
    Falls back to :func:`extreme_eigenvalues` where this does not pay (2|T| ≥ n), and where M
    is not of that shape."""
    n = M.shape[0]
    T = np.asarray(T, dtype=np.intp)
    if T.size == 0 or 2 * T.size >= n:
        return extreme_eigenvalues(M, vector_at_top)
    N = np.setdiff1d(np.arange(n), T, assume_unique=True)
    # M[N, N] = 0 iff every nonzero of M lies in the rows or the columns T (counts over M, its
    # rows T and its columns T: no gather of the (n − |T|)² block, ~4× cheaper at n = 1000)
    if np.count_nonzero(M) != (np.count_nonzero(M[T]) + np.count_nonzero(M[:, T])
                               - np.count_nonzero(M[np.ix_(T, T)])):
        return extreme_eigenvalues(M, vector_at_top)
    Q2, R = np.linalg.qr(M[np.ix_(N, T)])  # (|N| > |T|: Q2 is |N| × |T|, R is |T| × |T|)
    t = T.size
    K = np.zeros((2 * t, 2 * t))
    K[:t, :t] = M[np.ix_(T, T)]
    K[t:, :t] = R
    K[:t, t:] = R.T
    w, U = np.linalg.eigh(K)
    if vector_at_top is None:
        return float(w[0]), float(w[-1]), None
    u = U[:, -1 if vector_at_top else 0]
    v = np.zeros(n)
    v[T] = u[:t]
    v[N] = Q2 @ u[t:]
    return float(w[0]), float(w[-1]), v / np.linalg.norm(v)
