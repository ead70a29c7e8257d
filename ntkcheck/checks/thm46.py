"""Theorem 4.6 of the notes ([EMW]): the population risk in the early-stopping window.

Corrected statement (second scribe, E's slides): Lemma 4.3's model, data and joint flow. If
m ≥ n and 0 < t ≤ √n/m, then with probability ≥ 1 − ε (the notes' 1 − ε is 1 − 4ε with ε/4):
R(a_t, B_t) ≤ C(1/m + 1/(mt) + n^{−1/2}(1 + √t + √(mt)/n^{1/4})²), R the population risk
E_{x~ρ}(f(x; a, B) − f*(x))² under ρ uniform on the sphere, C independent of m, n and t.

A trial is thm42's (data and initialisation at one grid point, the joint flow over the window
(0, √n/m] landing on 81 geometric checkpoints, the twin ã_t exact). Population risks are exact
for uniform ρ (:func:`ntkcheck.rf.population_risk`: σ is 1-homogeneous, so a trained
b_k enters as a_k‖b_k‖ on b_k/‖b_k‖, and the targets module gives E[f*σ(b·x)] and ‖f*‖² with
bounded errors). The network's R(a_t, B_t) needs an m × m kernel per time, so it is taken at
t = 0 and at every 16th checkpoint counted back from the window's end (6 times in the window,
a factor 2⁴ apart; R need not be monotone along the flow, so suprema over the window are over
those times); the twin's R(ã_t, B_0) shares one kernel and is taken at all 81 checkpoints. The
generalization gap R − 2R̂_n (R̂_n carries the factor ½) is reported.

Rows:

* ``split`` (universal): R(a_t, B_t) ≤ 3(‖a_t − ã_t‖²‖B_t‖² + ‖ã_t‖²‖B_t − B_0‖² + R(ã_t, B_0))
  at the 7 times: pointwise in x, |f(x; a, B) − f(x; ã, B_0)| ≤ ‖a − ã‖‖B‖ + ‖ã‖‖B − B_0‖ for
  unit x, and (u + v + w)² ≤ 3(u² + v² + w²), then E_x.
* ``twin_risk`` (universal): thm42's row, R̂_n(ã_t, B_0) ≤ R̂_n(a*, B_0) + ‖a_0 − a*‖²/(2t) over
  the whole window.
* ``C_m`` (scaling): Ĉ = sup_t R(a_t, B_t)/(1/m + 1/(mt) + n^{−1/2}(1 + √t + √(mt)/n^{1/4})²) does
  not grow with m (at n = data.n).
* ``C_n_proof`` (scaling): the same ratio for the proof's bound P(t) = 3(‖a_t − ã_t‖²‖B_t‖² +
  ‖ã_t‖²‖B_t − B_0‖² + 2R̂_n(a*, B_0) + ‖a_0 − a*‖²/t + G(t)₊) at the 81 checkpoints does not
  grow with n (at m = network.m), G(t) = R(ã_t, B_0) − 2R̂_n(ã_t, B_0) the twin's
  generalization gap (measured exactly; the proof bounds it by a Rademacher complexity, which
  is where n^{−1/2}(1 + √t + √(mt)/n^{1/4})² comes from). ``split`` and ``twin_risk`` give
  R ≤ P in every trial, so the three rows together imply the statement's claim in n.
* ``C_n`` (scaling, secondary): Ĉ itself against n. As for thm42, on the default grid it
  rises with n while Ĉ_proof is flat: at the window's end m·t = √n the risk has not fallen
  far, and Ĉ sits well below the proof's constant.
* ``probability`` (probabilistic, when ``claim.C`` is set): the bound with that C at the 6
  times, with probability ≥ 1 − ε.

Controls, each false by the argument in its row (R(a_0, B_0) ≥ (‖f*‖_ρ − ‖f_0‖_ρ)² > 0 is exact
at t = 0, and ‖f_0‖_ρ ≤ c/√m):

* ``control_split_half``: the split with 3 replaced by ½. At t = 0 (a_t = ã_t, B_t = B_0) its
  right side is R(a_0, B_0)/2 < R(a_0, B_0).
* ``control_twin_fast``: thm42's, R̂_n(ã_t, B_0) ≤ e^{−3λt}R̂_n(a_0, B_0), false at every t > 0.
* ``control_no_early_stopping``: the bound without its 1/(mt) term does not grow with n. As
  t → 0+ the ratio tends to R(a_0, B_0)/(1/m + n^{−1/2}), which grows like √n while 1/√n ≫ 1/m.
* ``control_m_rate``: the bound without 1/(mt), the rest divided by m, does not grow with m. As
  t → 0+ the ratio tends to m·R(a_0, B_0)/(1/m + n^{−1/2}): at least linear in m.
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from ..memory import require_memory
from ..models import TwoLayerNetwork
from ..rf import population_risk, population_risks
from ..stats import PROBABILISTIC, SCALING, UNIVERSAL, ClaimRow
from .base import Context, TrialResult, decided
from .emw import (FLOW_DEFAULT, EMWCheck, EMWClaim, EMWDynamics, EMWGrid, EMWNetwork, TargetSpec, constant_row, emw_default,
                  finish_trial, landing_index, prepare_state, split_outcomes, summarize_window, twin_risk_bound,
                  window, window_control_rows, window_flow)

#: the network's population risk at t = 0 and at every EVERY-th checkpoint back from the end
EVERY = 16


class Thm46Claim(EMWClaim):
    epsilon: float = Field(0.2, gt=0.0, lt=1.0, description="the statement's ε: probability ≥ 1 − ε")
    C: float | None = Field(None, gt=0.0, le=1e12,
                            description="a constant to test: adds the probabilistic row R ≤ C(…) w.p. ≥ 1 − ε")


def rate(m: int, n: int, t: np.ndarray) -> np.ndarray:
    return 1 / m + 1 / (m * t) + (1 + np.sqrt(t) + np.sqrt(m * t) / n ** 0.25) ** 2 / math.sqrt(n)


class Thm46(EMWCheck):
    name = "thm46"
    ref = "[EMW] (notes Theorem 4.6)"
    title = "population risk with early stopping: R ≤ C(1/m + 1/(mt) + n^{−1/2}(1 + √t + √(mt)/n^{1/4})²)"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019; "
              "lecture 7.2 of the PKU 2019 course by E, Wu and Ma (notes: Theorem 4.6)")
    statement = ("With a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ uniform on the sphere, y_i = f*(x_i), ‖f*‖∞ ≤ 1 and "
                 "gradient flow on (a, B): if m ≥ n and 0 < t ≤ √n/m, then w.p. ≥ 1 − ε, R(a_t, B_t) ≤ "
                 "C(1/m + 1/(mt) + n^{−1/2}(1 + √t + √(mt)/n^{1/4})²), C independent of m, n and t.")
    typos = [
        "the notes' probability 1 − ε is the second scribe's 1 − 4ε with ε replaced by ε/4.",
        "the notes omit the conditions m ≥ n and t ≤ √n/m (as in Theorem 4.2) and state the rate as "
        "C(1/m + 1/(mt) + 1/√n) for all t ≤ T; the second scribe's n^{−1/2} carries the factor "
        "(1 + √t + √(mt)/n^{1/4})², which lies in [1, 9] inside the window (√(mt) ≤ n^{1/4}, t ≤ √n/m ≤ 1), "
        "so there the two rates agree up to a constant.",
    ]
    method = ("Thm 4.2's trials (the joint flow over the window (0, √n/m], the twin exact); population risks exact "
              "for uniform ρ (σ is 1-homogeneous: a trained b_k enters as a_k‖b_k‖ on b_k/‖b_k‖), the network's at "
              "7 times, the twin's at the 81 checkpoints. The population split and the twin's risk bound are "
              "universal rows; Ĉ's slope in m, and in n that of the proof's bound (the twin's generalization gap "
              "measured in it), by an exact permutation test; Ĉ's own slope in n is a secondary row.")
    claim_model = Thm46Claim
    sections = {"target": TargetSpec, "network": EMWNetwork, "grid": EMWGrid, "dynamics": EMWDynamics}
    default = emw_default(64, 1024, dict(FLOW_DEFAULT), {"c": 0.01, "epsilon": 0.2, "C": None, "slope_tolerance": 0.2,
                                                      "permutations": 2000})

    def prepare(self, sc, explicit, rng) -> Context:
        state, q = prepare_state(sc, self.name, self.AUTO_TRIALS, need_m_ge_n=True)
        m, n, d = state.m_max, state.n_max, sc.data.d
        # per trial: the flow's arrays (as thm42), the m × m kernel of a population risk (and
        # its product with the 81 twins), the kept states
        kept = window(n, m).size // EVERY + 2
        trial_bytes = require_memory(8.0 * (4 * n * m + 12 * m * (d + 1) + 6 * m * n + 3 * m * m + 170 * m
                                            + kept * m * (d + 1)), f"thm46 with m up to {m} and n = {n} inputs")
        q.update({"c": sc.claim.c, "epsilon": sc.claim.epsilon, "C": sc.claim.C,
                  "slope_tolerance": sc.claim.slope_tolerance, "norm2_f_star": state.target.norm2[0]})
        return Context(quantities=q, trial_bytes=trial_bytes, state=state)

    def rows(self, sc, ctx) -> list[ClaimRow]:
        tol = sc.claim.slope_tolerance
        ratio = "Ĉ = sup_{t ≤ √n/m} R(a_t, B_t)/(1/m + 1/(mt) + n^{−1/2}(1 + √t + √(mt)/n^{1/4})²)"
        rows = [
            ClaimRow("split", UNIVERSAL, "R(a_t, B_t) ≤ 3(‖a_t − ã_t‖²‖B_t‖² + ‖ã_t‖²‖B_t − B_0‖² + R(ã_t, B_0)) at "
                     "t = 0 and 6 times of the window (the proof's split, for the population risk)"),
            ClaimRow("twin_risk", UNIVERSAL, "R̂_n(ã_t, B_0) ≤ R̂_n(a*, B_0) + ‖a_0 − a*‖²/(2t) for all t ≤ √n/m, "
                     "a*_k = a*(b_k)/m"),
            constant_row("m", ratio, ctx.state, tol),
            ClaimRow("C_n_proof", SCALING,
                     "the same ratio for the proof's bound P(t) = 3(‖a_t − ã_t‖²‖B_t‖² + ‖ã_t‖²‖B_t − B_0‖² + "
                     "2R̂_n(a*, B_0) + ‖a_0 − a*‖²/t + G(t)₊), G = R(ã_t, B_0) − 2R̂_n(ã_t, B_0) the twin's "
                     f"generalization gap, does not grow with n (at m = {ctx.state.m_max}); with split and "
                     "twin_risk (R ≤ P) it implies the statement in n", tolerance=tol),
            constant_row("n", ratio, ctx.state, tol, ": the statement's rate on R itself, which sits far below P at "
                         "these n", primary=False, role="secondary"),
        ]
        if sc.claim.C is not None:
            rows.append(ClaimRow("probability", PROBABILISTIC,
                                 f"R(a_t, B_t) ≤ {sc.claim.C:g}(1/m + 1/(mt) + n^{{−1/2}}(1 + √t + √(mt)/n^{{1/4}})²) "
                                 f"at 6 times of the window, w.p. ≥ 1 − ε = {1 - sc.claim.epsilon:g}",
                                 target=1 - sc.claim.epsilon))
        rows += window_control_rows("R") + [
            ClaimRow("control_no_early_stopping", SCALING,
                     "control (false by proof): Ĉ for the bound without its 1/(mt) term does not grow with n; as "
                     "t → 0+ the ratio tends to R(a_0, B_0)/(1/m + n^{−1/2}), R(a_0, B_0) ≥ (‖f*‖ − c/√m)², which "
                     "grows like √n while 1/√n ≫ 1/m", tolerance=tol, primary=False),
            ClaimRow("control_m_rate", SCALING,
                     "control (false by proof): Ĉ for the bound without 1/(mt), divided by m, does not grow with m; "
                     "as t → 0+ the ratio tends to m·R(a_0, B_0)/(1/m + n^{−1/2}), at least linear in m",
                     tolerance=tol, primary=False),
        ]
        return rows

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        state = ctx.state
        m, n, dr, tw, grid, tr = window_flow(sc, state, index, rng, keep_every=EVERY)
        net = TwoLayerNetwork(dr.X, dr.y, m)
        pick = np.array(sorted(tr.kept))
        R, R_err = np.array([population_risk(state.target, *net.split(tr.kept[i])) for i in pick]).T
        t = tr.t[pick]
        # the twin's population risk at the checkpoints (B_0 has unit rows: one kernel)
        marks = landing_index(tr.t, grid)
        twin_R, twin_R_err = population_risks(state.target, dr.B0, tw.a_at(np.append(0.0, tr.t[marks]))).T
        twin_at = dict(zip(np.append(0, marks), twin_R))
        values: dict[str, float] = {"m": float(m), "n": float(n)}
        # θ off by δθ moves f by at most δθ(‖B‖_F + ‖a‖) at every unit x, and R by 2√R·δf + δf²
        df = tr.error_theta[pick] * (tr.B_norm[pick] + tr.a_twin[pick] + tr.a_gap[pick])
        err = R_err + 2 * np.sqrt(np.maximum(R, 0.0)) * df + df * df
        # (the twin's risk, within twin_R_err, enters the split's right side three times)
        out = split_outcomes(tr, pick, R, err + 3 * twin_R_err.max(), np.array([twin_at[i] for i in pick]), values)
        a_star = state.target.a_star(dr.B0) / m
        r_star = float(np.sum((dr.Phi @ a_star - dr.y) ** 2)) / (2 * n)
        dist2 = float(np.sum((a_star - dr.a0) ** 2))
        out.update(twin_risk_bound(tw, grid, r_star, dist2, values))
        # the proof's bound at the checkpoints
        gap_twin = twin_R[1:] - 2 * tr.twin_risk[marks]
        P = 3 * (tr.a_gap ** 2 * tr.B_norm ** 2 + tr.a_twin ** 2 * tr.B_move ** 2)[marks] \
            + 3 * (2 * r_star + dist2 / grid + np.maximum(gap_twin, 0.0))
        D = rate(m, n, t[1:])
        r0 = float(R[0])
        values.update({"C_hat": float(np.max(R[1:] / D)), "C_hat_proof": float(np.max(P / rate(m, n, grid))),
                       "proof_bound_end": float(P[-1]),
                       "C_hat_no_early_stopping": r0 / (1 / m + 1 / math.sqrt(n)),  # the t → 0+ limits
                       "C_hat_m_rate": r0 / (1 / m ** 2 + 1 / (m * math.sqrt(n))),
                       "risk_0": r0, "risk_end": float(R[-1]), "risk_error_max": float(err.max()),
                       "train_risk_end": float(tr.risk[-1]), "gap_end": float(R[-1] - 2 * tr.risk[-1]),
                       "twin_gap_end": float(gap_twin[-1]), "t_window": float(grid[-1]),
                       "steps": float(tr.run.steps), "seconds": tr.run.seconds})
        if sc.claim.C is not None:
            bound = sc.claim.C * D
            out["probability"] = decided(np.any((R[1:] - err[1:] > bound) & tr.trusted[pick][1:]),
                                         np.all(R[1:] + err[1:] <= bound))
        return finish_trial(index, out, values, tr.run)

    def summarize(self, sc, ctx, rows, trials) -> None:
        if trials:
            by = summarize_window(self, sc, ctx, rows, trials,
                                  medians=("risk_end", "train_risk_end", "gap_end", "twin_gap_end", "proof_bound_end",
                                           "steps", "seconds"))
            by["C_m"].figures["risk_error_max"] = max(t.values["risk_error_max"] for t in trials)
