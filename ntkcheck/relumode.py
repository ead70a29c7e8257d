"""The pieces of the exact ReLU flow (:mod:`ntkcheck.reluflow`) that hold one linear mode: the
point a monitor sees, the closed-form flow of one sign pattern, and the entries followed in it.
Between kinks, with the sign pattern S (and the sliding sets) fixed, u = J_S θ, r′ = −H r and
θ(t) = θ_s − Jᵀ V φ(Λ, t) Vᵀ r_s: everything here is exact up to rounding."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg.lapack import dsyevd

if TYPE_CHECKING:
    from .reluflow import ReluFlow


@dataclass(slots=True)
class FlowPoint:
    """What the monitor sees at a sample time or an event: the state at t and the spectrum of
    H on (t_prev, t], over which it is constant (H changes only at events, and the monitor
    sees every event). At an event θ is formed only if the monitor reads ``theta`` (it costs
    a pass over all m neurons), and only during the monitor call: the engine moves on after."""

    t: float
    t_prev: float
    step: int
    residual: np.ndarray
    residual_prev_norm: float
    eigvals: np.ndarray
    eigvecs: np.ndarray
    error_u: float
    error_theta: float
    trusted: bool
    event: bool
    _theta: np.ndarray | None = None
    theta_fn: Callable[[], np.ndarray] | None = None
    loss: float | None = None  # ‖r‖² = float(residual @ residual), when the engine formed it

    @property
    def theta(self) -> np.ndarray:
        if self._theta is None:
            if self.theta_fn is None:
                raise RuntimeError("an event point's θ can be read only during the monitor call")
            self._theta = self.theta_fn()
        return self._theta


Monitor = Callable[[FlowPoint], bool]  # returns whether to go on


#: what a mode shares with the previous one when its pattern is the same (a refresh)
_SPECTRAL = ("Sf", "H", "lam", "V", "grow", "_phi_big", "_lam_safe", "neg_lam",
             "neg_lams", "abs_lams", "phi_all")


class Mode:
    """The linear flow of one pattern (S, sliding sets) from r_s and Γ_s = ∫₀^{t_s} r at time
    t_s. Built from the previous mode by updating the neurons that changed (H is a sum over
    neurons). W is not stored: neuron k's row is w_k(t) = Wa_k + v_k(Γ(t) − Ga_k) from its
    anchor (Wa_k, Ga_k), the flow's arrays Wa and Ga, v_k the velocity map of its
    pattern, which has not changed since the anchor (a neuron is anchored anew whenever it
    changes). So an event costs the rows of the neurons it changes, not all m."""

    __slots__ = ("fl", "t_s", "Gs", "S", "slide", "changed", "Sf", "H", "lam", "V", "grow", "neg_lams",
                 "neg_lam", "abs_lams", "phi_all", "_phi_big", "_lam_safe", "ent_k", "ent_j", "B",
                 "sliding_mask", "_slid", "start", "q", "grow_q", "watch", "watch_cols")

    def __init__(self, fl: ReluFlow, t_s: float, Gs: np.ndarray, r: np.ndarray, S: np.ndarray,
                 slide: dict[int, tuple[int, ...]], prev: Mode | None = None, changed=(),
                 watch: tuple[tuple[int, int], ...] | None = None):
        self.fl, self.t_s, self.Gs, self.S, self.slide = fl, t_s, Gs, S, slide
        self.changed = [k for k, _, _ in changed]
        # the dead neurons' watches (k, j): a_k r_j > 0 keeps neuron k dead as the only solution
        # (ReluFlow.dies). Each is a row sign(a_k)·e_j acting on r (watch_cols: as columns, None
        # if there are none), a column after the sliding weights' in a Track, and an event when
        # it reaches 0: there the flow is no longer unique
        if watch is None:
            self.watch, self.watch_cols = (prev.watch, prev.watch_cols) if prev is not None else ((), None)
        else:
            self.watch, self.watch_cols = watch, fl.watch_cols(watch)
        if prev is not None and not changed:  # a refresh: the same pattern, so the same H
            for name in _SPECTRAL:
                setattr(self, name, getattr(prev, name))
            self._sliding(prev, r)
            self._slid = prev._slid
            self._coordinates(r)
            return
        if prev is None:
            self.Sf = S.astype(np.float64)
            H = fl.G * (self.Sf.T @ self.Sf) / fl.m
            for k in slide:
                fl.add_neuron_gram(H, S[k], slide[k], S[k], ())
        else:
            # S, Sf, H and the sliding mask are updated in place: the previous mode is not
            # evaluated again after an event (the monitor reads only its spectrum)
            H, self.Sf = prev.H, prev.Sf
            for k, old_S, old_A in changed:
                fl.add_neuron_gram(H, S[k], slide.get(k, ()), old_S, old_A)
                self.Sf[k] = S[k]
        self.H = H
        # LAPACK's dsyevd on the lower triangle (the two agree up to rounding), as
        # numpy.linalg.eigh calls it, without that wrapper's overhead on n × n = 20 × 20
        lam, self.V, info = dsyevd(H, compute_v=1, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"the eigendecomposition of H failed (dsyevd info = {info})")
        self.lam = lam
        low = float(lam[0])
        self.grow = math.exp(max(0.0, -low) * fl.T)  # e^{−λτ} ≤ grow·e^{−λ⁺τ}, τ ≤ T
        # rows −λ and −λ⁺ = min(−λ, 0) (neg_lams: one exp gives both), |λ| and λ² (abs_lams)
        ls = np.empty((4, lam.size))
        np.negative(lam, out=ls[0])
        np.minimum(ls[0], 0.0, out=ls[1])
        np.abs(lam, out=ls[2])
        np.multiply(lam, lam, out=ls[3])
        self.neg_lams, self.neg_lam, self.abs_lams = ls[:2], ls[0], ls[2:]
        # all |λ|T > 1e-12 iff min|λ|·T > 1e-12 (rounding is monotone); else φ = τ where not.
        # (λ ascending: min|λ| = λ₀ when λ₀ ≥ 0)
        self.phi_all = (low if low >= 0 else float(ls[2].min())) * fl.T > 1e-12
        self._phi_big = self._lam_safe = None
        if not self.phi_all:
            self._phi_big = big = ls[2] * fl.T > 1e-12
            self._lam_safe = np.where(big, lam, 1.0)
        self._sliding(prev, r)
        self._slid = None
        self._coordinates(r)

    def _coordinates(self, r: np.ndarray) -> None:
        """r_s in H's eigenbasis, q, and the bound g = grow·|q| on its coordinates over [0, T]; with
        them ``start``, the rows of :func:`relusteps.steps`' work array at τ = 0:
        0, q, −λq, |λ|g, λ²g, |q|, g."""
        st = self.start = np.zeros((7, r.size))  # (row 0: φ(0) q = 0)
        np.matmul(self.V.T, r, out=st[1])
        np.abs(st[1], out=st[5])
        np.multiply(self.grow, st[5], out=st[6])
        self.fill_rows(st)
        self.q, self.grow_q = st[1], st[6]

    def fill_rows(self, rows: np.ndarray) -> None:
        """Rows 2–4 of a work array of :func:`relusteps.steps` from its rows 1 (e^{−λτ}q) and 6
        (g): −λe^{−λτ}q, |λ|·g and λ²·g (row 5, |e^{−λτ}q|, is the caller's)."""
        np.multiply(self.neg_lam, rows[1], out=rows[2])
        np.multiply(self.abs_lams, rows[6], out=rows[3:5])

    def _sliding(self, prev: Mode | None, r: np.ndarray) -> None:
        """The sliding entries, carried over from ``prev`` for the neurons that did not change
        (in no particular order: each entry is used on its own): ent_k, ent_j; B[i] holds the
        sliding weights f1 = σc ≥ 0, f2 = σ(r_j − c) ≥ 0 of entry i as rows acting on the
        residual (:meth:`ReluFlow.slide_rows`, signs taken when the neuron started sliding);
        sliding_mask marks them in the m × n pattern."""
        fl, S, slide = self.fl, self.S, self.slide
        ch = self.changed
        if prev is not None and slide.keys().isdisjoint(ch) and prev.slide.keys().isdisjoint(ch):
            # (a refresh, or crossings of neurons that neither slid nor slide now)
            self.ent_k, self.ent_j, self.B, self.sliding_mask = prev.ent_k, prev.ent_j, prev.B, prev.sliding_mask
            return
        if prev is None:
            new = sorted(slide)
            ent_k = ent_j = np.zeros(0, dtype=int)
            B = np.zeros((0, 2, fl.n))
            mask = np.zeros(S.shape, dtype=bool)
        else:
            new = [k for k in ch if k in slide]
            ent_k, ent_j, B = prev.ent_k, prev.ent_j, prev.B
            gone = [k for k in ch if k in prev.slide]
            if gone:
                keep = ent_k != gone[0] if len(gone) == 1 else ~np.isin(ent_k, gone)
                ent_k, ent_j, B = ent_k[keep], ent_j[keep], B[keep]
            mask = prev.sliding_mask
            for k in ch:  # (a row or two: basic indexing, not an index array)
                mask[k] = False
        if new:
            ks = [k for k in new for _ in slide[k]]
            js = [j for k in new for j in slide[k]]
            ent_k, ent_j = np.concatenate([ent_k, ks]), np.concatenate([ent_j, js])
            B = np.concatenate([B] + [fl.slide_rows(k, S[k], slide[k], r) for k in new])
            for k, j in zip(ks, js):
                mask[k, j] = True
        self.ent_k, self.ent_j, self.B, self.sliding_mask = ent_k, ent_j, B, mask

    def sides(self, ke, ie) -> np.ndarray:
        """σ = ±1, the side of each entry (k_e, i_e) in this mode's pattern: 2S − 1 from Sf, exactly
        (and σz = ±z exactly: v = σz ≥ 0 off the kink)."""
        sig = self.Sf[ke, ie] * 2.0
        sig -= 1.0
        return sig

    def projection(self, k: int) -> np.ndarray | None:
        """Q_k, the projection onto neuron k's kinks' normals while it slides (else None)."""
        A = self.slide.get(k)
        return None if A is None else self.fl.plane(A)[0]

    def sliding_neurons(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sl_rows, Qs, slot): the sliding neurons, their projections Q_k, and slot[k], k's
        index in sl_rows (−1: k does not slide); formed when needed (a refresh, a sample)."""
        if self._slid is None:
            fl = self.fl
            sl_rows = np.fromiter(self.slide, dtype=int, count=len(self.slide))
            Qs = fl.projections(self.slide.values())
            slot = np.full(fl.m, -1, dtype=int)
            slot[sl_rows] = np.arange(sl_rows.size)
            self._slid = (sl_rows, Qs, slot)
        return self._slid

    def velocity(self, D: np.ndarray) -> np.ndarray:
        """∫W′ over an interval when D holds, row by row, ∫r over it (one row per neuron):
        −(a/√m) (S ∘ D) X, sliding rows projected onto their kinks' planes (linear in D)."""
        fl = self.fl
        Wd = (self.Sf * D) @ fl.X
        Wd *= fl.neg_a_m
        if self.slide:
            sl_rows, Qs, _ = self.sliding_neurons()
            Wd[sl_rows] -= np.einsum("kde,ke->kd", Qs, Wd[sl_rows])
        return Wd

    def phi(self, tau: float, neg_lam_tau: np.ndarray | None = None) -> np.ndarray:
        """φ(λ, τ) = (1 − e^{−λτ})/λ, and τ where |λ|T ≤ 10⁻¹² (there |φ − τ| ≤ 10⁻¹²τ).
        ``neg_lam_tau``: −λτ if the caller has formed it (the same numbers: −λ is exact)."""
        y = self.neg_lam * tau if neg_lam_tau is None else neg_lam_tau
        if self.phi_all:  # (the same arithmetic: −expm1(−λτ)/λ = expm1(−λτ)/(−λ))
            return np.expm1(y) / self.neg_lam
        return np.where(self._phi_big, -np.expm1(y) / self._lam_safe, tau)

    def gamma(self, tau: float) -> np.ndarray:
        """Γ(t_s + τ) = Γ_s + ∫_{t_s}^{t_s+τ} r = Γ_s + V (φ(τ) ∘ q)."""
        return self.Gs + self.V @ (self.phi(tau) * self.q)

    def state(self, tau: float, gamma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(W(τ), r(τ)) in closed form, all m rows from their anchors (Γ(τ) if given)."""
        fl = self.fl
        G = self.gamma(tau) if gamma is None else gamma
        return fl.Wa + self.velocity(G - fl.Ga), self.residual(tau)

    def row(self, k: int, gamma: np.ndarray) -> np.ndarray:
        """Neuron k's row w_k at the time where Γ = ``gamma``, alone."""
        fl = self.fl
        wd = (self.Sf[k] * (gamma - fl.Ga[k])) @ fl.X
        wd *= -fl.a_m[k]
        Q = self.projection(k)
        if Q is not None:
            wd -= Q @ wd
        wd += fl.Wa[k]
        return wd

    def residual(self, tau: float) -> np.ndarray:
        return self.V @ (np.exp(-self.lam * tau) * self.q)


@dataclass(slots=True)
class Track:
    """The followed entries in one mode: codes k·n + i, v = σz = v0 + (φ(τ) ∘ q)ᵀ FvT, |FvT|, sliding,
    ζ. FvT and aFT have a further column for each sliding weight, Vᵀb (the mode's B), after the entries':
    its f(τ) = (e^{−λτ} ∘ q)ᵀ Vᵀb."""

    codes: np.ndarray
    v0: np.ndarray
    FvT: np.ndarray
    aFT: np.ndarray
    FA: np.ndarray  # FvT and aFT stacked (their rows): one gather takes a column of both
    sl: np.ndarray
    zeta: np.ndarray
    zeta2: np.ndarray  # 2ζ
    last: tuple | None = None  # what the last pass over these rows found (relusteps.steps)


class Followed:
    """The entries followed between two refreshes, (ke, ie), with what a mode needs of them,
    kept up to date at each event for the neurons that changed: their coefficients C
    (:meth:`ReluFlow.coefficients`, stored transposed: CT), whether they slide, and
    base_e = σ_e Wa_k·x_i − c_e·Ga_k, so that v_e = σ_e z_e = base_e + c_e·Γ at any time
    (neuron k's anchor: :class:`Mode`). All three change only when neuron k does."""

    __slots__ = ("ke", "ie", "CT", "base", "sl", "codes", "zeta", "zeta2", "_cols", "_cols_of")

    def __init__(self, fl: ReluFlow, md: Mode, ke: np.ndarray, ie: np.ndarray, z: np.ndarray,
                 zeta_row: np.ndarray):
        """At a refresh (every neuron anchored, Ga = 0), with z_e = w_k·x_i there. ``ke`` ascends
        (the refresh selects entries k·n + i in order): a neuron's entries are one run of rows."""
        if np.count_nonzero(ke[1:] < ke[:-1]):
            raise ValueError("Followed needs the entries ordered by neuron (ke ascending)")
        self.ke, self.ie = ke, ie
        sig = md.sides(ke, ie)
        self.CT = np.ascontiguousarray(fl.coefficients(md, ke, ie, sig).T)
        self.base = sig * z
        self.sl = md.sliding_mask[ke, ie]
        self.codes, self.zeta = ke * fl.n + ie, zeta_row[ke] * fl.xnorm[ie]
        self.zeta2 = 2 * self.zeta
        self._cols, self._cols_of = None, (None, None)

    def columns(self, md: Mode) -> np.ndarray:
        """CT with the mode's columns after the entries': its sliding weights' rows (md.B) and its
        watches' (md.watch_cols), as one contiguous array for :meth:`ReluFlow._track`'s product
        (CT itself when the mode has neither). Kept while the mode shares B and the watches with
        the last one asked (a mode inherits them unless a sliding neuron or a watch changed): CT
        is then a view into it, so that :meth:`update` writes the entries' columns in place and
        only those are not copied."""
        ns = 2 * md.B.shape[0]
        if not ns and md.watch_cols is None:
            return self.CT
        if self._cols_of[0] is not md.B or self._cols_of[1] is not md.watch_cols:
            self._cols = np.concatenate([self.CT] + ([md.B.reshape(ns, md.B.shape[2]).T] if ns else [])
                                        + ([md.watch_cols] if md.watch_cols is not None else []), axis=1)
            self.CT = self._cols[:, :self.ke.size]
            self._cols_of = (md.B, md.watch_cols)
        return self._cols

    @staticmethod
    def _neuron(fl: ReluFlow, md: Mode, k: int, ii: np.ndarray | slice):
        """Neuron k's entries (k, i), i ∈ ii (indices, or a slice), in ``md``: c_e as columns,
        base_e, sliding."""
        Q = md.projection(k)  # (one neuron: its projection alone, not md.sliding_neurons())
        if Q is None:
            XP = fl.G[ii]
        else:
            xi = fl.X[ii]
            XP = (xi - xi @ Q) @ fl.X.T  # X P_k x_i (Q_k symmetric)
        sig = md.sides(k, ii)
        C = fl.coefficients(md, k, ii, sig, XP)
        base = sig * (fl.X[ii] @ fl.Wa[k])
        base -= C @ fl.Ga[k]
        return C.T, base, md.sliding_mask[k, ii]

    def update(self, fl: ReluFlow, md: Mode) -> None:
        """After an event into ``md``: the changed neurons' entries anew (those of an entry that
        starts or stops sliding among them: every sliding entry is followed)."""
        for k in md.changed:
            lo, hi = self.ke.searchsorted(k), self.ke.searchsorted(k, "right")
            if hi - lo == 1:  # (most events) slices, the same numbers as indices, without their gathers
                i = int(self.ie[lo])
                ii = slice(i, i + 1)
            elif hi > lo:
                ii = self.ie[lo:hi]
            else:
                continue
            rows = slice(lo, hi)
            self.CT[:, rows], self.base[rows], self.sl[rows] = self._neuron(fl, md, k, ii)
