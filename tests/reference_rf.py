"""Slow, obviously-correct references for the random-feature family. Nothing here imports ntkcheck.

Everything is an adaptive quadrature (scipy.integrate.quad) in angles, split where the
integrand is not smooth, in the direct form of the definitions:

* ``phi(s, tau, d)``: Φ(s, τ) = E_w[σ(sτ + √((1−s²)(1−τ²)) w)], w one coordinate of a uniform
  point of S^{d−2}: σ(A + Bw) averaged in closed form (d ≥ 3) or over w = ±1 (d = 2).
* ``F(g, s, d)``: F(s) = E_b[g(b·v) σ(b·x)] with x·v = s, = E_{t~p_d}[g(t) Φ(s, t)].
* ``norm2_single(g, d)``: ‖F(x·v)‖²_ρ = E_s[F(s)²].
* ``r_single(g, tau, d)``: E_x[F(x·v) σ(b·x)] with b·v = τ, = E_s[F(s) Φ(s, τ)].
* ``kappa1_extended(rho)``: κ1(ρ) = (√(1 − ρ²) + ρ(π − arccos ρ))/(2π) in x87 extended precision
  (np.longdouble, 64-bit significand), ρ clipped to [−1, 1].

E_{t~p_d}[h(t)] = ∫_0^π h(cos θ) sin^{d−2}θ dθ / ∫_0^π sin^{d−2}θ dθ: no endpoint singularity.
Φ is not smooth where s² + τ² = 1 (and at d = 2 where sτ ± √(…) = 0): those angles are passed
to quad as break points, as is t = 0 (where sign jumps and σ kinks).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import integrate, special

TOL = dict(epsabs=1e-15, epsrel=1e-13, limit=400)


def _density_constant(k: int) -> float:
    """p_k(t) = C (1 − t²)^{(k−3)/2}: C = Γ(k/2)/(√π Γ((k−1)/2))."""
    return math.gamma(k / 2) / (math.sqrt(math.pi) * math.gamma((k - 1) / 2))


def phi(s: float, tau: float, d: int) -> float:
    A = s * tau
    Bc = math.sqrt(max((1 - s * s) * (1 - tau * tau), 0.0))
    if Bc == 0.0:
        return max(A, 0.0)
    if d == 2:  # w = ±1 with probability 1/2 each
        return 0.5 * (max(A + Bc, 0.0) + max(A - Bc, 0.0))
    c = -A / Bc  # σ(A + Bw) > 0 iff w > c
    if c >= 1:
        return 0.0
    if c <= -1:
        return A
    k = d - 1  # w ~ p_k: P(w > c) and E[w 1{w > c}]
    beta = (k - 3) / 2
    C = _density_constant(k)
    # P(w > c) = P(u > (1+c)/2), u = (1+w)/2 ~ Beta((k−1)/2, (k−1)/2)
    tail = special.betaincc((k - 1) / 2, (k - 1) / 2, (1 + c) / 2)
    # ∫_c^1 w C (1−w²)^β dw = C (1 − c²)^{β+1} / (2(β+1))
    first = C * (1 - c * c) ** (beta + 1) / (2 * (beta + 1))
    return A * tail + Bc * first


def _sphere_mean(h, d: int, breaks_t=()) -> float:
    """E_{t~p_d}[h(t)] in θ = arccos t, split at the given t."""
    Z = math.sqrt(math.pi) * math.gamma((d - 1) / 2) / math.gamma(d / 2)
    pts = sorted({math.acos(min(1.0, max(-1.0, b))) for b in breaks_t} - {0.0, math.pi})
    f = lambda th: h(math.cos(th)) * math.sin(th) ** (d - 2)  # noqa: E731
    edges = [0.0] + pts + [math.pi]
    total = 0.0
    with warnings.catch_warnings():  # at 1e-15 quad often reports that rounding limits it
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        for lo, hi in zip(edges[:-1], edges[1:]):
            total += integrate.quad(f, lo, hi, **TOL)[0]
    return total / Z


def _breaks(s: float, d: int) -> list[float]:
    c = math.sqrt(max(1 - s * s, 0.0))
    return [0.0, c, -c]


def F(g, s: float, d: int) -> float:
    return _sphere_mean(lambda t: g(t) * phi(s, t, d), d, _breaks(s, d))


def norm2_single(g, d: int) -> float:
    return _sphere_mean(lambda s: F(g, s, d) ** 2, d, [0.0])


def r_single(g, tau: float, d: int) -> float:
    return _sphere_mean(lambda s: F(g, s, d) * phi(s, tau, d), d, _breaks(tau, d))


def phi_monte_carlo(s: float, tau: float, d: int, n: int, seed: int) -> tuple[float, float]:
    """Φ(s, τ) by Monte Carlo (mean, standard error): w is one coordinate of a uniform point
    of S^{d−2} (d ≥ 3) or ±1 (d = 2)."""
    rng = np.random.default_rng(seed)
    if d == 2:
        w = rng.choice([-1.0, 1.0], n)
    else:
        u = rng.standard_normal((n, d - 1))
        w = u[:, 0] / np.linalg.norm(u, axis=1)
    v = np.maximum(s * tau + math.sqrt((1 - s * s) * (1 - tau * tau)) * w, 0.0)
    return float(v.mean()), float(v.std() / math.sqrt(n))


def trust_region_min(K: np.ndarray, r: np.ndarray, c: float, radius: float) -> float:
    """min aᵀKa − 2rᵀa + c over ‖a‖₂ ≤ radius (K ⪰ 0) in K's eigenbasis: a(μ) = (K + μI)⁻¹r
    with μ ≥ 0 the root of ‖a(μ)‖ = radius by 300 bisections (or μ = 0 inside the ball)."""
    lam, V = np.linalg.eigh(K)
    lam = np.maximum(lam, 0.0)
    q = V.T @ r

    def norm(mu):
        return math.sqrt(sum((qi / (li + mu)) ** 2 for qi, li in zip(q, lam) if li + mu > 0))

    mu = 0.0
    if lam.min() <= 0 or norm(0.0) > radius:
        lo, hi = 0.0, 1.0
        while norm(hi) > radius:
            hi *= 2
        for _ in range(300):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if norm(mid) > radius else (lo, mid)
        mu = hi
    z = np.array([qi / (li + mu) if li + mu > 0 else 0.0 for qi, li in zip(q, lam)])
    return float(z @ (lam * z) - 2 * q @ z + c)


def kappa1_extended(rho):
    """κ1 of the given float64 cosines, evaluated in np.longdouble (unit roundoff 5.4e-20 on x86)."""
    r = np.clip(np.asarray(rho, dtype=np.longdouble), -1, 1)
    pi = np.arccos(np.longdouble(-1))
    return (np.sqrt((1 - r) * (1 + r)) + r * (pi - np.arccos(r))) / (2 * pi)
