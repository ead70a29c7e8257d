"""Slow, obviously-correct references for the neural-network-against-random-features checks
(lemma44 …). They import nothing from ntkcheck.

* :func:`twin_rk4`: the random-feature twin ã′ = −(1/n)Φᵀ(Φã − y) by classical RK4 at a fixed
  small step (the ODE is linear with constant coefficients, so RK4's error is h⁴-small).
* :func:`risk`: R̂_n(a) = (1/2n)‖Φa − y‖² by a plain per-point loop.
"""
from __future__ import annotations

import numpy as np


def features(X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Φ_ik = max(0, b_k·x_i), entry by entry."""
    n, m = X.shape[0], B.shape[0]
    Phi = np.zeros((n, m))
    for i in range(n):
        for k in range(m):
            Phi[i, k] = max(0.0, float(np.dot(X[i], B[k])))
    return Phi


def risk(Phi: np.ndarray, a: np.ndarray, y: np.ndarray) -> float:
    n = Phi.shape[0]
    return sum((float(Phi[i] @ a) - y[i]) ** 2 for i in range(n)) / (2 * n)


def twin_rk4(Phi: np.ndarray, a0: np.ndarray, y: np.ndarray, times, h: float) -> list[np.ndarray]:
    """ã at each of the increasing ``times`` (RK4 steps of at most h, landing on each time)."""
    n = Phi.shape[0]

    def rhs(a):
        return -(Phi.T @ (Phi @ a - y)) / n

    a, t, out = np.array(a0, dtype=float), 0.0, []
    for target in times:
        while t < target:
            s = min(h, target - t)
            k1 = rhs(a)
            k2 = rhs(a + s / 2 * k1)
            k3 = rhs(a + s / 2 * k2)
            k4 = rhs(a + s * k3)
            a = a + s / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += s
        out.append(a.copy())
    return out


def population_risk_linear_mc(a: np.ndarray, B: np.ndarray, w: float, v: np.ndarray, samples: int,
                              seed: int) -> tuple[float, float]:
    """E_x (Σ_k a_k σ(b_k·x) − f*(x))² for x uniform on the sphere and a*(b) = w(b·v), by Monte
    Carlo (mean, standard error). f* in closed form: E_b[b σ(b·x)] = x E[b_1² 1{b_1 > 0}] = x/(2d),
    so f*(x) = w(x·v)/(2d)."""
    rng = np.random.default_rng(seed)
    d = B.shape[1]
    total, total2, done = 0.0, 0.0, 0
    while done < samples:
        k = min(100_000, samples - done)
        x = rng.standard_normal((k, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        f = np.maximum(x @ B.T, 0.0) @ a
        e2 = (f - w * (x @ v) / (2 * d)) ** 2
        total, total2, done = total + e2.sum(), total2 + (e2 * e2).sum(), done + k
    mean = total / samples
    return mean, float(np.sqrt(max(total2 / samples - mean * mean, 0.0) / samples))


def joint_and_twin_rk4(X: np.ndarray, y: np.ndarray, a0: np.ndarray, B0: np.ndarray, times, h: float):
    """The network's joint flow on (a, B) and its twin's flow in a alone (B_0 frozen), each by
    classical RK4 at a fixed step of at most h, landing on each of the increasing ``times``;
    per time (a, B, ã). The gradients are written out from R̂_n = (1/2n)Σ_i (Σ_k a_k σ(b_k·x_i) − y_i)²:
    ∂/∂a_k = (1/n)Σ_i r_i σ(b_k·x_i), ∂/∂b_k = (1/n)Σ_i r_i a_k 1{b_k·x_i > 0} x_i."""
    n = X.shape[0]
    Phi0 = np.maximum(X @ B0.T, 0.0)

    def rhs(a, B, at):
        P = X @ B.T  # n × m
        r = np.maximum(P, 0.0) @ a - y
        da = -(np.maximum(P, 0.0).T @ r) / n
        dB = -((P > 0).T * r[None, :]) @ X * a[:, None] / n
        dat = -(Phi0.T @ (Phi0 @ at - y)) / n
        return da, dB, dat

    state = [np.array(a0, float), np.array(B0, float), np.array(a0, float)]
    t, out = 0.0, []
    for target in times:
        while t < target * (1 - 1e-14):
            s = min(h, target - t)
            k1 = rhs(*state)
            k2 = rhs(*(x + s / 2 * k for x, k in zip(state, k1)))
            k3 = rhs(*(x + s / 2 * k for x, k in zip(state, k2)))
            k4 = rhs(*(x + s * k for x, k in zip(state, k3)))
            state = [x + s / 6 * (p + 2 * q + 2 * u + v) for x, p, q, u, v in zip(state, k1, k2, k3, k4)]
            t += s
        out.append([x.copy() for x in state])
    return out


def kernel_flow_rk4(G: np.ndarray, y: np.ndarray, taus, h: float) -> list[np.ndarray]:
    """Kernel regression's gradient flow in its coefficients, α′ = −(1/n)(Gα − y) from α = 0
    (so f = Σ_i α_i k(·, x_i) descends R̂ = (1/2n)Σ_i (f(x_i) − y_i)² in the RKHS), by RK4 at a
    fixed step of at most h; α at each of the increasing ``taus``."""
    n = G.shape[0]
    a, t, out = np.zeros(n), 0.0, []
    for target in taus:
        while t < target * (1 - 1e-14):
            s = min(h, target - t)
            k1 = -(G @ a - y) / n
            k2 = -(G @ (a + s / 2 * k1) - y) / n
            k3 = -(G @ (a + s / 2 * k2) - y) / n
            k4 = -(G @ (a + s * k3) - y) / n
            a = a + s / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += s
        out.append(a.copy())
    return out


def k0_monte_carlo(x: np.ndarray, z: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    """E_{b uniform on the sphere} max(b·x, 0) max(b·z, 0) by Monte Carlo (mean, standard error)."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((samples, x.size))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    v = np.maximum(b @ x, 0.0) * np.maximum(b @ z, 0.0)
    return float(v.mean()), float(v.std() / np.sqrt(samples))
