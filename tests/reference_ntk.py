"""Slow, obviously-correct references for the NTK family. Nothing here imports ntkcheck.

* ``gram_per_neuron``: H(W) = (1/m) Σ_k (x_i·x_j) 1{w_k·x_i ≥ 0} 1{w_k·x_j ≥ 0}, one neuron at a
  time in float64.
* ``reachable_patterns``: for one neuron, every sign pattern s ∈ {0,1}^n that some w with
  ‖w − w0‖ ≤ R realises, by the distance from w0 to the closed cone {w : ±w·x_i ≥ 0}
  (the projection onto a polyhedral cone is the projection onto the span of one face:
  all active sets are tried).
* ``ball_extremes``: the exact sup of ‖H(W) − H(W0)‖₂ and inf of λ_min(H(W)) over the ball
  {‖w_k − w_k(0)‖ ≤ R ∀k}, by enumerating every combination of reachable patterns.
* ``rk4_flow``: fixed-step RK4 of the NTK gradient flow dw_k/dt = −(a_k/√m) Σ_i r_i 1{w_k·x_i ≥ 0} x_i.
* ``filippov_choices``: for one neuron with entries on their kinks, every way of leaving them
  (to z > 0, to z < 0) or sliding along them, with its velocity in R^d and its margin.
"""
from __future__ import annotations

import itertools

import numpy as np


def gram_per_neuron(X, W):
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    G = X @ X.T
    H = np.zeros((n, n))
    for w in np.asarray(W, dtype=np.float64):
        s = np.array([1.0 if float(np.dot(w, x)) >= 0 else 0.0 for x in X])
        H += G * np.outer(s, s)
    return H / len(W)


def _cone_distance(w0, X, signs):
    """Distance from w0 to {w : sign_i (w·x_i) ≥ 0 for all i} (sign_i = ±1)."""
    n = X.shape[0]
    best = np.inf
    for k in range(n + 1):
        for act in itertools.combinations(range(n), k):
            if act:
                A = X[list(act)]
                w = w0 - A.T @ np.linalg.lstsq(A @ A.T, A @ w0, rcond=None)[0]
            else:
                w = w0
            if all(signs[i] * float(w @ X[i]) >= -1e-12 for i in range(n)):
                best = min(best, float(np.linalg.norm(w - w0)))
    return best


def reachable_patterns(w0, X, R):
    out = []
    for s in itertools.product((0, 1), repeat=X.shape[0]):
        signs = [1 if v else -1 for v in s]
        if _cone_distance(w0, X, signs) <= R:
            out.append(np.array(s, dtype=float))
    return out


def ball_extremes(X, W0, R, limit=50_000):
    """(sup ‖ΔH‖₂, inf λ_min(H(W)), number of combinations) over the ball, or None if the
    combinations exceed ``limit``."""
    X = np.asarray(X, dtype=np.float64)
    G = X @ X.T
    m = len(W0)
    H0 = gram_per_neuron(X, W0)
    per = [reachable_patterns(w, X, R) for w in W0]
    total = int(np.prod([len(p) for p in per]))
    if total > limit:
        return None
    # counts C = Σ_k s_k s_kᵀ for every combination, built neuron by neuron
    C = np.zeros((1,) + G.shape)
    for pats in per:
        outer = np.stack([np.outer(s, s) for s in pats])
        C = (C[:, None] + outer[None]).reshape(-1, *G.shape)
    H = G[None] * C / m
    dH = H - H0[None]
    sup_norm = float(np.abs(np.linalg.eigvalsh(dH)).max())
    inf_min = float(np.linalg.eigvalsh(H)[:, 0].min())
    return sup_norm, inf_min, total


def ntk_rhs(W, X, y, a):
    m = len(a)
    P = W @ X.T
    u = np.maximum(P, 0.0).T @ a / np.sqrt(m)
    r = u - y
    S = (P >= 0).astype(float)
    return -(a / np.sqrt(m))[:, None] * (S @ (r[:, None] * X)), r


def rk4_flow(W0, X, y, a, times, h):
    """Residuals u − y at the increasing ``times``, by classical RK4 with steps ≤ h (each
    requested time reached exactly by a shortened last step)."""
    return rk4_states(W0, X, y, a, times, h)[1]


def rk4_states(W0, X, y, a, times, h):
    """(W, u − y) at the increasing ``times`` by classical RK4 with steps ≤ h. Across a kink
    (and along one, where it chatters) RK4 is only first order: halving h halves its error,
    so |state(h) − state(h/2)| estimates the error of state(h/2)."""
    W = np.array(W0, dtype=np.float64)
    t = 0.0
    Ws, rs = [], []
    f = lambda V: ntk_rhs(V, X, y, a)[0]
    for target in times:
        while t < target - 1e-15:
            s = min(h, target - t)
            k1 = f(W)
            k2 = f(W + 0.5 * s * k1)
            k3 = f(W + 0.5 * s * k2)
            k4 = f(W + s * k3)
            W = W + s / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += s
        Ws.append(W.copy())
        rs.append(ntk_rhs(W, X, y, a)[1])
    return np.array(Ws), np.array(rs)


def filippov_choices(X, a_k, r, S_k, surface, fixed):
    """Neuron k (output weight a_k, already divided by √m) with the entries ``surface`` on
    their kinks at residual r: for each choice c_j ∈ {0: leave to z < 0, 1: leave to z > 0,
    2: slide} (``fixed``: j → its only side), the Filippov velocity
    w′ = −a_k (Σ_i s_i r_i x_i) with s_i = S_ki off the surface, c_j ∈ {0, 1} on it, and for
    the sliding entries s_j = c_B/r_j ∈ [0, 1] chosen so that x_j·w′ = 0 (in R^d: the least-
    squares solution of the sliding equations, None when x_B are dependent), and the margin of
    the choice: how far it is from inconsistent — min over the leaving entries of ±x_j·w′
    (relative to |a_k| (|r|·‖x‖) max‖x‖) and over the sliding ones of min(s_j, 1 − s_j).
    Returns [(choice, signs on the surface, sliding entries, margin or None)]."""
    xnorm = np.sqrt((X * X).sum(axis=1))
    scale = abs(a_k) * float(np.abs(r) @ xnorm) * xnorm.max() + 1e-300
    out = []
    for choice in itertools.product(*[(fixed[j],) if j in fixed else (0, 1, 2) for j in surface]):
        s = np.where(S_k, 1.0, 0.0)
        for j, c in zip(surface, choice):
            s[j] = 1.0 if c == 1 else 0.0
        B = [j for j, c in zip(surface, choice) if c == 2]
        b = X.T @ (s * r)
        margins = []
        if B:
            XB = X[B]
            if np.linalg.matrix_rank(XB) < len(B):
                out.append((choice, None, tuple(B), None))
                continue
            # x_B·(b + X_Bᵀ c) = 0
            c = np.linalg.solve(XB @ XB.T, -(XB @ b))
            vel = -a_k * (b + XB.T @ c)
            for j, cj in zip(B, c):
                sj = cj / r[j] if r[j] != 0 else np.nan
                margins.append(min(sj, 1 - sj) if np.isfinite(sj) else -np.inf)
        else:
            vel = -a_k * b
        for j, c in zip(surface, choice):
            if c != 2 and j not in fixed:
                dj = float(X[j] @ vel) / scale
                margins.append(dj if c == 1 else -dj)
        mg = min(margins) if margins else np.inf
        out.append((choice, s[list(surface)] > 0, tuple(B), mg))
    return out
