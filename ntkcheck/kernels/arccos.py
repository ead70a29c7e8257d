"""Infinite-width kernels: H∞ and the arc-cosine kernels.

For w ~ N(0, I) and unit u, v with ρ = u·v:

* κ0(ρ) = E[1{u·w ≥ 0} 1{v·w ≥ 0}] = (π − arccos ρ) / (2π)
* κ1(ρ) = E[σ(u·w) σ(v·w)]         = (√(1−ρ²) + (π − arccos ρ) ρ) / (2π)

and H∞_ij = (x_i·x_j) κ0(cos∠(x_i, x_j)) (ReLU, [DZPS] Section 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = np.finfo(np.float64).eps


def kappa0(rho: np.ndarray) -> np.ndarray:
    """Arc-cosine kernel of degree 0: P(u·w ≥ 0 and v·w ≥ 0) for cos∠(u, v) = ρ."""
    rho = np.clip(np.asarray(rho, dtype=np.float64), -1.0, 1.0)
    return (np.pi - np.arccos(rho)) / (2.0 * np.pi)


def kappa1(rho: np.ndarray) -> np.ndarray:
    """Arc-cosine kernel of degree 1: E[σ(u·w) σ(v·w)] for unit u, v with u·v = ρ."""
    rho = np.clip(np.asarray(rho, dtype=np.float64), -1.0, 1.0)
    return (np.sqrt(1.0 - rho * rho) + (np.pi - np.arccos(rho)) * rho) / (2.0 * np.pi)


def _cosines(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):  # (lambda0's eigensolver would fail with "did not converge")
        raise ValueError("h_infinity needs finite X")
    G = X @ X.T
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    if np.any(norms == 0):
        raise ValueError("h_infinity needs nonzero rows")
    C = np.clip(G / np.outer(norms, norms), -1.0, 1.0)
    np.fill_diagonal(C, 1.0)  # cos∠(x, x) = 1 exactly
    return G, C


def h_infinity(X: np.ndarray) -> np.ndarray:
    """H∞ for ReLU: H∞_ij = x_i·x_j · (π − arccos cos∠(x_i, x_j)) / (2π).

    Rows need not be unit vectors (the indicator σ' is 0-homogeneous).
    """
    G, C = _cosines(X)
    return G * kappa0(C)


def eigenvalue_tolerance(*mats: np.ndarray) -> float:
    """Floating-point allowance on the eigenvalues of symmetric n × n matrices formed in
    float64: 8 n u max_i Σ_j |M_ij| over the matrices (a bound on ‖M‖₂ times the
    eigensolver's backward error)."""
    n = mats[0].shape[0]
    return 8.0 * n * _EPS * max(float(np.abs(M).sum(axis=1).max()) for M in mats)


@dataclass(frozen=True)
class Lambda0:
    """λ0 = λ_min(H∞) with a bound on its floating-point error. It is usable as its value:
    ``float(lam)``, ``lam / 4``, ``2 * lam``, ``lam < 0.1`` (each gives a plain float or bool)."""

    value: float
    error: float
    vector: np.ndarray

    def __float__(self) -> float:
        return float(self.value)

    def __truediv__(self, other):
        return self.value / other

    def __rtruediv__(self, other):
        return other / self.value

    def __mul__(self, other):
        return self.value * other

    __rmul__ = __mul__

    def __add__(self, other):
        return self.value + other

    __radd__ = __add__

    def __sub__(self, other):
        return self.value - other

    def __rsub__(self, other):
        return other - self.value

    def __lt__(self, other):
        return self.value < float(other)

    def __le__(self, other):
        return self.value <= float(other)

    def __gt__(self, other):
        return self.value > float(other)

    def __ge__(self, other):
        return self.value >= float(other)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def certified_positive(self) -> bool:
        return self.value > self.error

    @property
    def reported(self) -> float:
        """λ0 as reported: 0 when it is below its own numerical error."""
        return self.value if self.certified_positive else 0.0


def h_infinity_error(X: np.ndarray) -> np.ndarray:
    """Entrywise bound on the floating-point error of :func:`h_infinity` for unit rows.

    A computed cosine ρ̂ is within δρ = (d + 8)·u of the exact one (dot product
    and normalisation), and H∞ is evaluated at ρ̂: the error of an entry is
    bounded by the variation of ρ κ0(ρ) over [ρ̂ − δρ, ρ̂ + δρ]. Near ρ = ±1 that
    variation behaves like √δρ (arccos has an infinite slope there), which is
    why the bound is not simply a multiple of machine epsilon.
    """
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    _, C = _cosines(X)
    dr = (d + 8) * _EPS
    lo = np.clip(C - dr, -1.0, 1.0)
    hi = np.clip(C + dr, -1.0, 1.0)
    # r·κ0(r) has one interior minimum on [-1, 0]; over an interval of width
    # ~1e-14 its variation is attained at the ends up to a second-order term,
    # which the added 4u covers.
    vals = np.stack([lo * kappa0(lo), hi * kappa0(hi), C * kappa0(C)])
    err = (vals.max(axis=0) - vals.min(axis=0)) + 4 * _EPS
    np.fill_diagonal(err, 4 * _EPS)  # the diagonal cosine is exactly 1
    return err


def lambda0(X: np.ndarray) -> Lambda0:
    """λ_min(H∞) with a rigorous-in-spirit error bound.

    error = ‖entrywise error of H∞‖_F (Weyl) + 4 n u ‖H∞‖₂ (backward error of
    the symmetric eigensolver).
    """
    from ..memory import require_memory

    n = X.shape[0]
    # H∞, its error matrix, the eigenvectors and the eigensolver's workspace: ~6 n × n arrays
    require_memory(48.0 * n * n, f"λ0 = λ_min(H∞) for n = {n} inputs")
    H = h_infinity(X)
    w, V = np.linalg.eigh(H)
    err = float(np.linalg.norm(h_infinity_error(X))) + 4.0 * n * _EPS * float(abs(w[-1]))
    return Lambda0(value=float(w[0]), error=err, vector=V[:, 0])
