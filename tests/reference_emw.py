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

