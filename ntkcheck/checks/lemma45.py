"""Lemma 4.5 of the notes ([EMW]): the network stays close to its random-feature twin.

Corrected statement: Lemma 4.3's model, data and joint flow (a_k(0) = ±c/m, b_k(0) ~ π0,
x_i ~ ρ, y_i = f*(x_i), ‖f*‖∞ ≤ 1); ã_t the twin (gradient flow in a alone, B_0 frozen, from
a_0). For t ∈ [0, T]: ‖a_t − ã_t‖ ≤ C_T (t²/m)(1 + mt)(t + m)(1/√m + √t/√m + √t/n^{1/4}),
C_T independent of m and n. The proof's differential inequality, with e = a − ã,

    d/dt ‖e_t‖ ≤ g(t) = ‖B_t − B_0‖((‖B_t‖ + ‖B_0‖)‖ã_t‖ + 1)       (norms Frobenius),

follows from e′ = −(1/n)Φ_tᵀΦ_t e − (1/n)Σ_i σ_i ãᵀ(σ_i − σ̃_i) − (1/n)Σ_i r̃_i(σ_i − σ̃_i) (the
first term contracts; |σ(b·x) − σ(b′·x)| ≤ ‖b − b′‖, |r̃_i| ≤ ‖ã‖‖B_0‖ + 1), so ‖e_t‖ ≤ ∫_0^t g.

A trial draws data and an initialisation at one grid point (m, n) and integrates the network
and its twin as one system (:class:`ntkcheck.models.NetworkWithTwin`) with the shared
integrator over [0, T], landing on 81 geometric checkpoints T·2^(k/4), k = −80 … 0. ‖a_t − ã_t‖
is 10²–10³ times below the integration error of a alone, so a − ã is taken from the pair
(the errors nearly cancel; the part of each step's error estimate on a − ã is summed as its
error, with a rounding allowance); ‖ã_t‖ in g is the exact twin (:mod:`ntkcheck.rftwin`),
whose distance to the integrated one is reported.

Rows:

* ``integrated`` (universal): ‖a_t − ã_t‖ ≤ ∫_0^t g(s) ds at every point of the flow with
  t ≥ T/4096 (below that both sides are under the resolution of a − ã; as t → 0+ both vanish
  like t², their ratio tending to ‖e″(0)‖/(‖B′(0)‖(2‖B_0‖‖a_0‖ + 1)), reported). The integral
  is bracketed soundly between points: ‖B_s − B_0‖ and ‖B_s‖ change at most at rate
  V ≥ sup‖B′‖ = sup‖a ∘ g_k‖ ≤ sup‖a‖·√(2R̂_n) (R̂_n does not increase; sup‖a‖ over a step by
  a Grönwall bound from ‖a′‖ ≤ ‖B‖_F√(2R̂_n)), so between two points each lies under and
  over two lines of slope ±V; ‖ã_s‖ between two times is bracketed exactly (each (Vᵀã)_j is
  monotone). A point holds when ‖a − ã‖ plus its error is below the lower bracket; a
  violation needs it above the upper one at a trusted point.
* ``C_m``, ``C_n`` (scaling): Ĉ = sup_t ‖a_t − ã_t‖/((t²/m)(1 + mt)(t + m)(1/√m + √t/√m +
  √t/n^{1/4})) does not grow with m (at n = data.n) nor with n (at m = network.m). The
  supremum is over the points from T/4096 and the exact t → 0+ limit κ√m, κ = ‖e″(0)‖/2 with
  e″(0) = a_0 ∘ ‖g_k‖² + (1/n)Φ_0ᵀw, g_k = (1/n)Σ_i r_i 1{b_k·x_i > 0} x_i,
  w_i = Σ_k a_k² 1{b_k·x_i > 0} g_k·x_i (the bound's rate is t²/√m as t → 0+).

Controls, each false by the argument in its row:

* ``control_higher_order``: ‖a_t − ã_t‖ ≤ ∫_0^t ‖B_s − B_0‖ g(s) ds. The right side is O(t³)
  as t → 0+ (‖B_s − B_0‖ = O(s)), the left side κt² + o(t²) with κ > 0: false for small t.
* ``control_m_rate``: Ĉ for the rate divided by m does not grow with m. That Ĉ is m·Ĉ, and Ĉ is
  at least its t → 0+ limit κ√m, which tends to a positive constant as m grows (a mean over
  the neurons b_k ~ π0): it grows like m.
* ``control_n_rate``: Ĉ for the rate divided by n does not grow with n. That Ĉ is n·Ĉ ≥ n·κ√m,
  and κ√m stays above a positive constant at every n: g_k is a mean over the data, whose
  mean square is at least the square of its population mean (at small n it is larger — κ√m
  falls with n towards its limit, slope about −0.5 on the default grid — which is why the
  rate divided by √n would not do).
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from ..memory import require_memory
from ..rftwin import RFTwin
from ..stats import SCALING, UNIVERSAL, ClaimRow
from .base import Context, TrialResult, decided
from .emw import (FLOW_DEFAULT, EMWCheck, EMWClaim, EMWDynamics, EMWGrid, EMWNetwork, TargetSpec, constant_row, draw, emw_default,
                  finish_trial, prepare_state, train_pair)

#: checkpoints T·2^(k/4), k = −CHECKPOINTS … 0; the universal row from T·2^(−CLAIM_OCTAVES)
CHECKPOINTS = 80
CLAIM_OCTAVES = 12


class Lemma45Dynamics(EMWDynamics):
    T: float = Field(1.0, gt=0.0, le=1e3, description="time horizon T")


def rate(m: int, n: int, t: np.ndarray) -> np.ndarray:
    return t * t / m * (1 + m * t) * (t + m) * (1 / math.sqrt(m) + np.sqrt(t) / math.sqrt(m) + np.sqrt(t) / n ** 0.25)


def start_derivatives(X, y, a0, Phi0) -> tuple[np.ndarray, float]:
    """e″(0) (e = a − ã) and ‖B′(0)‖ at the start, where a_t = ã_t and B_t = B_0."""
    n = X.shape[0]
    r = Phi0 @ a0 - y
    mask = (Phi0 > 0).T.astype(float)  # m × n: 1{b_k·x_i > 0}
    g = mask @ (r[:, None] * X) / n  # g_k = (1/n) Σ_i r_i 1_ik x_i
    w = np.einsum("ki,ki->i", (a0 * a0)[:, None] * mask, g @ X.T)
    return a0 * np.einsum("kd,kd->k", g, g) + Phi0.T @ w / n, float(np.linalg.norm(a0[:, None] * g))


def _line_area(F: np.ndarray, V: np.ndarray, L: np.ndarray) -> np.ndarray:
    """∫_0^L max(F − V u, 0) du."""
    inside = F >= V * L
    return np.where(inside, L * (F - V * L / 2), F * F / (2 * np.maximum(V, 1e-300)))


def bracket_integral(F0, F1, G0, G1, V, h) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of ∫ F(s) ds over intervals of length h where F ≥ 0 changes at
    most at rate V, is at least F0 (G0) at the start and F1 at the end (at most G0, G1)."""
    Vs = np.maximum(V, 1e-300)
    u = np.clip((F0 - F1 + V * h) / (2 * Vs), 0.0, h)  # where the two lower lines cross
    lo = _line_area(F0, V, u) + _line_area(F1, V, h - u)
    u = np.clip((G1 - G0 + V * h) / (2 * Vs), 0.0, h)  # where the two upper lines cross
    hi = u * (G0 + V * u / 2) + (h - u) * (G1 + V * (h - u) / 2)
    return lo, hi


