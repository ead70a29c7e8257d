"""The NTK model's Gram matrix, computed chunk by chunk over neurons.

H_ij(W) = (x_i·x_j)/m · Σ_k 1{w_k·x_i ≥ 0} 1{w_k·x_j ≥ 0},  i.e.
H = (X Xᵀ) ∘ (Sᵀ S)/m with S = 1{W Xᵀ ≥ 0} (m × n).

Sᵀ S is a matrix of integer counts: it is formed in float32, which is exact for
0/1 products up to 2^24 terms, one neuron chunk at a time (chunks never exceed
2^24 neurons) and accumulated in float64, which stays exact up to 2^53. Memory
is bounded by the working-memory budget, not by m (as in scikit-learn's
``pairwise_distances_chunked``).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: float32 holds every integer up to 2^24 exactly
MAX_EXACT_F32 = 1 << 24
DEFAULT_WORKING_MEMORY_MB = 256


def chunk_rows(n_cols: int, working_memory_mb: float, bytes_per_entry: int = 32) -> int:
    """Neurons per chunk so that a few (chunk × n_cols) work arrays fit the budget."""
    per_row = max(1, n_cols) * bytes_per_entry
    rows = int(working_memory_mb * 2**20 // per_row)
    return int(min(max(rows, 64), MAX_EXACT_F32))


def neuron_slices(m: int, chunk: int) -> Iterator[slice]:
    for start in range(0, m, chunk):
        yield slice(start, min(m, start + chunk))


_U32 = float(np.finfo(np.float32).eps) / 2


def float32_error_bound(Wc: np.ndarray, X: np.ndarray) -> np.float32:
    """A bound on |P₃₂ − P₆₄| for P = W Xᵀ formed from float32 copies: rounding of both
    factors and of a sum of d products is at most (d + 2)·u₃₂·‖w_k‖·‖x_i‖ (Cauchy–Schwarz),
    doubled for safety."""
    d = X.shape[1]
    return np.float32(2 * (d + 2) * _U32 * float(np.sqrt(np.einsum("ij,ij->i", Wc, Wc).max()))
                      * float(np.sqrt(np.einsum("ij,ij->i", X, X).max())))


def undecided_entries(P: np.ndarray, center: float, tau: np.float32) -> np.ndarray:
    """Flat indices of the entries of P within tau of ±center (two passes, no float temporaries)."""
    if center == 0:
        mask = P <= tau
        mask &= P >= -tau
    else:
        c = np.float32(center)
        mask = P <= c + tau
        mask &= P >= c - tau
        hit = np.flatnonzero(mask)
        mask = P >= -c - tau
        mask &= P <= -c + tau
        return np.union1d(hit, np.flatnonzero(mask))
    return np.flatnonzero(mask)


def exact_entries(Wc: np.ndarray, X: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """The float64 values of the flat entries ``idx`` of W Xᵀ."""
    k, i = np.divmod(idx, n)
    return np.einsum("ij,ij->i", Wc[k], X[i])


def signs32(Wc: np.ndarray, X: np.ndarray, X32: np.ndarray) -> np.ndarray:
    """S = 1{W Xᵀ ≥ 0} as float32, with the same signs as the float64 product.

    The product is formed in float32 (half the memory traffic of float64); an entry
    farther than :func:`float32_error_bound` from 0 has the same sign in both precisions,
    and the few others (a handful per million) are recomputed in float64. S is written
    over the product's own buffer, so a chunk allocates one m × n float32 array.
    """
    P = Wc.astype(np.float32) @ X32.T
    idx = undecided_entries(P, 0.0, float32_error_bound(Wc, X))
    exact = exact_entries(Wc, X, idx, P.shape[1])
    np.greater_equal(P, 0, out=P, casting="unsafe")
    P.ravel()[idx] = exact >= 0
    return P


def activation_counts(X: np.ndarray, W: np.ndarray,
                      working_memory_mb: float = DEFAULT_WORKING_MEMORY_MB,
                      dtype: type | None = np.float64) -> np.ndarray:
    """Sᵀ S = [#{k : w_k·x_i ≥ 0 and w_k·x_j ≥ 0}]_ij, exactly, as float64.

    Pre-activations are float32 products whose undecidable signs are settled in float64,
    the counts float32 products (exact below 2^24 per chunk) summed in float64.
    """
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    X32 = X.astype(np.float32)
    n = X.shape[0]
    chunk = chunk_rows(n, working_memory_mb, bytes_per_entry=12)
    out = None
    for sl in neuron_slices(W.shape[0], chunk):
        S = signs32(W[sl], X, X32)
        if out is None and sl.stop == W.shape[0]:  # one chunk: its float32 counts are exact
            out = S.T @ S
        else:
            out = (S.T @ S).astype(np.float64) if out is None else out + S.T @ S
    if out is None:
        out = np.zeros((n, n))
    return out if dtype is None else out.astype(dtype, copy=False)


def gram_matrix(X: np.ndarray, W: np.ndarray,
                working_memory_mb: float = DEFAULT_WORKING_MEMORY_MB) -> np.ndarray:
    """H(W) of the NTK model for inputs X (n × d) and first-layer weights W (m × d)."""
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    if X.ndim != 2 or W.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"gram_matrix needs X (n×d) and W (m×d); got {X.shape} and {W.shape}")
    m = W.shape[0]
    H = X @ X.T
    H *= activation_counts(X, W, working_memory_mb, dtype=None)
    H /= m
    return H


def memory_limit_bytes() -> int:
    """Physical memory of this machine (the ceiling for any single run)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def require_memory(estimate_bytes: float, what: str) -> None:
    """Refuse, before allocating, a run whose unavoidable memory exceeds 90% of the machine's."""
    from .errors import UserError

    limit = 0.9 * memory_limit_bytes()
    if estimate_bytes > limit:
        raise UserError(f"{what} needs about {estimate_bytes / 2**30:.3g} GiB of memory, more than this "
                        f"machine's {limit / 2**30:.3g} GiB; lower the width or the input size.")


class NTKNetwork:
    """u_i = (1/√m) Σ_k a_k σ(w_k·x_i) with a_k = ±1 fixed; loss L = ½‖u − y‖²; gradient flow on W.

    Parameters are a flat vector θ = vec(W) (m·d), so the integrators in ``dynamics``
    see one array. Gradients are matrix products: ∇_W L = (1/√m) diag(a) (S ∘ r)ᵀ... X,
    with S = 1{W Xᵀ ≥ 0} and r = u − y; no loop over neurons.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, a: np.ndarray,
                 working_memory_mb: float = DEFAULT_WORKING_MEMORY_MB):
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.a = np.asarray(a, dtype=np.float64)
        self.m = self.a.size
        self.d = self.X.shape[1]
        self.G = self.X @ self.X.T
        self.wm = working_memory_mb
        self.calls = 0  # gradient evaluations, for reporting
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def W(self, theta: np.ndarray) -> np.ndarray:
        return theta.reshape(self.m, self.d)

    def _pre(self, theta: np.ndarray) -> np.ndarray:
        """W Xᵀ (m × n) for θ, reused while θ is unchanged (the integrator asks for the
        gradient, the Jacobian-vector product, the residual and H at the same point)."""
        c = self._cache
        if c is None or not np.array_equal(c[0], theta):
            self._cache = c = (theta.copy(), self.W(theta) @ self.X.T)
        return c[1]

    def output(self, theta: np.ndarray) -> np.ndarray:
        return (np.maximum(self._pre(theta), 0.0).T @ self.a) / np.sqrt(self.m)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return self.output(theta) - self.y

    def rhs(self, theta: np.ndarray) -> np.ndarray:
        """−∇L(θ): dw_k/dt = −(1/√m) a_k Σ_i r_i 1{w_k·x_i ≥ 0} x_i."""
        self.calls += 1
        P = self._pre(theta)  # m × n
        r = (np.maximum(P, 0.0).T @ self.a) / np.sqrt(self.m) - self.y
        grad = ((P >= 0) * r) @ self.X  # m × d
        grad *= (self.a / np.sqrt(self.m))[:, None]
        return -grad.ravel()

    def jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """J v: the first-order change of u along the parameter direction v."""
        P = self._pre(theta)
        Q = self.W(v) @ self.X.T
        return (((P >= 0) * Q).T @ self.a) / np.sqrt(self.m)

    def gram(self, theta: np.ndarray) -> np.ndarray:
        """H(W) = J Jᵀ (a_k² = 1)."""
        # float32 counts are exact up to 2^24 neurons; beyond, count in float64
        S = (self._pre(theta) >= 0).astype(np.float32 if self.m <= MAX_EXACT_F32 else np.float64)
        return self.G * (S.T @ S).astype(np.float64) / self.m


class TwoLayerNetwork:
    """f(x) = Σ_k a_k σ(b_k·x) (no 1/m factor), both layers trained on R̂ = (1/2n)‖f(X) − y‖².

    θ = (a, vec(B)). Along the flow the outputs obey u' = −K (u − y) with
    K = J Jᵀ/n = (Φ Φᵀ + (X Xᵀ) ∘ (S diag(a²) Sᵀ))/n, Φ = σ(X Bᵀ), S = 1{X Bᵀ ≥ 0}:
    its largest eigenvalue grows linearly with m (Φ Φᵀ is a sum of m terms), which is
    the stiffness the integrator's step cap follows.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, m: int):
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.n, self.d = self.X.shape
        self.m = m
        self.G = self.X @ self.X.T
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return theta[: self.m], theta[self.m:].reshape(self.m, self.d)

    @staticmethod
    def join(a: np.ndarray, B: np.ndarray) -> np.ndarray:
        return np.concatenate([a, B.ravel()])

    def _pre(self, theta: np.ndarray) -> np.ndarray:
        c = self._cache
        if c is None or not np.array_equal(c[0], theta):
            self._cache = c = (theta.copy(), self.split(theta)[1] @ self.X.T)  # m × n
        return c[1]

    def output(self, theta: np.ndarray) -> np.ndarray:
        a, _ = self.split(theta)
        return np.maximum(self._pre(theta), 0.0).T @ a

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return self.output(theta) - self.y

    def rhs(self, theta: np.ndarray) -> np.ndarray:
        a, _ = self.split(theta)
        P = self._pre(theta)
        relu = np.maximum(P, 0.0)
        r = relu.T @ a - self.y
        ga = relu @ r / self.n
        gB = (((P >= 0) * r) @ self.X) * (a / self.n)[:, None]
        return -np.concatenate([ga, gB.ravel()])

    def jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        a, _ = self.split(theta)
        va, vB = self.split(v)
        P = self._pre(theta)
        return np.maximum(P, 0.0).T @ va + ((P >= 0) * (vB @ self.X.T)).T @ a

    def gram(self, theta: np.ndarray) -> np.ndarray:
        """K = J Jᵀ/n: u' = −K (u − y) along the flow."""
        a, _ = self.split(theta)
        P = self._pre(theta)
        relu = np.maximum(P, 0.0)
        S = (P >= 0) * a[:, None]
        return (relu.T @ relu + self.G * (S.T @ S)) / self.n
