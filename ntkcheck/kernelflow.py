"""Kernel-regression gradient flow in closed form.

For a kernel k with Gram matrix G on the data (n × n, positive semidefinite) the flow of the
function f(·, τ) = Σ_i α_i(τ) k(·, x_i) on R̂ = (1/2n)Σ_i (f(x_i) − y_i)², started from f = 0, is
α′ = −(1/n)(Gα − y) in the coefficients' natural metric, so with G = VΛVᵀ:

    α(τ) = V φ(τ) Vᵀ y,    φ_j(τ) = (1 − e^{−τλ_j/n})/λ_j   (τ/n where λ_j = 0),
    f(X, τ) = G α(τ) = V (1 − e^{−τΛ/n}) Vᵀ y,

exact at every τ (no integrator). Off the data, f(x, τ) = k(x, X) α(τ).
"""
from __future__ import annotations

import numpy as np


class KernelFlow:
    """f^ker(·, τ) for Gram matrix G and labels y."""

    def __init__(self, G: np.ndarray, y: np.ndarray):
        self.n = G.shape[0]
        lam, V = np.linalg.eigh((G + G.T) / 2)
        self.lam = np.clip(lam, 0.0, None)
        self.V = V
        self.vy = V.T @ y

    def on_data(self, tau: np.ndarray) -> np.ndarray:
        """f(X, τ) at each τ (rows: len(τ) × n)."""
        decay = -np.expm1(-np.outer(np.asarray(tau, float), self.lam) / self.n)
        return (decay * self.vy) @ self.V.T

    def coefficients(self, tau: np.ndarray) -> np.ndarray:
        """α(τ) at each τ (rows)."""
        tau = np.asarray(tau, float)
        lam = self.lam
        pos = lam > 0
        phi = np.outer(tau, np.ones_like(lam)) / self.n
        phi[:, pos] = -np.expm1(-np.outer(tau, lam[pos]) / self.n) / lam[pos]
        return (phi * self.vy) @ self.V.T