class Lemma45(EMWCheck):
    name = "lemma45"
    ref = "[EMW] (notes Lemma 4.5)"
    title = "the network stays near its random-feature twin: ‖a_t − ã_t‖ ≤ C_T (t²/m)(1 + mt)(t + m)(…)"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019; "
              "lecture 7.2 of the PKU 2019 course by E, Wu and Ma (notes: Lemma 4.5)")
    statement = ("With a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ, y_i = f*(x_i), ‖f*‖∞ ≤ 1, gradient flow on (a, B) and "
                 "ã_t the flow in a alone with B_0 frozen: for t ∈ [0, T], ‖a_t − ã_t‖ ≤ C_T (t²/m)(1 + mt)(t + m)"
                 "(1/√m + √t/√m + √t/n^{1/4}), C_T independent of m and n.")
    typos = [
        "the notes state the lemma without a proof; the differential inequality d/dt‖a_t − ã_t‖ ≤ ‖B_t − B_0‖"
        "((‖B_t‖ + ‖B_0‖)‖ã_t‖ + 1) checked here is the second scribe's (its factor is ‖ã_t‖, not ‖a_t‖: "
        "r_iσ_i − r̃_iσ̃_i is expanded around the twin).",
    ]
    method = ("Per trial, the network and its twin integrated as one system over [0, T] (81 geometric checkpoints), "
              "so that a − ã keeps the small error of the difference; the proof's differential inequality, integrated, "
              "at every point from T/4096 with the integral bracketed soundly between points; Ĉ's slopes in m and n "
              "over the points and the exact t → 0+ limit, by an exact permutation test.")
    claim_model = EMWClaim
    sections = {"target": TargetSpec, "network": EMWNetwork, "grid": EMWGrid, "dynamics": Lemma45Dynamics}
    default = emw_default(64, 1024, {"T": 1.0, **FLOW_DEFAULT}, {"c": 0.01, "slope_tolerance": 0.2, "permutations": 2000})

    def prepare(self, sc, explicit, rng) -> Context:
        state, q = prepare_state(sc, self.name, self.AUTO_TRIALS)
        m, n, d = state.m_max, state.n_max, sc.data.d
        # per trial: σ(XBᵀ), its mask and SVD (n × m), the pair's state and stages (m(d + 2) each)
        trial_bytes = require_memory(8.0 * (6 * n * m + 12 * m * (d + 2)),
                                     f"lemma45 with m up to {m} and n = {n} inputs")
        q.update({"c": sc.claim.c, "T": sc.dynamics.T, "claimed_from": sc.dynamics.T * 2.0 ** -CLAIM_OCTAVES,
                  "slope_tolerance": sc.claim.slope_tolerance})
        return Context(quantities=q, trial_bytes=trial_bytes, state=state)

    def rows(self, sc, ctx) -> list[ClaimRow]:
        tol = sc.claim.slope_tolerance
        T = sc.dynamics.T
        g = "g(s) = ‖B_s − B_0‖((‖B_s‖ + ‖B_0‖)‖ã_s‖ + 1)"
        ratio = "Ĉ = sup_t ‖a_t − ã_t‖/((t²/m)(1 + mt)(t + m)(1/√m + √t/√m + √t/n^{1/4}))"
        return [
            ClaimRow("integrated", UNIVERSAL, f"‖a_t − ã_t‖ ≤ ∫_0^t g(s) ds, {g} (the proof's differential inequality, "
                     f"integrated), at every point of the flow with {T * 2.0 ** -CLAIM_OCTAVES:.3g} ≤ t ≤ {T:g}"),
            constant_row("m", ratio, ctx.state, tol),
            constant_row("n", ratio, ctx.state, tol),
            ClaimRow("control_higher_order", UNIVERSAL,
                     "control (false by proof): ‖a_t − ã_t‖ ≤ ∫_0^t ‖B_s − B_0‖ g(s) ds; the right side is O(t³) as "
                     "t → 0+, the left side κt² + o(t²) with κ = ‖e″(0)‖/2 > 0", primary=False),
            ClaimRow("control_m_rate", SCALING,
                     "control (false by proof): Ĉ for the rate divided by m (that is m·Ĉ) does not grow with m; Ĉ is at "
                     "least its t → 0+ limit κ√m, which tends to a positive constant as m grows", tolerance=tol,
                     primary=False),
            ClaimRow("control_n_rate", SCALING,
                     "control (false by proof): Ĉ for the rate divided by n (that is n·Ĉ ≥ n·κ√m) does not grow with n; "
                     "κ√m stays above a positive constant at every n (g_k is a mean over the data, its mean square at "
                     "least its population mean's square)", tolerance=tol, primary=False),
        ]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        state = ctx.state
        m, n = state.point(index)
        T = sc.dynamics.T
        dr = draw(state, m, n, sc.claim.c, rng)
        tw = RFTwin(dr.Phi, dr.a0, dr.y)
        tr = train_pair(dr, T * 2.0 ** (np.arange(-CHECKPOINTS, 1) / 4), sc.dynamics)
        t = tr["t"]
        values: dict[str, float] = {"m": float(m), "n": float(n)}
        e2, dB0 = start_derivatives(dr.X, dr.y, dr.a0, dr.Phi)
        kappa = float(np.linalg.norm(e2)) / 2
        B0n = float(np.linalg.norm(dr.B0))
        values["limit_ratio_t0"] = 2 * kappa / max(dB0 * (2 * B0n * float(np.linalg.norm(dr.a0)) + 1), 1e-300)
        lo, hi, lo_ctl, hi_ctl = _integrals(tr, tw, B0n, n)
        gap, err = tr["gap"], tr["gap_error"]
        claimed = t >= T * 2.0 ** -CLAIM_OCTAVES * (1 - 1e-9)
        trusted = tr["trusted"] & claimed
        out = {"integrated": decided(np.any((gap - err > hi) & trusted), np.all((gap + err <= lo)[claimed])),
               "control_higher_order": decided(np.any((gap - err > hi_ctl) & trusted),
                                               np.all((gap + err <= lo_ctl)[claimed]))}
        ratio = gap[claimed] / rate(m, n, t[claimed])
        c_hat = max(kappa * math.sqrt(m), float(ratio.max(initial=0.0)))
        values.update({"C_hat": c_hat, "C_hat_m_rate": m * c_hat, "C_hat_n_rate": n * c_hat,
                       "kappa_sqrt_m": kappa * math.sqrt(m),
                       "ratio_to_integral": float(np.max(gap[claimed] / np.maximum(lo[claimed], 1e-300))),
                       "gap_end": float(gap[-1]), "gap_error_end": float(err[-1]),
                       "twin_error": float(np.max(tr["twin_error"])), "steps": float(tr["run"].steps),
                       "seconds": tr["run"].seconds})
        return finish_trial(index, out, values, tr["run"])

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        by = self.summarize_grid(sc, ctx, rows, trials,
                                 (("C_m", "C_hat", "m"), ("C_n", "C_hat", "n"),
                                  ("control_m_rate", "C_hat_m_rate", "m"), ("control_n_rate", "C_hat_n_rate", "n")),
                                 maxima=("C_hat", "ratio_to_integral", "twin_error"),
                                 medians=("kappa_sqrt_m", "limit_ratio_t0", "gap_end", "gap_error_end", "steps",
                                          "seconds"))
        by["integrated"].figures["worst_ratio_to_bound"] = max(t.values["ratio_to_integral"] for t in trials)
        by["integrated"].figures["limit_ratio_t0_max"] = max(t.values["limit_ratio_t0"] for t in trials)


