"""Random-feature risk R(a, B) = E_ρ(Σ_k a_k σ(b_k·x) − f*(x))², computed exactly.

Uniform ρ on S^{d−1}: R = aᵀKa − 2aᵀr + ‖f*‖² with K_kl = κ1(b_k·b_l)/d (closed form)
and r, ‖f*‖² from ``targets`` (one- and two-dimensional quadrature). K is never
stored: aᵀKa is accumulated over square blocks of its upper triangle, so memory does not
grow with m. Empirical ρ (a data set): R = ‖Φa − f*(X)‖²/n with
Φ = σ(XBᵀ), exactly.

The best witness, min R(a, B) over ‖a‖₂ ≤ ρ, is a trust-region problem. It is solved
exactly in the eigenbasis of K (uniform ρ, m up to a limit) or of ΦᵀΦ/n (empirical
ρ, any m: rank ≤ n), and its Lagrangian dual gives a certified lower bound
min R ≥ ‖f*‖² − r̃ᵀ(Λ + λI)⁻¹r̃ − λρ² for every λ ≥ 0, which is what refutes a claim.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .kernels import kappa1

_EPS = np.finfo(float).eps


#: rows of the square blocks of the quadratic form: three float64 work blocks of 256² entries
#: (1.5 MiB) stay in a core's cache while arccos and sqrt go over them
QUAD_BLOCK = 256


def _kappa1_into(N: np.ndarray, T: np.ndarray, A: np.ndarray) -> np.ndarray:
    """2π·κ1(ρ) = √(1 − ρ²) + ρ(π − arccos ρ) = √(1 − ρ²) − N·arccos(N) into A, given the
    negated cosines N = −ρ (clipped in place; π − arccos ρ = arccos(−ρ) saves a pass); T is work
    space. arccos N = π/2 − arctan(N/√(1 − N²)): numpy's arctan takes about 0.56 of the time
    of its arccos here, and √(1 − N²) is needed anyway. (For a float64 N = 1 − δ next to ±1,
    N² rounds to 1 − 2δ, which is representable, so 1 − N² keeps its relative accuracy there.)
    At |N| = 1 the quotient is ±∞ and arctan gives ±π/2 (the caller silences the warning)."""
    np.clip(N, -1.0, 1.0, out=N)
    np.multiply(N, N, out=T)
    np.subtract(1.0, T, out=T)
    np.sqrt(T, out=T)  # √(1 − ρ²)
    np.divide(N, T, out=A)
    np.arctan(A, out=A)
    np.subtract(np.pi / 2, A, out=A)  # arccos N
    A *= N
    np.subtract(T, A, out=A)
    return A


def quad_form(B: np.ndarray, a: np.ndarray, d: int) -> float:
    """aᵀKa with K_kl = κ1(b_k·b_l)/d over square blocks of the upper triangle (K is
    symmetric: an off-diagonal block counts twice), each formed in place in a small work
    area: memory O(QUAD_BLOCK²) whatever m, half the transcendental work of both triangles."""
    with np.errstate(divide="ignore"):  # (N/√(1 − N²) at |N| = 1: see _kappa1_into)
        return _upper_blocks(B, a) / (2.0 * np.pi * d)


def _upper_blocks(B: np.ndarray, a: np.ndarray) -> float:
    """2π·d·aᵀKa, summed over the upper triangle's blocks."""
    m = B.shape[0]
    b = QUAD_BLOCK
    Gbuf, Tbuf, Abuf = np.empty((b, b)), np.empty((b, b)), np.empty((b, b))
    minus = -B  # (negated once: the blocks' products are then −ρ directly)
    total = 0.0
    for i in range(0, m, b):
        Bi, ai = B[i:i + b], a[i:i + b]
        for j in range(i, m, b):
            Bj, aj = minus[j:j + b], a[j:j + b]
            shape = (Bi.shape[0], Bj.shape[0])
            G = np.matmul(Bi, Bj.T, out=Gbuf[:shape[0], :shape[1]])
            K = _kappa1_into(G, Tbuf[:shape[0], :shape[1]], Abuf[:shape[0], :shape[1]])
            part = float(ai @ (K @ aj))
            total += part if i == j else 2.0 * part
    return total


