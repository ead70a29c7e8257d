"""Random-feature risk R(a, B) = E_ρ(Σ_k a_k σ(b_k·x) − f*(x))², computed exactly.

Uniform ρ on S^{d−1}: R = aᵀKa − 2aᵀr + ‖f*‖² with K_kl = κ1(b_k·b_l)/d (closed form)
and r, ‖f*‖² from ``targets`` (one- and two-dimensional quadrature). K is never
stored: aᵀKa is accumulated over row blocks of K under the working-memory budget, so
memory grows like m, not m². Empirical ρ (a data set): R = ‖Φa − f*(X)‖²/n with
Φ = σ(XBᵀ), exactly.

The best witness, min R(a, B) over ‖a‖₂ ≤ ρ, is a trust-region problem. It is solved
exactly in the eigenbasis of K (uniform ρ, m up to a limit) or of ΦᵀΦ/n (empirical
ρ, any m: rank ≤ n), and its Lagrangian dual gives a certified lower bound
min R ≥ ‖f*‖² − r̃ᵀ(Λ + λI)⁻¹r̃ − λρ² for every λ ≥ 0, which is what refutes a claim.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import kappa1
from .network import chunk_rows, neuron_slices

_EPS = np.finfo(float).eps


def quad_form(B: np.ndarray, a: np.ndarray, d: int, working_memory_mb: float) -> float:
    """aᵀKa with K_kl = κ1(b_k·b_l)/d, block by block (memory O(chunk·m))."""
    m = B.shape[0]
    total = 0.0
    for sl in neuron_slices(m, chunk_rows(m, working_memory_mb, bytes_per_entry=24)):
        total += float(a[sl] @ (kappa1(B[sl] @ B.T) @ a))
    return total / d


def kernel_matrix(B: np.ndarray, d: int) -> np.ndarray:
    return kappa1(B @ B.T) / d


@dataclass
class TrustRegion:
    a: np.ndarray  # the minimiser (feasible: ‖a‖ ≤ radius)
    value: float  # R at a
    lower: float  # certified lower bound on min R over the ball (Lagrangian dual)
    lam: float  # multiplier


def trust_region(eigvals: np.ndarray, eigvecs: np.ndarray, r: np.ndarray, c: float,
                 radius: float) -> TrustRegion:
    """min aᵀKa − 2rᵀa + c s.t. ‖a‖₂ ≤ radius, with K = V diag(λ) Vᵀ ⪰ 0 given.

    Works in the eigenbasis: a(μ) = V (Λ + μI)⁻¹ Vᵀ r, μ ≥ 0 chosen by bisection on
    the secular equation ‖a(μ)‖ = radius (or μ = 0 when the unconstrained solution is
    inside). The dual bound at μ is valid for any μ ≥ 0, optimal or not.
    """
    lam = np.clip(eigvals, 0.0, None)
    rt = eigvecs.T @ r
    # components of r outside the range of V (ΦᵀΦ case) add nothing to min R's linear part
    def norm_a(mu):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(lam + mu > 0, rt / (lam + mu), 0.0)
        return float(np.linalg.norm(z)), z

    nrm0, z0 = norm_a(0.0)
    if nrm0 <= radius and np.all(lam > 0):
        mu, z = 0.0, z0
    else:
        lo, hi = 0.0, max(float(np.linalg.norm(rt)) / radius, 1e-300)
        while norm_a(hi)[0] > radius:
            hi *= 2
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if norm_a(mid)[0] > radius:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-15 * hi:
                break
        mu = hi
        z = norm_a(mu)[1]
    a = eigvecs @ z
    value = float(z @ (lam * z) - 2 * rt @ z + c)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(lam + mu > 0, rt * rt / (lam + mu), 0.0)
    lower = float(c - inv.sum() - mu * radius**2) if mu > 0 or np.all(lam > 0) else -np.inf
    return TrustRegion(a=a, value=value, lower=lower, lam=mu)
