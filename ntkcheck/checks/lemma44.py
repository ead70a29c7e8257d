"""Lemma 4.4 of the notes ([EMW]): the random-feature twin's coefficients stay small.

Corrected statement: Lemma 4.3's model and data (a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ,
y_i = f*(x_i), ‖f*‖∞ ≤ 1); ã_t is the gradient flow of R̂_n(·, B_0) in a alone from a_0.
With probability ≥ 1 − 4ε, for all t ∈ [0, T]:
‖ã_t‖ ≤ C̃(1/√m + √t/√m + √t/n^{1/4}), C̃ independent of m, n and t.

ã_t is exact in closed form (:mod:`ntkcheck.rftwin`): no integrator. A trial draws data and
an initialisation at one point (m, n) of the grid and evaluates ‖ã_t‖ on t = 0 and a
geometric grid of 321 times from T·2⁻⁴⁰ to T (ratio 2^⅛). Every α_j(t) = (Vᵀã_t)_j is
monotone in t, so the supremum of ‖ã_t‖ over each interval between grid times is exact
from its two ends: suprema over t are sound, not sampled.

Rows:

* ``bound`` (universal): the proof's explicit inequality ‖ã_t‖ ≤ ‖a_0‖ + 2‖a*‖ +
  √(2t R̂_n(a*, B_0)) for every t ∈ [0, T], with Theorem 4.1's witness a*_k = a*(b_k)/m.
  Deterministic (J(t) = t(R̂_n(ã_t) − R̂_n(a*)) + ½‖ã_t − a*‖² does not increase), so one
  violation beyond rounding is a counterexample. Its right side increases with t, so an
  interval holds when the supremum of ‖ã‖ over it is below the bound at its start.
* ``C_m``, ``C_n`` (scaling): Ĉ = sup_t ‖ã_t‖/(1/√m + √t/√m + √t/n^{1/4}) does not grow with
  m (at n = data.n) nor with n (at m = network.m): log-log slopes at most the tolerance, by
  the exact permutation test. Ĉ ≥ c: its t → 0+ limit is ‖a_0‖√m = c.
* ``m_at_least_gamma2`` (scenario option, off by default): the notes' hypothesis "m ≥ r²",
  unresolved (perhaps γ(f*)²); no step of the proof uses it.

Controls, each false by the argument in its row:

* ``control_no_a0``: the bound without ‖a_0‖ and with a* = 0, ‖ã_t‖ ≤ √(2t R̂_n(0, B_0)).
  At t = 0 the left side is ‖a_0‖ = c/√m > 0 and the right side 0.
* ``control_m_rate``: 1/√m replaced by 1/m^{3/2}. At t → 0+ the ratio is ‖a_0‖m^{3/2} = c·m,
  so Ĉ(m) ≥ c·m grows without bound (slope 1 wherever that limit is the supremum).
* ``control_n_rate``: 1/√m replaced by 1/(n√m). At t → 0+ the ratio is ‖a_0‖√m·n = c·n,
  so Ĉ(n) ≥ c·n grows without bound (slope 1 wherever that limit is the supremum).
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from ..errors import UserError
from ..memory import require_memory
from ..rftwin import RFTwin
from ..scenario import Strict
from ..stats import SCALING, UNIVERSAL, ClaimRow
from .base import HOLDS, UNDECIDED, VIOLATION, Context, TrialResult
from .emw import EMWCheck, EMWClaim, EMWGrid, EMWNetwork, TargetSpec, constant_row, draw, emw_default, prepare_state

#: the times: 0 and T·2^(k/8), k = −320 … 0
TIME_STEPS = 320


class Lemma44Horizon(Strict):
    T: float = Field(2.0, gt=0.0, le=1e4, description="time horizon T")


class Lemma44Claim(EMWClaim):
    m_at_least_gamma2: bool = Field(False, description="the notes' unresolved hypothesis m ≥ r², read as "
                                                       "m ≥ γ(f*)²: refuse grids with smaller widths")


def times(T: float) -> np.ndarray:
    return np.concatenate([[0.0], T * 2.0 ** (np.arange(-TIME_STEPS, 1) / 8)])


def sup_ratio(env: np.ndarray, N0: float, denom: np.ndarray) -> float:
    """sup over t of ‖ã_t‖/D(t) for an increasing D: on [t_j, t_{j+1}] at most env_j/D(t_j);
    at t = 0 exactly N0/D(0)."""
    return float(max(N0 / denom[0], np.max(env / denom[:-1])))


class Lemma44(EMWCheck):
    name = "lemma44"
    ref = "[EMW] (notes Lemma 4.4)"
    title = "the random-feature twin's coefficients: ‖ã_t‖ ≤ C̃(1/√m + √t/√m + √t/n^¼)"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019; "
              "lecture 7.2 of the PKU 2019 course by E, Wu and Ma (notes: Lemma 4.4)")
    statement = ("With a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ, y_i = f*(x_i), ‖f*‖∞ ≤ 1, and ã_t the gradient flow of "
                 "R̂_n(·, B_0) in a alone from a_0: w.p. ≥ 1 − 4ε, for all t ∈ [0, T], "
                 "‖ã_t‖ ≤ C̃(1/√m + √t/√m + √t/n^{1/4}), C̃ independent of m, n and t.")
    typos = [
        "the second scribe writes t/√m for the middle term; the notes' √t/√m is the one the proof gives.",
        "the notes' hypothesis \"m ≥ r²\" is unresolved (perhaps γ(f*)²); no step of the proof needs it: "
        "claim.m_at_least_gamma2 enforces the γ² reading, off by default.",
    ]
    method = ("ã_t in closed form from the SVD of Φ = σ(XB_0ᵀ) (no integrator), on t = 0 and 321 geometric times "
              "up to T; each coordinate of Vᵀã_t is monotone in t, so suprema over t are exact from the grid. "
              "The proof's inequality is checked in every trial; Ĉ's log-log slopes in m (at the largest n) and "
              "in n (at the largest m) by an exact permutation test.")
    claim_model = Lemma44Claim
    sections = {"target": TargetSpec, "network": EMWNetwork, "grid": EMWGrid, "dynamics": Lemma44Horizon}
    default = emw_default(400, 2048, {"T": 2.0}, {"c": 0.01, "slope_tolerance": 0.2, "permutations": 2000,
                                                "m_at_least_gamma2": False})

    def prepare(self, sc, explicit, rng) -> Context:
        state, q = prepare_state(sc, self.name, self.AUTO_TRIALS)
        if sc.claim.m_at_least_gamma2 and min(state.widths) < state.target.gamma ** 2:
            raise UserError(f"claim.m_at_least_gamma2 is set, but the grid's smallest width {min(state.widths)} is "
                            f"below γ(f*)² = {state.target.gamma ** 2:.4g}.")
        m, n = state.m_max, state.n_max
        # per trial: Φ and its SVD factors (n × m twice, k × m), the time grid × k
        k = min(m, n)
        trial_bytes = require_memory(8.0 * (3 * n * m + k * m + 4 * (TIME_STEPS + 1) * k),
                                     f"lemma44 with m up to {m} and n = {n} inputs")
        q.update({"c": sc.claim.c, "T": sc.dynamics.T, "slope_tolerance": sc.claim.slope_tolerance})
        return Context(quantities=q, trial_bytes=trial_bytes, state=state)

    def rows(self, sc, ctx) -> list[ClaimRow]:
        tol = sc.claim.slope_tolerance
        rate = "Ĉ = sup_t ‖ã_t‖/(1/√m + √t/√m + √t/n^{1/4})"
        return [
            ClaimRow("bound", UNIVERSAL, "for all t ≤ T: ‖ã_t‖ ≤ ‖a_0‖ + 2‖a*‖ + √(2t R̂_n(a*, B_0)), "
                     "a*_k = a*(b_k)/m (the proof's explicit form; deterministic)"),
            constant_row("m", rate, ctx.state, tol),
            constant_row("n", rate, ctx.state, tol),
            ClaimRow("control_no_a0", UNIVERSAL,
                     "control (false by proof): ‖ã_t‖ ≤ √(2t R̂_n(0, B_0)) for all t ≤ T (the bound without ‖a_0‖, "
                     "a* = 0); at t = 0 the left side is ‖a_0‖ = c/√m > 0, the right side 0", primary=False),
            ClaimRow("control_m_rate", SCALING,
                     "control (false by proof): Ĉ with 1/√m replaced by 1/m^{3/2} does not grow with m; at t → 0+ "
                     "the ratio is ‖a_0‖m^{3/2} = c·m, so Ĉ ≥ c·m grows without bound (slope 1 where that limit "
                     "is the supremum)",
                     tolerance=tol, primary=False),
            ClaimRow("control_n_rate", SCALING,
                     "control (false by proof): Ĉ with 1/√m replaced by 1/(n√m) does not grow with n; at t → 0+ "
                     "the ratio is ‖a_0‖√m·n = c·n, so Ĉ ≥ c·n grows without bound (slope 1 where that limit is "
                     "the supremum)",
                     tolerance=tol, primary=False),
        ]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        state = ctx.state
        m, n = state.point(index)
        c, T = sc.claim.c, sc.dynamics.T
        dr = draw(state, m, n, c, rng)
        tw = RFTwin(dr.Phi, dr.a0, dr.y)
        t = times(T)
        N, env = tw.norm_profile(t)
        a_star = state.target.a_star(dr.B0) / m
        r_star = float(np.sum((dr.Phi @ a_star - dr.y) ** 2)) / (2 * n)
        r_zero = float(dr.y @ dr.y) / (2 * n)
        na0, nas = float(np.linalg.norm(dr.a0)), float(np.linalg.norm(a_star))
        err = tw.rel_error * float(max(env.max(), na0 + 2 * nas))
        rhs = na0 + 2 * nas + np.sqrt(2 * t * r_star)
        out = {"bound": _universal(N, env, rhs, err),
               "control_no_a0": _universal(N, env, np.sqrt(2 * t * r_zero), err)}
        sm, q = math.sqrt(m), n ** 0.25
        st = np.sqrt(t)
        values = {
            "m": float(m), "n": float(n),
            "ratio_bound": float(max(N[0] / rhs[0], np.max(env / rhs[:-1]))),
            "C_hat": sup_ratio(env, N[0], 1 / sm + st / sm + st / q),
            "C_hat_m_rate": sup_ratio(env, N[0], 1 / (m * sm) + st / sm + st / q),
            "C_hat_n_rate": sup_ratio(env, N[0], 1 / (n * sm) + st / sm + st / q),
            "a_tilde_T": float(N[-1]), "a_star_norm": nas, "risk_a_star": r_star,
            "t_at_sup": float(t[int(np.argmax(N / (1 / sm + st / sm + st / q)))]),
        }
        return TrialResult(index, out, values)

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        by = self.summarize_grid(sc, ctx, rows, trials,
                                 (("C_m", "C_hat", "m"), ("C_n", "C_hat", "n"), ("control_m_rate", "C_hat_m_rate", "m"),
                                  ("control_n_rate", "C_hat_n_rate", "n")),
                                 maxima=("C_hat",), medians=("a_tilde_T", "t_at_sup"))
        by["bound"].figures.update({
            "worst_ratio_to_bound": max(t.values["ratio_bound"] for t in trials),
            "a_star_norm_median": float(np.median([t.values["a_star_norm"] for t in trials])),
        })


def _universal(N: np.ndarray, env: np.ndarray, rhs: np.ndarray, err: float) -> str:
    """‖ã_t‖ ≤ rhs(t) for all t, rhs nondecreasing: violated at a time beyond the rounding
    allowance; holds when every interval's supremum is below the bound at its start."""
    if np.any(N > rhs + err):
        return VIOLATION
    if N[0] <= rhs[0] - err and np.all(env <= rhs[:-1] - err):
        return HOLDS
    return UNDECIDED