def _integrals(tr: dict, tw: RFTwin, B0n: float, n: int):
    """Lower and upper bounds of ∫_0^t g and of the control's ∫_0^t ‖B_s − B_0‖g(s) ds at every
    point (the row's docstring gives the argument)."""
    t, e, ea = tr["t"], tr["B_est"], tr["a_est"]
    h = np.diff(t)
    # sup over a step of ‖a‖ and ‖B‖ (Grönwall: ‖a′‖ ≤ ‖B‖√(2R̂), ‖B′‖ ≤ ‖a‖√(2R̂), R̂ ≤ its start)
    s = np.sqrt(2 * tr["risk_hi"][:-1])
    q = h * s
    a_top, B_top = tr["a_norm"][:-1] + ea[:-1], tr["B_norm"][:-1] + e[:-1]
    ok = q < 0.5  # (elsewhere the step is left out of the lower bound and unbounded above)
    V = np.where(ok, (a_top + q * B_top) / (1 - np.minimum(q, 0.5) ** 2), 0.0) * s
    mv_lo, mv_hi = np.maximum(tr["B_move"] - e, 0.0), tr["B_move"] + e
    Bn_lo, Bn_hi = np.maximum(tr["B_norm"] - e, 0.0), tr["B_norm"] + e
    move_lo, move_hi = bracket_integral(mv_lo[:-1], mv_lo[1:], mv_hi[:-1], mv_hi[1:], V, h)
    move_lo = np.where(ok, move_lo, 0.0)
    tw_lo, tw_hi = tw.norm_range(t)
    B_lo = np.maximum((Bn_lo[:-1] + Bn_lo[1:] - V * h) / 2, 0.0)
    B_hi = (Bn_hi[:-1] + Bn_hi[1:] + V * h) / 2
    f_lo = (np.where(ok, B_lo, 0.0) + B0n) * tw_lo + 1
    f_hi = (B_hi + B0n) * tw_hi + 1
    top = np.maximum(mv_hi[:-1], mv_hi[1:]) + V * h / 2  # ‖B_s − B_0‖ ≤ this on the step
    parts = (move_lo * f_lo, np.where(ok, move_hi * f_hi, np.inf),
             move_lo * move_lo / h * f_lo,  # ∫F² ≥ (∫F)²/h
             np.where(ok, move_hi * top * f_hi, np.inf))
    return tuple(np.concatenate([[0.0], np.cumsum(p)]) for p in parts)
