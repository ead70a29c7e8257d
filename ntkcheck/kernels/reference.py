"""The definitions, plainly: what the fast code in this package computes, one neuron and one
entry at a time in float64, with nothing but numpy. Slow on purpose; tests compare the fast
code with these (tests/test_kernels_reference.py). X is n × d (rows x_i), W is m × d (rows w_k).
"""
from __future__ import annotations

import numpy as np


def signs(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """S_ki = 1{w_k·x_i ≥ 0} (m × n)."""
    return np.array([[1.0 if float(w @ x) >= 0 else 0.0 for x in X] for w in W])


def gram(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """H_ij(W) = (x_i·x_j)/m · Σ_k S_ki S_kj."""
    S = signs(X, W)
    n, m = X.shape[0], W.shape[0]
    return np.array([[float(X[i] @ X[j]) * sum(S[k, i] * S[k, j] for k in range(m)) / m for j in range(n)]
                     for i in range(n)])


def counts(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(SᵀS)_ij = #{k : w_k·x_i ≥ 0 and w_k·x_j ≥ 0}."""
    S = signs(X, W)
    return np.array([[sum(S[:, i] * S[:, j]) for j in range(X.shape[0])] for i in range(X.shape[0])])


def count_change(X: np.ndarray, W0: np.ndarray, W: np.ndarray) -> np.ndarray:
    """S(W)ᵀS(W) − S(W0)ᵀS(W0): the count change of moving every neuron from w_k(0) to w_k."""
    return counts(X, W) - counts(X, W0)


def flippable(X: np.ndarray, W0: np.ndarray, R: float) -> np.ndarray:
    """A_ki = 1{|w_k(0)·x_i| ≤ R‖x_i‖}: the signs a move of length ≤ R can change."""
    return np.array([[1.0 if abs(float(w @ x)) <= R * float(np.linalg.norm(x)) else 0.0 for x in X] for w in W0])


def bound(X: np.ndarray, W0: np.ndarray, R: float) -> np.ndarray:
    """E_ij = |x_i·x_j| (c_i + c_j − (AᵀA)_ij)/m with c = Aᵀ1: |H(W) − H(W0)| ≤ E entrywise on
    the ball {‖w_k − w_k(0)‖ ≤ R}."""
    A = flippable(X, W0, R)
    n, m = X.shape[0], W0.shape[0]
    c = A.sum(axis=0)
    return np.array([[abs(float(X[i] @ X[j])) * (c[i] + c[j] - sum(A[:, i] * A[:, j])) / m for j in range(n)]
                     for i in range(n)])


def critical_radius(X: np.ndarray, W0: np.ndarray, threshold: float) -> float:
    """sup{R : λ_max(E(R)) < threshold} by brute force: E(R) changes only where R crosses a
    value |w_k(0)·x_i|/‖x_i‖ (and includes that entry from there on), so the supremum is the
    first such value at which λ_max(E) reaches the threshold (0 if E(0) already does, ∞ if
    none does)."""
    if np.linalg.eigvalsh(bound(X, W0, 0.0))[-1] >= threshold:
        return 0.0
    values = sorted({abs(float(w @ x)) / float(np.linalg.norm(x)) for w in W0 for x in X if np.linalg.norm(x) > 0})
    for v in values:
        if np.linalg.eigvalsh(bound(X, W0, v))[-1] >= threshold:
            return v
    return float("inf")
