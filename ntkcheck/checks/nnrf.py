"""The lecture's second conclusion: the network is close to its random-feature twin at the
beginning of training, and how long "the beginning" lasts.

Lemma 4.3's model, data and joint flow (a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ, y_i = f*(x_i));
ã_t the twin (gradient flow in a alone, B_0 frozen). For any m and every t, with unit x:

    sup_x |f(x; a_t, B_t) − f(x; ã_t, B_0)| ≤ ‖a_t − ã_t‖‖B_t‖ + ‖ã_t‖‖B_t − B_0‖,

since f − f̃ = Σ_k (a_k − ã_k)σ(b_k·x) + ã_k(σ(b_k·x) − σ(b_k(0)·x)), |σ(b·x)| ≤ ‖b‖ and
|σ(b·x) − σ(b′·x)| ≤ ‖b − b′‖, then Cauchy–Schwarz. The notes: "NN is close to the kernel when
m ≥ O(n²); otherwise only at the beginning".

A trial draws data, 256 held-out points and an initialisation at one grid point and integrates
the network and its twin together (:func:`ntkcheck.checks.emw.train_pair`) over [0, T],
landing on 81 geometric checkpoints T·2^(k/4), k = −80 … 0, where the two predictions are
compared on the training and held-out points.

Rows:

* ``explicit`` (universal): the inequality at every checkpoint. It is algebraic in the state,
  so it is checked at the computed states: it holds when the per-neuron bound
  Σ_k |a_k − ã_k|‖b_k‖ + |ã_k|‖b_k − b_k(0)‖ (an upper bound of the supremum over the sphere)
  is below the right side; a violation is a sampled |f − f̃| above it.
* ``t_close_m``, ``t_close_n`` (scaling, secondary: measurements): t_close, the first
  checkpoint at which max |f − f̃| over the sampled points exceeds ``claim.tolerance`` (T if
  never: censored; a grid with a censored trial gets no exponent), against m (at n = data.n)
  and against n (at m = network.m). The
  rows test that 1/t_close does not grow (slope ≤ 0): t_close's fitted exponent is minus the
  slope, reported with its interval. The per-neuron bound gives a lower end: the supremum over
  the sphere stays below the tolerance until the first checkpoint where the bound exceeds it.

Control, false by the argument in its row:

* ``control_first_term``: sup_x |f − f̃| ≤ ‖a_t − ã_t‖‖B_t‖ (the second term dropped). As
  t → 0+ the right side is O(t²) (a_t − ã_t = O(t²)), while f − f̃ = ã_t(σ(B_t x) − σ(B_0 x)) +
  O(t²) = −t Σ_k a_k(0)² 1{b_k·x > 0} g_k·x + O(t²), g_k = (1/n)Σ_i r_i 1{b_k·x_i > 0} x_i: of
  order t.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from .. import data as data_mod
from ..memory import require_memory
from ..stats import SCALING, UNIVERSAL, ClaimRow
from .base import Context, TrialResult, decided
from .emw import (FLOW_DEFAULT, EMWCheck, EMWClaim, EMWDynamics, EMWGrid, EMWNetwork, TargetSpec, draw, emw_default,
                  finish_trial, landing_index, prepare_state, train_pair)

CHECKPOINTS = 80
HELD_OUT = 256


class NNRFDynamics(EMWDynamics):
    T: float = Field(200.0, gt=0.0, le=1e5, description="time horizon T")


class NNRFClaim(EMWClaim):
    c: float = Field(1.0, gt=0.0, le=1e6, description="a_k(0) = ±c/m")
    slope_tolerance: float = Field(0.0, ge=-10.0, le=10.0,
                                   description="t_close rows: slope of log(1/t_close) against log m (log n) at most this")
    tolerance: float = Field(1e-3, gt=0.0, le=1e3,
                             description="t_close: the first time max |f − f̃| over the sampled points exceeds this")


class NNRF(EMWCheck):
    name = "nnrf"
    ref = "[EMW] (the lecture's conclusion 2)"
    title = "NN ≈ RF at the beginning: sup_x |f(a_t, B_t) − f(ã_t, B_0)| ≤ ‖a_t − ã_t‖‖B_t‖ + ‖ã_t‖‖B_t − B_0‖, and t_close"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019; "
              "lecture 7 notes (end of §4)")
    statement = ("With a_k(0) = ±c/m, b_k(0) ~ π0, x_i ~ ρ, y_i = f*(x_i), gradient flow on (a, B) and its twin ã_t "
                 "(a alone, B_0 frozen): for every t, sup_{‖x‖=1} |f(x; a_t, B_t) − f(x; ã_t, B_0)| ≤ ‖a_t − ã_t‖‖B_t‖ + "
                 "‖ã_t‖‖B_t − B_0‖; the two predictions stay within a tolerance until t_close(m, n).")
    typos = [
        "the notes' \"otherwise only at the beginning\" gives no time scale; t_close is measured, with its "
        "exponents in m and n.",
    ]
    method = ("Per trial, the network and its twin integrated together over [0, T] (81 geometric checkpoints); the "
              "predictions compared on the training and 256 held-out points; the explicit inequality at every "
              "checkpoint; t_close's log-log slopes in m and n by an exact permutation test.")
    claim_model = NNRFClaim
    sections = {"target": TargetSpec, "network": EMWNetwork, "grid": EMWGrid, "dynamics": NNRFDynamics}
    default = emw_default(64, 16, {"T": 200.0, **FLOW_DEFAULT},
                          {"c": 1.0, "tolerance": 1e-3, "slope_tolerance": 0.0, "permutations": 2000})

    def prepare(self, sc, explicit, rng) -> Context:
        state, q = prepare_state(sc, self.name, self.AUTO_TRIALS)
        m, n, d = state.m_max, state.n_max, sc.data.d
        trial_bytes = require_memory(8.0 * (6 * n * m + 12 * m * (d + 2) + 4 * (HELD_OUT + n) * m),
                                     f"nnrf with m up to {m} and n = {n} inputs")
        q.update({"c": sc.claim.c, "T": sc.dynamics.T, "tolerance": sc.claim.tolerance})
        return Context(quantities=q, trial_bytes=trial_bytes, state=state)

    def rows(self, sc, ctx) -> list[ClaimRow]:
        tol, s = sc.claim.tolerance, sc.claim.slope_tolerance
        close = f"t_close (max |f − f̃| over the sampled points first above {tol:g}; T = {sc.dynamics.T:g} if never)"
        return [
            ClaimRow("explicit", UNIVERSAL, "sup_x |f(x; a_t, B_t) − f(x; ã_t, B_0)| ≤ ‖a_t − ã_t‖‖B_t‖ + ‖ã_t‖‖B_t − B_0‖ "
                     "at every checkpoint"),
            ClaimRow("t_close_m", SCALING, f"1/{close} does not grow with m (at n = {ctx.state.n_max}): wider "
                     "networks stay near their twin at least as long; t_close's exponent is minus the slope",
                     tolerance=s, primary=False, role="secondary"),
            ClaimRow("t_close_n", SCALING, f"1/t_close does not grow with n (at m = {ctx.state.m_max})",
                     tolerance=s, primary=False, role="secondary"),
            ClaimRow("control_first_term", UNIVERSAL,
                     "control (false by proof): sup_x |f − f̃| ≤ ‖a_t − ã_t‖‖B_t‖; the right side is O(t²) as t → 0+, "
                     "the left side of order t (−t Σ_k a_k(0)² 1{b_k·x > 0} g_k·x)", primary=False),
        ]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        state = ctx.state
        m, n = state.point(index)
        T = sc.dynamics.T
        dr = draw(state, m, n, sc.claim.c, rng)
        Xs = np.vstack([dr.X, data_mod.sample("sphere", HELD_OUT, dr.X.shape[1], rng)])
        S0 = np.maximum(Xs @ dr.B0.T, 0.0)

        def probe(a, B, at):
            diff = np.maximum(Xs @ B.T, 0.0) @ a - S0 @ at
            e = a - at
            per_neuron = float(np.abs(e) @ np.linalg.norm(B, axis=1) + np.abs(at) @ np.linalg.norm(B - dr.B0, axis=1))
            return (float(np.abs(diff).max()), float(np.linalg.norm(e) * np.linalg.norm(B)),
                    float(np.linalg.norm(at) * np.linalg.norm(B - dr.B0)), per_neuron)

        cps = T * 2.0 ** (np.arange(-CHECKPOINTS, 1) / 4)
        tr = train_pair(dr, cps, sc.dynamics, probe=probe)
        got, first, second, U = np.array(tr["probe"]).T
        reached = np.append(0.0, cps)[:got.size]
        at = landing_index(tr["t"], reached)
        rhs = first + second
        slack = 1e-9 * rhs + 1e-300
        # the control's violation must survive the integration error of f − f̃ (δe‖B‖ + (‖e‖ + ‖ã‖ + δa)δB)
        err_f = tr["gap_error"][at] * tr["B_norm"][at] + (tr["gap"][at] + tr["a_norm"][at] + tr["a_est"][at]) * tr["B_est"][at]
        trusted = tr["trusted"][at]
        out = {"explicit": decided(np.any(got > rhs + slack), np.all(U <= rhs + slack)),
               "control_first_term": decided(np.any((got - err_f > first + err_f + slack) & trusted), False)}
        tol = sc.claim.tolerance
        over = np.flatnonzero(got > tol)
        t_close = float(reached[over[0]]) if over.size else T
        over_U = np.flatnonzero(U > tol)
        values = {"m": float(m), "n": float(n), "t_close": t_close, "inv_t_close": 1.0 / t_close,
                  "censored": float(over.size == 0), "t_close_lower": float(reached[over_U[0]]) if over_U.size else T,
                  "max_gap_end": float(got[-1]), "ratio_to_bound": float(np.max(got[1:] / np.maximum(rhs[1:], 1e-300))),
                  "steps": float(tr["run"].steps), "seconds": tr["run"].seconds}
        return finish_trial(index, out, values, tr["run"])

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        state = ctx.state
        grids = {"t_close_m": [t for t in trials if t.values["n"] == state.n_max],
                 "t_close_n": [t for t in trials if t.values["m"] == state.m_max]}
        censored = {name: int(sum(t.values["censored"] for t in on)) for name, on in grids.items()}
        # a censored t_close is only a lower bound (T): its grid gets no exponent
        fitted = tuple((name, "inv_t_close", name[-1]) for name in grids if not censored[name])
        by = self.summarize_grid(sc, ctx, rows, trials, fitted, maxima=("ratio_to_bound", "censored"),
                                 medians=("t_close", "t_close_lower", "max_gap_end", "steps", "seconds"))
        for name, on in grids.items():
            row = by[name]
            row.figures["censored_trials"] = censored[name]
            if censored[name]:
                row.measured = len(on)
            elif row.estimate is not None:
                row.figures["t_close_exponent"] = -row.estimate
        by["explicit"].figures["worst_ratio_to_bound"] = max(t.values["ratio_to_bound"] for t in trials)
