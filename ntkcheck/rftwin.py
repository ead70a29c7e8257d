"""The random-feature twin ã_t of a two-layer network, in closed form.

With the features B_0 frozen, Φ_ik = σ(b_k(0)·x_i) (n × m) and R̂_n(a) = (1/2n)‖Φa − y‖²,
gradient flow in a alone from ã_0 = a_0 is linear: ã′ = −(1/n)Φᵀ(Φã − y). With the thin SVD
Φ = UΣVᵀ (k = min(n, m) singular values) and α = Vᵀã, β = Σα − Uᵀy (the residual's part in
range(U)):

    β(t) = e^{−tΣ²/n} β_0,    α(t) = α_0 − φ(t) β_0,    φ_j(t) = (1 − e^{−tσ_j²/n})/σ_j,

and the part of a_0 orthogonal to range(V) never moves. So
ã_t = a_0 − V φ(t) β_0, ‖ã_t‖² = ‖a_0⊥‖² + ‖α(t)‖², and
R̂_n(ã_t) = (‖e^{−tΣ²/n}β_0‖² + ‖y⊥‖²)/(2n), y⊥ the part of y outside range(U); exact at every
t (σ_j = 0 gives φ_j = 0: those directions do not move). φ_j ≤ min(1/σ_j, σ_j t/n) ≤ √(t/n), and
each α_j(t) is monotone in t, so over an interval |α_j| is largest at one of its ends — which
makes the supremum of ‖ã_t‖ over an interval exact from its two ends (:meth:`norm_envelope`).
"""
from __future__ import annotations

import numpy as np

_EPS = np.finfo(float).eps


class RFTwin:
    """ã_t for features Φ (n × m), start a_0 and labels y."""

    def __init__(self, Phi: np.ndarray, a0: np.ndarray, y: np.ndarray):
        self.n, self.m = Phi.shape
        U, s, Vt = np.linalg.svd(Phi, full_matrices=False)
        self.U, self.s, self.Vt = U, s, Vt
        self.alpha0 = Vt @ a0
        self.perp2 = float(np.sum((a0 - Vt.T @ self.alpha0) ** 2))  # a_0's part outside range(V)
        uy = U.T @ y
        self.beta0 = s * self.alpha0 - uy
        self.y_perp2 = float(np.sum((y - U @ uy) ** 2))
        self.rate = s * s / self.n
        self.a0 = a0
        # rounding of the closed form: the SVD's backward error (k·u·‖Φ‖₂) moves α and β by
        # about that relative to their scale; an allowance of 64·(n + m)·u of the largest
        # norm involved, not a proof
        self.rel_error = 64 * (self.n + self.m) * _EPS

    def phi(self, t: np.ndarray) -> np.ndarray:
        """φ_j(t) for times t (rows) and singular values (columns)."""
        t = np.asarray(t, dtype=np.float64)
        pos = self.s > 0
        out = np.zeros((t.size, self.s.size))
        out[:, pos] = -np.expm1(-np.outer(t, self.rate[pos])) / self.s[pos]
        return out

    def alpha(self, t: np.ndarray) -> np.ndarray:
        return self.alpha0 - self.phi(t) * self.beta0

    def a(self, t: float) -> np.ndarray:
        """ã_t itself (m entries)."""
        return self.a0 - self.move(t)

    def move(self, t: float) -> np.ndarray:
        """a_0 − ã_t, formed without a_0 (whose entries' rounding can exceed the difference of
        two flows that both moved by it)."""
        return self.Vt.T @ (self.phi(np.array([t]))[0] * self.beta0)

    def a_at(self, t: np.ndarray) -> np.ndarray:
        """ã_t at each time (rows; len(t) × m)."""
        return self.a0 - (self.phi(t) * self.beta0) @ self.Vt

    def norms(self, t: np.ndarray) -> np.ndarray:
        """‖ã_t‖ at each time."""
        return self.norm_profile(t)[0]

    def norm_envelope(self, t: np.ndarray) -> np.ndarray:
        """sup of ‖ã_s‖ over s ∈ [t_i, t_{i+1}] for consecutive times (exact: each α_j is
        monotone in s)."""
        return self.norm_profile(t)[1]

    def norm_profile(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(‖ã_t‖ at each time, its supremum between consecutive times) from one evaluation of α."""
        norms, _, sup = self.norm_bounds(t)
        return norms, sup

    def norm_range(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inf, sup) of ‖ã_s‖ over s between consecutive times."""
        return self.norm_bounds(t)[1:]

    def norm_bounds(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """‖ã_t‖ at each time, and its infimum and supremum between consecutive times, exact from
        one evaluation of α: a monotone α_j is largest in absolute value at an end, smallest at an
        end or 0 where it changes sign."""
        al = self.alpha(t)
        al2 = al * al
        lo2 = np.where(al[:-1] * al[1:] > 0, np.minimum(al2[:-1], al2[1:]), 0.0)
        hi2 = np.maximum(al2[:-1], al2[1:])
        return (np.sqrt(self.perp2 + al2.sum(axis=1)), np.sqrt(self.perp2 + lo2.sum(axis=1)),
                np.sqrt(self.perp2 + hi2.sum(axis=1)))

    def risk(self, t: np.ndarray) -> np.ndarray:
        """R̂_n(ã_t, B_0) = (1/2n)‖Φã_t − y‖² at each time."""
        t = np.asarray(t, dtype=np.float64)
        b = np.exp(-np.outer(t, self.rate)) * self.beta0
        return (np.einsum("tj,tj->t", b, b) + self.y_perp2) / (2 * self.n)
