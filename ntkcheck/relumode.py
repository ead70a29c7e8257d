"""The pieces of the exact ReLU flow (:mod:`ntkcheck.reluflow`) that hold one linear mode: the
point a monitor sees, the closed-form flow of one sign pattern, and the entries followed in it.
Between kinks, with the sign pattern S (and the sliding sets) fixed, u = J_S θ, r′ = −H r and
θ(t) = θ_s − Jᵀ V φ(Λ, t) Vᵀ r_s: everything here is exact up to rounding."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .reluflow import ReluFlow


@dataclass
class FlowPoint:
    """What the monitor sees at a sample time or an event: the state at t and the spectrum of
    H on (t_prev, t], over which it is constant (H changes only at events, and the monitor
    sees every event)."""

    t: float
    t_prev: float
    step: int
    theta: np.ndarray
    residual: np.ndarray
    residual_prev_norm: float
    eigvals: np.ndarray
    eigvecs: np.ndarray
    error_u: float
    error_theta: float
    trusted: bool
    event: bool


Monitor = Callable[[FlowPoint], bool]  # returns whether to go on


class Mode:
    """The linear flow of one pattern (S, sliding sets) from (W_s, r_s) at time t_s. Built from
    the previous mode by updating the neurons that changed (H is a sum over neurons)."""

    def __init__(self, fl: ReluFlow, t_s: float, W: np.ndarray, r: np.ndarray, S: np.ndarray,
                 slide: dict[int, tuple[int, ...]], prev: Mode | None = None, changed=()):
        self.fl, self.t_s, self.W, self.r, self.S, self.slide = fl, t_s, W, r, S, slide
        if prev is None:
            Sf = S.astype(np.float64)
            Hraw = fl.G * (Sf.T @ Sf) / fl.m
            for k in slide:
                Hraw -= fl.neuron_gram(S[k], slide[k]) - fl.neuron_gram(S[k], ())
            self.rows = {k: fl.slide_rows(k, S[k], A, r) for k, A in slide.items()}
        else:
            Hraw = prev.Hraw.copy()
            self.rows = dict(prev.rows)
            for k, old_S, old_A in changed:
                Hraw += fl.neuron_gram(S[k], slide.get(k, ())) - fl.neuron_gram(old_S, old_A)
                self.rows.pop(k, None)
                if k in slide:
                    self.rows[k] = fl.slide_rows(k, S[k], slide[k], r)
        self.Hraw = Hraw
        self.H = (Hraw + Hraw.T) / 2
        self.lam, self.V = np.linalg.eigh(self.H)
        self.lam_pos = np.clip(self.lam, 0.0, None)
        self.grow = float(np.exp(max(0.0, -self.lam[0]) * fl.T))  # e^{−λτ} ≤ grow·e^{−λ⁺τ}, τ ≤ T
        self.q = self.V.T @ r
        ks = sorted(slide)
        self.sl_rows = np.array(ks, dtype=int)
        if prev is not None and not changed:
            self.Qs = prev.Qs
        else:
            self.Qs = np.stack([fl.plane(slide[k])[0] for k in ks]) if ks else np.zeros((0, fl.d, fl.d))
        if prev is None or prev.sliding_mask is None:
            self.sliding_mask = np.zeros(S.shape, dtype=bool)
            for k, A in slide.items():
                self.sliding_mask[k, list(A)] = True
        elif changed:
            self.sliding_mask = prev.sliding_mask.copy()
            for k, _, _ in changed:
                self.sliding_mask[k] = False
                self.sliding_mask[k, list(slide.get(k, ()))] = True
        else:
            self.sliding_mask = prev.sliding_mask
        # sliding weights: rows 2i, 2i + 1 of Bv are f1 = σc ≥ 0, f2 = σ(r_j − c) ≥ 0 for entry i
        self.slide_entries = [(k, j) for k in ks for j in slide[k]]
        B = np.concatenate([self.rows[k] for k in ks]) if ks else np.zeros((0, fl.n))
        self.Bv = B @ self.V  # f(τ) = Bv (e^{−λτ} ∘ q)
        self.aBv = np.abs(self.Bv)

    def velocity(self, v: np.ndarray) -> np.ndarray:
        """W′ when the residual is v: −(a/√m) S (v ∘ X), sliding rows projected onto their
        kinks' planes. Linear in v, so ∫W′ = velocity(∫r)."""
        fl = self.fl
        Wd = -fl.a_m[:, None] * ((self.S * v) @ fl.X)
        if self.sl_rows.size:
            R = Wd[self.sl_rows]
            Wd[self.sl_rows] = R - np.einsum("kde,ke->kd", self.Qs, R)
        return Wd

    def phi(self, tau: float) -> np.ndarray:
        x = self.lam * tau
        out = np.full_like(x, tau)
        big = np.abs(x) > 1e-12
        out[big] = -np.expm1(-x[big]) / self.lam[big]
        return out

    def state(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """(W(τ), r(τ)) in closed form."""
        g = self.V @ (self.phi(tau) * self.q)
        return self.W + self.velocity(g), self.residual(tau)

    def residual(self, tau: float) -> np.ndarray:
        return self.V @ (np.exp(-self.lam * tau) * self.q)


@dataclass
class Track:
    """The followed entries in one mode: codes k·n + i, v = σz = v0 + Fv (φ(τ) ∘ q), |Fv|, sliding, ζ."""

    codes: np.ndarray
    v0: np.ndarray
    Fv: np.ndarray
    aF: np.ndarray
    sl: np.ndarray
    zeta: np.ndarray
