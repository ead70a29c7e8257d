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


#: what a mode shares with the previous one when its pattern is the same (a refresh)
_SPECTRAL = ("Sf", "Hraw", "H", "lam", "V", "lam_pos", "grow", "_phi_big", "_lam_safe", "neg_lam", "neg_lam_pos",
             "abs_lam", "lam2", "BvT")


class Mode:
    """The linear flow of one pattern (S, sliding sets) from (W_s, r_s) at time t_s. Built from
    the previous mode by updating the neurons that changed (H is a sum over neurons)."""

    def __init__(self, fl: ReluFlow, t_s: float, W: np.ndarray, r: np.ndarray, S: np.ndarray,
                 slide: dict[int, tuple[int, ...]], prev: Mode | None = None, changed=()):
        self.fl, self.t_s, self.W, self.r, self.S, self.slide = fl, t_s, W, r, S, slide
        self.changed = [k for k, _, _ in changed]
        if prev is not None and not changed:  # a refresh: the same pattern, so the same H
            for name in _SPECTRAL:
                setattr(self, name, getattr(prev, name))
            self._sliding(prev, changed, r)
            self._coordinates(r)
            return
        if prev is None:
            self.Sf = S.astype(np.float64)
            Hraw = fl.G * (self.Sf.T @ self.Sf) / fl.m
            for k in slide:
                Hraw -= fl.neuron_gram(S[k], slide[k]) - fl.neuron_gram(S[k], ())
        else:
            Hraw = prev.Hraw.copy()
            self.Sf = prev.Sf.copy()
            for k, old_S, old_A in changed:
                Hraw += fl.neuron_gram(S[k], slide.get(k, ())) - fl.neuron_gram(old_S, old_A)
                self.Sf[k] = S[k]
        self.Hraw = Hraw
        self.H = (Hraw + Hraw.T) / 2
        self.lam, self.V = np.linalg.eigh(self.H)
        self.lam_pos = np.clip(self.lam, 0.0, None)
        self.grow = float(np.exp(max(0.0, -self.lam[0]) * fl.T))  # e^{−λτ} ≤ grow·e^{−λ⁺τ}, τ ≤ T
        big = np.abs(self.lam) * fl.T > 1e-12
        self._phi_big = big
        self._lam_safe = np.where(big, self.lam, 1.0)
        self.neg_lam, self.neg_lam_pos, self.abs_lam = -self.lam, -self.lam_pos, np.abs(self.lam)
        self.lam2 = self.lam * self.lam
        self._sliding(prev, changed, r)
        self.BvT = self.V.T @ self.B.T  # f(τ) = (e^{−λτ} ∘ q)ᵀ BvT
        self._coordinates(r)

    def _coordinates(self, r: np.ndarray) -> None:
        """r_s in H's eigenbasis, and the bound on its coordinates over [0, T]."""
        self.q = self.V.T @ r
        self.grow_q = self.grow * np.abs(self.q)

    def _sliding(self, prev: Mode | None, changed, r: np.ndarray) -> None:
        """The sliding neurons' data, carried over from ``prev`` for the neurons that did not
        change (in no particular order: each row is used on its own). sl_rows: the sliding
        neurons; Qs: their projections onto their kinks' spans; slot[k]: k's index in sl_rows
        (−1: k does not slide); ent_k, ent_j: the sliding entries; B: rows 2i, 2i + 1 are the
        sliding weights f1 = σc ≥ 0, f2 = σ(r_j − c) ≥ 0 of entry i as rows acting on the
        residual (:meth:`ReluFlow.slide_rows`, signs taken when the neuron started sliding)."""
        fl, S, slide = self.fl, self.S, self.slide
        if prev is not None and not any(k in slide or k in prev.slide for k, _, _ in changed):
            # (a refresh, or crossings of neurons that neither slid nor slide now)
            for name in ("sl_rows", "Qs", "slot", "ent_k", "ent_j", "B", "sliding_mask"):
                setattr(self, name, getattr(prev, name))
            return
        if prev is None:
            new = sorted(slide)
            sl_rows, Qs = np.zeros(0, dtype=int), np.zeros((0, fl.d, fl.d))
            ent_k = ent_j = np.zeros(0, dtype=int)
            B = np.zeros((0, fl.n))
            mask = np.zeros(S.shape, dtype=bool)
        else:
            ch = np.array([k for k, _, _ in changed], dtype=int)
            new = sorted(k for k in set(ch.tolist()) if k in slide)
            gone = np.zeros(fl.m, dtype=bool)
            gone[ch] = True
            keep = ~gone[prev.sl_rows]
            sl_rows, Qs = prev.sl_rows[keep], prev.Qs[keep]
            keep_e = ~gone[prev.ent_k]
            ent_k, ent_j, B = prev.ent_k[keep_e], prev.ent_j[keep_e], prev.B[np.repeat(keep_e, 2)]
            mask = prev.sliding_mask.copy()
            mask[ch] = False
        if new:
            sl_rows = np.concatenate([sl_rows, new])
            Qs = np.concatenate([Qs, [fl.plane(slide[k])[0] for k in new]])
            ks = [k for k in new for _ in slide[k]]
            js = [j for k in new for j in slide[k]]
            ent_k, ent_j = np.concatenate([ent_k, ks]), np.concatenate([ent_j, js])
            B = np.concatenate([B] + [fl.slide_rows(k, S[k], slide[k], r) for k in new])
            mask[ks, js] = True
        self.sl_rows, self.Qs, self.ent_k, self.ent_j, self.B = sl_rows, Qs, ent_k, ent_j, B
        self.slot = np.full(fl.m, -1, dtype=int)
        self.slot[sl_rows] = np.arange(sl_rows.size)
        self.sliding_mask = mask

    def velocity(self, v: np.ndarray) -> np.ndarray:
        """W′ when the residual is v: −(a/√m) S (v ∘ X), sliding rows projected onto their
        kinks' planes. Linear in v, so ∫W′ = velocity(∫r)."""
        fl = self.fl
        Wd = self.Sf @ (v[:, None] * fl.X)
        Wd *= fl.neg_a_m
        if self.sl_rows.size:
            R = Wd[self.sl_rows]
            R -= np.einsum("kde,ke->kd", self.Qs, R)
            Wd[self.sl_rows] = R
        return Wd

    def phi(self, tau: float) -> np.ndarray:
        """φ(λ, τ) = (1 − e^{−λτ})/λ, and τ where |λ|T ≤ 10⁻¹² (there |φ − τ| ≤ 10⁻¹²τ)."""
        return np.where(self._phi_big, -np.expm1(-self.lam * tau) / self._lam_safe, tau)

    def state(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """(W(τ), r(τ)) in closed form."""
        g = self.V @ (self.phi(tau) * self.q)
        return self.W + self.velocity(g), self.residual(tau)

    def residual(self, tau: float) -> np.ndarray:
        return self.V @ (np.exp(-self.lam * tau) * self.q)


@dataclass
class Track:
    """The followed entries in one mode: codes k·n + i, v = σz = v0 + (φ(τ) ∘ q)ᵀ FvT, |FvT|, sliding,
    ζ. FvT and aFT have a further column for each sliding weight (the mode's BvT) after the entries'."""

    codes: np.ndarray
    v0: np.ndarray
    FvT: np.ndarray
    aFT: np.ndarray
    sl: np.ndarray
    zeta: np.ndarray


class Followed:
    """The entries followed between two refreshes, (ke, ie), with their coefficients C
    (:meth:`ReluFlow.coefficients`), kept up to date at each event for the neurons that changed."""

    def __init__(self, ke: np.ndarray, ie: np.ndarray, C: np.ndarray):
        self.ke, self.ie, self.C = ke, ie, C
        self.codes = self.zeta = None  # the entries' codes k·n + i and ζ's, set by the first track

    def update(self, fl: ReluFlow, md: Mode, released: list[tuple[int, int]]) -> None:
        """After an event into ``md``: new coefficients for the changed neurons' entries; the
        entries released from a kink are followed from here on."""
        if md.changed:
            rows = np.nonzero(np.isin(self.ke, md.changed))[0] if len(md.changed) > 1 else \
                np.nonzero(self.ke == md.changed[0])[0]
            if rows.size:
                self.C[rows] = fl.coefficients(md, self.ke[rows], self.ie[rows])
        if released:
            have = set(zip(self.ke.tolist(), self.ie.tolist()))
            extra = [p for p in released if p not in have]
            if extra:
                k, i = np.array(extra, dtype=int).T
                self.ke, self.ie = np.concatenate([self.ke, k]), np.concatenate([self.ie, i])
                self.C = np.concatenate([self.C, fl.coefficients(md, k, i)])
                self.codes = self.zeta = None
