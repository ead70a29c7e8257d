"""Theorem 4.2 of the notes ([EMW]): the training risk in the early-stopping window.

Corrected statement (second scribe, E's slides): Lemma 4.3's model, data and joint flow
(a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ, y_i = f*(x_i), ‖f*‖∞ ≤ 1). If m ≥ n and
0 < t ≤ √n/m, then with probability ≥ 1 − 4ε: R̂_n(a_t, B_t) ≤ C(1/m + 1/(mt) + 1/√n),
C independent of m, n and t. The notes omit m ≥ n and t ≤ √n/m.

A trial draws data and an initialisation at one point (m, n) of the grid (m ≥ n is
enforced), trains (a, B) jointly over the window (0, √n/m] with the shared integrator, landing
on 81 geometric times from √n/m·2⁻²⁰ to √n/m, and evaluates the random-feature twin ã_t
(exact, :mod:`ntkcheck.rftwin`) at every point of the flow.

Rows:

* ``split`` (universal): the proof's three-term split at every point of the flow in the
  window, R̂_n(a_t, B_t) ≤ 3(‖a_t − ã_t‖²‖B_t‖² + ‖ã_t‖²‖B_t − B_0‖² + R̂_n(ã_t, B_0)), norms
  Frobenius (‖x_i‖ = 1: |f(x; a, B) − f(x; ã, B_0)| ≤ ‖a − ã‖‖B‖ + ‖ã‖‖B − B_0‖). A violation
  needs the gap to exceed the integrator's error estimate at a trusted point.
* ``twin_risk`` (universal): R̂_n(ã_t, B_0) ≤ R̂_n(a*, B_0) + ‖a_0 − a*‖²/(2t) for every t in
  the window, a*_k = a*(b_k)/m (J(t) does not increase). The left side does not increase in
  t and the right side decreases, so an interval [t_j, t_{j+1}] holds when the left side at
  t_j is below the right side at t_{j+1}: sound over the whole window.
* ``C_m`` (scaling): Ĉ = sup over the window of R̂_n(a_t, B_t)/(1/m + 1/(mt) + 1/√n) does not
  grow with m (at n = data.n). R̂_n does not increase along the flow and the denominator
  decreases in t, so on [t_j, t_{j+1}] the ratio is at most R̂_n(t_j)/D(t_{j+1}); as t → 0+ it
  tends to 0.
* ``C_n_proof`` (scaling): the same ratio for the proof's bound P(t) = 3(‖a_t − ã_t‖²‖B_t‖² +
  ‖ã_t‖²‖B_t − B_0‖² + R̂_n(a*, B_0) + ‖a_0 − a*‖²/(2t)) at the points of the flow does not grow
  with n (at m = network.m). ``split`` and ``twin_risk`` give R̂_n ≤ P in every trial, so the
  three rows together imply the statement's claim in n.
* ``C_n`` (scaling, secondary): Ĉ itself against n. On the default grid (n ≤ 64, m ≤ 1024) it
  FAILs (slope 0.37) while ``C_n_proof`` is flat (Ĉ_proof ≈ 1.7 at every n): the window ends
  at m·t = √n, too early for R̂_n to fall much (0.013 at n = 4, 0.009 at n = 64), so
  Ĉ ≈ R̂_n·√n/2 rises with n, 20–60 times below the proof's bound, which has the statement's
  rate. At n = 64, 128, 256 and m = 2048 the slope is
  0.22: the rise slows. A measurement of how far below its bound the risk sits, not a test of
  the statement.
* ``probability`` (probabilistic, when ``claim.C`` is set): R̂_n ≤ C(1/m + 1/(mt) + 1/√n) over
  the window holds with probability ≥ 1 − 4ε. The theorem gives no C; set it to test one.

Controls, each false by the argument in its row:

* ``control_split_half``: the split with 3 replaced by ½. At t = 0, a_t = ã_t and B_t = B_0,
  so its right side is R̂_n(a_0, B_0)/2 < R̂_n(a_0, B_0).
* ``control_twin_fast``: R̂_n(ã_t, B_0) ≤ e^{−3λt} R̂_n(a_0, B_0), λ = λ_max(ΦΦᵀ/n). The twin's
  residual obeys r′ = −(ΦΦᵀ/n)r, so ‖r(t)‖² ≥ e^{−2λt}‖r(0)‖²: false at every t > 0.
* ``control_no_early_stopping``: Ĉ for R̂_n ≤ C(1/m + 1/√n) (the 1/(mt) term dropped) does not
  grow with n. As t → 0+ its ratio tends to R̂_n(a_0, B_0)/(1/m + 1/√n), where
  R̂_n(a_0, B_0) ≥ (‖y‖_n − ‖f_0‖_n)²/2 with ‖f_0‖∞ ≤ c/√m: Ĉ ≥ that limit grows like √n
  wherever 1/√n ≫ 1/m.
* ``control_m_rate``: Ĉ for R̂_n ≤ C(1/m² + 1/(m√n)) (no 1/(mt) term, the rest divided by m)
  does not grow with m. As t → 0+ its ratio tends to m·R̂_n(a_0, B_0)/(1/m + 1/√n): at least
  linear in m.
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from ..memory import require_memory
from ..stats import PROBABILISTIC, SCALING, UNIVERSAL, ClaimRow
from .base import Context, TrialResult, decided
from .emw import (FLOW_DEFAULT, EMWCheck, EMWClaim, EMWDynamics, EMWGrid, EMWNetwork, TargetSpec, constant_row, emw_default,
                  finish_trial, prepare_state, split_outcomes, summarize_window, twin_risk_bound, window_control_rows,
                  window_flow)

class Thm42Claim(EMWClaim):
    epsilon: float = Field(0.05, gt=0.0, lt=0.25, description="the statement's ε: probability ≥ 1 − 4ε")
    C: float | None = Field(None, gt=0.0, le=1e12,
                            description="a constant to test: adds the probabilistic row R̂_n ≤ C(…) w.p. ≥ 1 − 4ε")


def rate(m: int, n: int, t: np.ndarray) -> np.ndarray:
    return 1 / m + 1 / (m * t) + 1 / math.sqrt(n)


class Thm42(EMWCheck):
    name = "thm42"
    ref = "[EMW] (notes Theorem 4.2)"
    title = "training risk with early stopping: R̂_n(a_t, B_t) ≤ C(1/m + 1/(mt) + 1/√n) for m ≥ n, t ≤ √n/m"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019; "
              "lecture 7.2 of the PKU 2019 course by E, Wu and Ma (notes: Theorem 4.2)")
    statement = ("With a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ, y_i = f*(x_i), ‖f*‖∞ ≤ 1 and gradient flow on (a, B): "
                 "if m ≥ n and 0 < t ≤ √n/m, then w.p. ≥ 1 − 4ε, R̂_n(a_t, B_t) ≤ C(1/m + 1/(mt) + 1/√n), "
                 "C independent of m, n and t.")
    typos = [
        "the notes omit the conditions m ≥ n and t ≤ √n/m; without them the bound has a further term "
        "(t²/m²)(1 + mt)²(1 + (t²/m²)(t + m)⁴)(1 + √t + √(mt)/n^{1/4})² (second scribe).",
    ]
    method = ("Per trial, the joint flow over the window (0, √n/m] by the shared integrator (81 geometric "
              "checkpoints), the random-feature twin exact at every point. The proof's split and the twin's risk "
              "bound are universal rows; Ĉ's slope in m (at the largest n), and in n that of the proof's bound "
              "(which with the two universal rows implies the statement; Ĉ's own slope in n is a secondary row), "
              "are decided by an exact permutation test.")
    claim_model = Thm42Claim
    sections = {"target": TargetSpec, "network": EMWNetwork, "grid": EMWGrid, "dynamics": EMWDynamics}
    default = emw_default(64, 1024, dict(FLOW_DEFAULT), {"c": 0.01, "epsilon": 0.05, "C": None, "slope_tolerance": 0.2,
                                                      "permutations": 2000})

    def prepare(self, sc, explicit, rng) -> Context:
        state, q = prepare_state(sc, self.name, self.AUTO_TRIALS, need_m_ge_n=True)
        m, n, d = state.m_max, state.n_max, sc.data.d
        # per trial: σ(XBᵀ) and its SVD (n × m), the flow's state and work arrays (m × (d + n))
        trial_bytes = require_memory(8.0 * (4 * n * m + 12 * m * (d + 1) + 6 * m * n),
                                     f"thm42 with m up to {m} and n = {n} inputs")
        q.update({"c": sc.claim.c, "epsilon": sc.claim.epsilon, "C": sc.claim.C,
                  "slope_tolerance": sc.claim.slope_tolerance})
        return Context(quantities=q, trial_bytes=trial_bytes, state=state)

    def rows(self, sc, ctx) -> list[ClaimRow]:
        tol = sc.claim.slope_tolerance
        ratio = "Ĉ = sup_{t ≤ √n/m} R̂_n(a_t, B_t)/(1/m + 1/(mt) + 1/√n)"
        rows = [
            ClaimRow("split", UNIVERSAL, "R̂_n(a_t, B_t) ≤ 3(‖a_t − ã_t‖²‖B_t‖² + ‖ã_t‖²‖B_t − B_0‖² + R̂_n(ã_t, B_0)) "
                     "at every point of the flow in the window (the proof's split)"),
            ClaimRow("twin_risk", UNIVERSAL, "R̂_n(ã_t, B_0) ≤ R̂_n(a*, B_0) + ‖a_0 − a*‖²/(2t) for all t ≤ √n/m, "
                     "a*_k = a*(b_k)/m"),
            constant_row("m", ratio, ctx.state, tol),
            ClaimRow("C_n_proof", SCALING,
                     "the same ratio for the proof's bound P(t) = 3(‖a_t − ã_t‖²‖B_t‖² + ‖ã_t‖²‖B_t − B_0‖² + "
                     "R̂_n(a*, B_0) + ‖a_0 − a*‖²/(2t)) does not grow with n (at m = "
                     f"{ctx.state.m_max}); with split and twin_risk (R̂_n ≤ P) it implies the statement in n",
                     tolerance=tol),
            constant_row("n", ratio, ctx.state, tol, ": the statement's rate on R̂_n itself, which sits far below P "
                         "at these n and need not show the 1/√n rate yet", primary=False, role="secondary"),
        ]
        if sc.claim.C is not None:
            rows.append(ClaimRow("probability", PROBABILISTIC,
                                 f"R̂_n(a_t, B_t) ≤ {sc.claim.C:g}(1/m + 1/(mt) + 1/√n) for all t ≤ √n/m, "
                                 f"w.p. ≥ 1 − 4ε = {1 - 4 * sc.claim.epsilon:g}", target=1 - 4 * sc.claim.epsilon))
        rows += window_control_rows("R̂_n") + [
            ClaimRow("control_no_early_stopping", SCALING,
                     "control (false by proof): Ĉ for R̂_n ≤ C(1/m + 1/√n) (no 1/(mt) term) does not grow with n; "
                     "as t → 0+ the ratio tends to R̂_n(a_0, B_0)/(1/m + 1/√n), R̂_n(a_0, B_0) ≥ "
                     "(‖y‖_n − c/√m)²/2, which grows like √n while 1/√n ≫ 1/m", tolerance=tol, primary=False),
            ClaimRow("control_m_rate", SCALING,
                     "control (false by proof): Ĉ for R̂_n ≤ C(1/m² + 1/(m√n)) does not grow with m; as t → 0+ "
                     "the ratio tends to m·R̂_n(a_0, B_0)/(1/m + 1/√n), at least linear in m",
                     tolerance=tol, primary=False),
        ]
        return rows

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        state = ctx.state
        m, n, dr, tw, grid, tr = window_flow(sc, state, index, rng)
        out: dict[str, str] = {}
        values: dict[str, float] = {"m": float(m), "n": float(n)}
        lhs = tr.risk
        lhs_err = (2 * np.sqrt(2 * n * lhs) * tr.error_u + tr.error_u ** 2) / (2 * n)
        out.update(split_outcomes(tr, slice(None), lhs, lhs_err, tr.twin_risk, values))
        a_star = state.target.a_star(dr.B0) / m
        r_star = float(np.sum((dr.Phi @ a_star - dr.y) ** 2)) / (2 * n)
        dist2 = float(np.sum((dr.a0 - a_star) ** 2))
        out.update(twin_risk_bound(tw, grid, r_star, dist2, values))
        # the proof's bound at the window's end: the split with the twin's risk bound in it
        P = 3 * (tr.a_gap ** 2 * tr.B_norm ** 2 + tr.a_twin ** 2 * tr.B_move ** 2)[1:] \
            + 3 * (r_star + dist2 / (2 * tr.t[1:]))
        values["proof_bound_end"] = float(P[-1])
        values["C_hat_proof"] = float(np.max(P / rate(m, n, tr.t[1:])))
        # Ĉ and the controls: R̂_n does not increase along the flow, the denominators do not
        # increase in t: on [t_j, t_{j+1}] each ratio is at most R̂_n(t_j)/D(t_{j+1})
        t, R = tr.t, tr.risk
        R_env = np.maximum.accumulate(R[::-1])[::-1]  # (guards the sup should rounding raise R̂_n)
        D = rate(m, n, t[1:])
        values["C_hat"] = float(np.max(R_env[:-1] / D))
        r0 = float(R[0])
        values["C_hat_no_early_stopping"] = r0 / (1 / m + 1 / math.sqrt(n))  # the t → 0+ limit: its sup
        values["C_hat_m_rate"] = r0 / (1 / m ** 2 + 1 / (m * math.sqrt(n)))
        if sc.claim.C is not None:
            C = sc.claim.C
            out["probability"] = decided(np.any((R[1:] - tr.error_u[1:] > C * D) & tr.trusted[1:]),
                                          np.all(R_env[:-1] <= C * D))
        values.update({"risk_0": r0, "risk_end": float(R[-1]), "t_window": float(grid[-1]),
                       "twin_gap_end": float(tr.a_gap[-1]), "steps": float(tr.run.steps),
                       "error_theta": float(tr.error_theta[-1]), "seconds": tr.run.seconds})
        return finish_trial(index, out, values, tr.run)

    def summarize(self, sc, ctx, rows, trials) -> None:
        if trials:
            summarize_window(self, sc, ctx, rows, trials, medians=("risk_end", "proof_bound_end", "steps", "seconds"))