def kernel_matrix(B: np.ndarray, d: int) -> np.ndarray:
    """K_kl = κ1(b_k·b_l)/d, the same numbers as ``kappa1(B @ B.T) / d`` with two m × m arrays
    instead of six."""
    G = B @ B.T
    np.clip(G, -1.0, 1.0, out=G)
    S = np.multiply(G, G)
    np.subtract(1.0, S, out=S)
    np.sqrt(S, out=S)
    A = np.arccos(G)
    np.subtract(np.pi, A, out=A)
    A *= G
    A += S
    A /= 2.0 * np.pi
    A /= d
    return A


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


@dataclass
class DualBound:
    lower: float  # certified lower bound on min R over the ball, target errors included
    mu: float  # the multiplier it was evaluated at
    steps: int  # Lanczos steps taken (matrix-vector products)


def kernel_entry_error(d: int) -> float:
    """A bound on |K̂_kl − κ1(b_k·b_l)/d| for the computed kernel matrix: b·b′ is off by at most
    (d + 2)u, κ1′ ≤ 1/2, and κ1's own evaluation (sqrt, arccos, a product) by 16u."""
    return ((d + 2) / 2 + 16) * _EPS / d + 4 * _EPS


def krylov_lower_bound(K: np.ndarray, r: np.ndarray, c: float, radius: float, *, entry_error: float,
                       r_error_norm: float, c_error: float, stop_above: float = np.inf,
                       max_steps: int = 200) -> DualBound:
    """A certified lower bound on min aᵀKa − 2rᵀa + c over ‖a‖₂ ≤ radius for a PSD kernel
    matrix K given as its computed version K̂ (entries ≥ 0, each within ``entry_error``), with
    r and c known to within ``r_error_norm`` (in ‖·‖₂) and ``c_error``.

    Lagrangian duality: for every μ > 0 the minimum is ≥ c − rᵀ(K + μI)⁻¹r − μ·radius². For
    any vector y, with e = r − (K + μI)y and K ⪰ 0 (so K + μI ⪰ μI),
    rᵀ(K + μI)⁻¹r = 2rᵀy − yᵀ(K + μI)y + eᵀ(K + μI)⁻¹e ≤ 2rᵀy − yᵀ(K + μI)y + ‖e‖²/μ —
    an upper bound whatever y is, so the bound is rigorous however far the solver is from
    converging. y comes from Lanczos (full reorthogonalisation) started at r, μ from a grid
    ranked by the Krylov estimate; the bound is then evaluated with a direct product K̂y, the
    matrix error (‖K − K̂‖₂ ≤ m·entry_error), the product's rounding and the errors of r and c
    all counted against it. Stops early once the bound exceeds ``stop_above``."""
    m = r.size
    Kf = float(np.linalg.norm(K))
    delta = m * entry_error + (m + 2) * _EPS * Kf  # ‖K y − fl(K̂ y)‖ ≤ delta‖y‖
    rn = float(np.linalg.norm(r))
    if rn == 0.0:
        return DualBound(c - c_error, 0.0, 0)
    steps = min(max_steps, m)
    Q = np.empty((m, steps))
    KQ = np.empty((m, steps))
    T = np.zeros((steps, steps))  # QᵀKQ, a column per step (any y from it is valid: see above)
    q = r / rn
    best = DualBound(-np.inf, 0.0, 0)

    def rigorous(mu: float, z: np.ndarray, k: int) -> float:
        y = Q[:, :k] @ z
        Ky = K @ y
        yn = float(np.linalg.norm(y))
        e = r - Ky - mu * y
        round_e = 4 * _EPS * (rn + float(np.linalg.norm(Ky)) + mu * yn)
        en = float(np.linalg.norm(e)) + delta * yn + round_e
        quad = 2 * float(r @ y) - float(y @ Ky) - mu * yn * yn
        quad += delta * yn * yn + 4 * m * _EPS * (2 * rn * yn + float(np.linalg.norm(Ky)) * yn + mu * yn * yn)
        low = c - (quad + en * en / mu) - mu * radius**2
        # r and c are known only to within their errors: U grows by ≤ 2‖y‖δr + (2‖e‖δr + δr²)/μ
        low -= c_error + 2 * yn * r_error_norm + (2 * en * r_error_norm + r_error_norm**2) / mu
        return low

    def evaluate(k: int, top: int) -> DualBound:
        lam, U = np.linalg.eigh(T[:k, :k])
        scale = max(float(lam[-1]), 1e-300)
        Ur = U.T @ (Q[:, :k].T @ r)
        KQU, QU = KQ[:, :k] @ U, Q[:, :k] @ U

        def estimate(mu: float) -> float:  # the same bound from the Krylov quantities (no new product)
            w = Ur / (np.clip(lam, 0.0, None) + mu)
            e = r - KQU @ w - mu * (QU @ w)
            return c - (2 * float(Ur @ w) - float(w @ (lam * w)) - mu * float(w @ w) + float(e @ e) / mu) \
                - mu * radius**2

        # the dual function is concave in μ and its maximiser is ≤ ‖r‖/radius (there
        # ‖(K + μI)⁻¹r‖ ≤ ‖r‖/μ is inside the ball): a log grid, then golden section around its best
        grid = np.logspace(math.log10(scale) - 13, math.log10(max(scale, rn / radius)) + 0.5, 80)
        vals = [estimate(mu) for mu in grid]
        i = int(np.argmax(vals))
        lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, grid.size - 1)])
        g = (math.sqrt(5) - 1) / 2
        x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
        f1, f2 = estimate(math.exp(x1)), estimate(math.exp(x2))
        for _ in range(60):
            if f1 >= f2:
                hi, x2, f2 = x2, x1, f1
                x1 = hi - g * (hi - lo)
                f1 = estimate(math.exp(x1))
            else:
                lo, x1, f1 = x1, x2, f2
                x2 = lo + g * (hi - lo)
                f2 = estimate(math.exp(x2))
        cands = sorted(zip(vals, grid), reverse=True)[:top - 1] + [(max(f1, f2), math.exp(x1 if f1 >= f2 else x2))]
        out = DualBound(-np.inf, 0.0, k)
        for _, mu in cands:
            z = U @ (Ur / (np.clip(lam, 0.0, None) + mu))
            low = rigorous(mu, z, k)
            if low > out.lower:
                out = DualBound(low, mu, k)
        return out

    k = 0
    for j in range(steps):
        Q[:, j] = q
        KQ[:, j] = K @ q
        k = j + 1
        h = Q[:, :k].T @ KQ[:, j]  # column j of the projection QᵀKQ, kept for evaluate()
        T[:k, j] = T[j, :k] = h
        w = KQ[:, j] - Q[:, :k] @ h
        w -= Q[:, :k] @ (Q[:, :k].T @ w)  # twice is enough (Kahan–Parlett)
        nw = float(np.linalg.norm(w))
        if k >= 20 and k % 10 == 0 and np.isfinite(stop_above):
            got = evaluate(k, 1)
            if got.lower > best.lower:
                best = got
            if best.lower > stop_above:
                return best
        if nw <= 1e-13 * float(np.linalg.norm(KQ[:, j])):  # an invariant subspace: Krylov is exhausted
            break
        q = w / nw
    got = evaluate(k, 3)
    return got if got.lower > best.lower else best


def population_risk(target, a: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    """R(a, B) = E_x (f(x; a, B) − f*(x))² for x uniform on the sphere, and a bound on its error.
    σ is 1-homogeneous, so a_k σ(b_k·x) = a_k‖b_k‖ σ(b̂_k·x): with â = a∘‖b‖ and unit rows B̂,
    R = âᵀKâ − 2âᵀr + ‖f*‖², K_kl = κ1(b̂_k·b̂_l)/d, r_k = E[f*(x)σ(b̂_k·x)] (the targets module)."""
    nb = np.linalg.norm(B, axis=1)
    Bh = B / np.where(nb > 0, nb, 1.0)[:, None]
    return population_risks(target, Bh, (a * nb)[None, :])[0]


def population_risks(target, Bh: np.ndarray, A: np.ndarray) -> np.ndarray:
    """R(a, B̂) for unit rows B̂ and each row a of A (k × m), as (k, 2) rows (risk, error bound):
    one kernel matrix for all of them. The kernel's entries are within kernel_entry_error(d)
    (so the quadratic form within that times ‖a‖₁²), r within the targets module's bounds."""
    d = Bh.shape[1]
    r, r_err = target.r(Bh)
    c, c_err = target.norm2
    quad = np.einsum("km,km->k", A @ kernel_matrix(Bh, d), A)
    R = quad - 2 * (A @ r) + c
    s = np.abs(A).sum(axis=1)
    err = (kernel_entry_error(d) * s * s + 2 * (np.abs(A) @ r_err) + c_err
           + 8 * A.shape[1] * _EPS * (np.abs(quad) + abs(c)))
    return np.stack([R, err], axis=1)
