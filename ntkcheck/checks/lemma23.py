"""Lemma 2.3 of the notes ([DZPS] Lemma 3.2): H is stable on a ball around W(0).

Corrected statement: with probability at least 1 − δ over
W(0) (w_k(0) ~ N(0, I) i.i.d.), for **every** W with ‖w_k − w_k(0)‖₂ ≤ R for
all k, where R = c·δ·λ0/n², both

    ‖H(W) − H(W(0))‖₂ < λ0/4      and      λ_min(H(W)) > λ0/2.

A trial draws W(0) and brackets the supremum over the ball (``kernels.certificate``, ``kernels.attack``): it
*holds* when the certified bound already satisfies the claim, is a *violation*
when an explicit W in the ball (the attack) breaks it, and is *undecided*
otherwise. The data are drawn once per run (data stream of the seed) and kept
fixed across trials, as in the lemma.

The lemma is one event of probability ≥ 1 − δ covering both conclusions, so the primary
row is the joint event; each conclusion alone is a secondary row (two marginal rows can
both PASS while the joint event fails, when their failures fall in different trials).
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
from pydantic import Field

from ..kernels import (InputGrams, Lambda0, attack, band_guess, certify, critical_radii, eigenvalue_tolerance,
                       gram_matrix)
from ..memory import cache_rows, require_memory
from ..scenario import FailureProbability, Strict
from ..critical import CriticalSpec
from ..planning import critical_value
from ..stats import PROBABILISTIC, ClaimRow
from .base import (HOLDS, UNDECIDED, VIOLATION, Check, Context, TrialResult, joint, load_inputs,
                   ntk_quantities, require_lambda0)

C_DEFAULT = math.sqrt(2 * math.pi) / 16


class Lemma23Claim(Strict):
    delta: FailureProbability = Field(0.1, description="failure probability δ of the lemma")
    c: float = Field(C_DEFAULT, gt=0.0, le=1e12,
                     description="constant c in R = c·δ·λ0/n² (default √(2π)/16, from the proof)")
    attack_iterations: int = Field(3, ge=0, le=100,
                                   description="power-iteration steps of each attack on the ball")



@dataclass
class Lemma23State:
    """The inputs, the certified λ0, the control's witness (λ_min of H at the ball's point
    with every w_k = −x_1, with its floating-point allowance), and X's Gram matrices for the
    run's m, which every trial's band guess, critical radii and attack share."""

    X: np.ndarray
    lambda0: Lambda0
    witness_lambda_min: tuple[float, float]
    grams: InputGrams


def largest_distance(W: np.ndarray, x: np.ndarray) -> float:
    """max_k ‖w_k − x‖₂, in row blocks of about 1 MiB: the same numbers as the whole-array
    expression, without its two m × d temporaries (160 MiB and their page faults at m = 2^20)."""
    step = cache_rows(W.shape[1], 8, 1 << 20)
    buf = np.empty((min(step, W.shape[0]), W.shape[1]))
    top = 0.0
    for a in range(0, W.shape[0], step):
        B = buf[: min(step, W.shape[0] - a)]
        np.subtract(W[a:a + step], x, out=B)
        np.multiply(B, B, out=B)
        top = max(top, float(B.sum(axis=1).max()))
    return math.sqrt(top)  # (√ is monotone and correctly rounded: the max of the roots)


class Lemma23(Check):
    name = "lemma23"
    title = "H(W) stays within λ0/4 of H(W(0)) on a ball of radius R = cδλ0/n²"
    ref = "[DZPS] Lemma 3.2"
    source = "[DZPS] Du, Zhai, Póczos, Singh, ICLR 2019, Lemma 3.2 (notes: Lemma 2.3)"
    statement = ("With probability ≥ 1−δ over W(0) ~ N(0, I), for every W with ‖w_k − w_k(0)‖₂ ≤ R "
                 "for all k, where R = c·δ·λ0/n²: ‖H(W) − H(W(0))‖₂ < λ0/4 and λ_min(H(W)) > λ0/2.")
    typos = [
        "the notes write w_k ~ Ω(0, I); it is N(0, I).",
        "the notes call the failure probability ε and state only the first conclusion; "
        "[DZPS] Lemma 3.2 also concludes λ_min(H(W)) > λ0/2.",
        "c is 'a small constant' in the paper; the proof (P(|w·x| ≤ R) ≤ 2R/√(2π), then Markov) "
        "works with c = √(2π)/16 ≈ 0.157, the default.",
    ]
    method = ("Per trial: certified bound λ_max(E) with E_ij = |x_i·x_j|(c_i + c_j − (AᵀA)_ij)/m over the "
              "signs that can flip (|w_k(0)·x_i| ≤ R); attack: explicit W in the ball built by per-neuron "
              "pushes of length R, iterated on the extreme eigenvector. holds = certified, "
              "violation = attack breaks the claim, else undecided. The primary row is the joint event "
              "(holds when both conclusions are certified, violation when the attack breaks either). "
              "c* = largest c that still PASSes (same trials, the certificate is monotone in c), for the "
              "joint row and for each conclusion alone.")
    claim_model = Lemma23Claim
    #: c*: a trial's joint event is certified exactly while c is below both its critical radii
    #: (in units of δλ0/n²), so the critical c is exact from one run's trials
    critical = {"claim.c": CriticalSpec(
        "claim.c", "largest",
        thresholds=lambda trials: {"joint": np.minimum([t.values["c_crit_norm"] for t in trials],
                                                       [t.values["c_crit_lambda_min"] for t in trials])},
        measure=lambda c, q: c * q["delta"] * q["lambda0"] / q["n"] ** 2,
        measured="critical radius R* = c*·δλ0/n²",
        proof=lambda q: C_DEFAULT * q["delta"] * q["lambda0"] / q["n"] ** 2,
        proof_label="the proof's radius √(2π)/16·δλ0/n²")}
    default = {
        "seed": 0,
        "trials": "auto",
        "confidence": 0.95,
        "data": {"source": "sphere", "n": 50, "d": 10},
        "network": {"m": 4096},
        "claim": {"delta": 0.1, "c": C_DEFAULT, "attack_iterations": 3},
    }

    def prepare(self, sc, explicit, rng) -> Context:
        inputs = load_inputs(sc, explicit, rng)
        lam = require_lambda0(inputs)
        n = inputs.n
        m, d = sc.network.m, inputs.d
        # W(0) is held whole (m × d); the passes over neurons stay within the working-memory budget
        # (and the run's InputGrams: two n × n arrays, counted with the trial's)
        trial_bytes = require_memory(8.0 * m * d + 3 * sc.compute.working_memory_mb * 2**20 + 96.0 * n * n,
                       f"lemma23 with m = {m}, d = {d}, n = {n}")
        R = sc.claim.c * sc.claim.delta * lam.value / n**2
        q = ntk_quantities(inputs, lam, sc.network.m)
        q.update({"delta": sc.claim.delta, "c": sc.claim.c, "radius": R,
                  "threshold_norm": lam.value / 4, "threshold_lambda_min": lam.value / 2})
        # the control's witness W (every w_k = −x_1): H(W) does not depend on the trial's W(0), and
        # m equal neurons give the H of one
        H_w = gram_matrix(inputs.X, -inputs.X[:1], sc.compute.working_memory_mb)
        witness = (float(np.linalg.eigvalsh(H_w)[0]), eigenvalue_tolerance(H_w) + lam.error)
        return Context(quantities=q, trial_bytes=trial_bytes, notes=list(inputs.notes),
                       state=Lemma23State(inputs.X, lam, witness, InputGrams.of(inputs.X, m)))

    #: an undecided trial: the certificate's bound is past the threshold, the attack's W is not
    NARROW = ("more attack iterations (claim.attack_iterations) may find a violating W; only a smaller "
              "ball (claim.c) lets the certificate prove the claim")

    def rows(self, sc, ctx) -> list[ClaimRow]:
        target = 1.0 - sc.claim.delta
        return [
            ClaimRow("joint", PROBABILISTIC,
                     "for every W in the ball, both ‖H(W) − H(W(0))‖₂ < λ0/4 and λ_min(H(W)) > λ0/2 "
                     "(one event of probability ≥ 1−δ)", target=target, narrow=self.NARROW),
            ClaimRow("norm", PROBABILISTIC, "that conclusion alone: sup over the ball of ‖H(W) − H(W(0))‖₂ < λ0/4",
                     target=target, primary=False, role="secondary", narrow=self.NARROW),
            ClaimRow("lambda_min", PROBABILISTIC, "that conclusion alone: inf over the ball of λ_min(H(W)) > λ0/2",
                     target=target, primary=False, role="secondary", narrow=self.NARROW),
            ClaimRow("control_big_ball", PROBABILISTIC,
                     "control (false by proof): the joint claim on the ball of radius max_k ‖w_k(0) + x_1‖, "
                     "which holds W with every w_k = −x_1; there row 1 of H(W) is zero, so "
                     "λ_min(H(W)) = 0 < λ0/2 in every trial", target=target, primary=False),
        ]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        X = ctx.state.X
        lam = ctx.state.lambda0
        l0 = lam.value
        R = ctx.quantities["radius"]
        wm = sc.compute.working_memory_mb
        W0 = rng.standard_normal((sc.network.m, X.shape[1]))
        # the critical radii search the entries up to about their edges; the certificate's pass
        # gathers them (its thresholds are l0/4 and λ_min(H(W(0))) − l0/2, the latter taken here
        # at λ_min ≈ λ0: a guess, which critical_radii checks and extends if it falls short)
        grams = ctx.state.grams
        cert = certify(X, W0, R, wm, band=band_guess(X, W0, [l0 / 4, l0 / 2], grams))
        att = attack(X, W0, R, cert, sc.claim.attack_iterations, wm, keep_points=ctx.keep_points, grams=grams)
        tol = cert.tol + lam.error
        lower_min = cert.lam_min_H0 - cert.lam_max_E
        out = {}
        if cert.lam_max_E + tol < l0 / 4:
            out["norm"] = HOLDS
        elif att.norm_dH >= l0 / 4 + tol:
            out["norm"] = VIOLATION
        else:
            out["norm"] = UNDECIDED
        if lower_min - tol > l0 / 2:
            out["lambda_min"] = HOLDS
        elif att.lam_min + tol <= l0 / 2:
            out["lambda_min"] = VIOLATION
        else:
            out["lambda_min"] = UNDECIDED
        out["joint"] = joint(out["norm"], out["lambda_min"])
        # the control's witness, every w_k = −x_1, lies in this trial's ball of radius max_k ‖w_k(0) + x_1‖
        lam_w, tol_w = ctx.state.witness_lambda_min
        out["control_big_ball"] = VIOLATION if lam_w + tol_w <= l0 / 2 else UNDECIDED
        scale = X.shape[0] ** 2 / (sc.claim.delta * l0)  # c = R · n²/(δ λ0)
        r_norm, r_min = critical_radii(X, W0, [l0 / 4, cert.lam_min_H0 - l0 / 2], tol, wm, band=cert.band,
                                       grams=grams)
        values = {
            "certified_norm": cert.lam_max_E,
            "attack_norm": att.norm_dH,
            "certified_lambda_min": lower_min,
            "attack_lambda_min": att.lam_min,
            "lambda_min_H0": cert.lam_min_H0,
            "flippable_per_input": float(cert.counts.mean()),
            "c_crit_norm": r_norm * scale,
            "c_crit_lambda_min": r_min * scale,
            "control_radius": largest_distance(W0, -X[0]),
            "control_lambda_min": lam_w,
        }
        pts = {"W0": W0, "attack_norm": att.W_norm, "attack_lambda_min": att.W_lam_min} if ctx.keep_points else {}
        return TrialResult(index, out, values, points=pts)

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        by = {r.name: r for r in rows}
        for name, cert_key, att_key, worst in (("norm", "certified_norm", "attack_norm", np.max),
                                               ("lambda_min", "certified_lambda_min", "attack_lambda_min", np.min)):
            cv = np.array([t.values[cert_key] for t in trials])
            av = np.array([t.values[att_key] for t in trials])
            by[name].figures.update({
                "threshold": ctx.quantities["threshold_norm" if name == "norm" else "threshold_lambda_min"],
                "certified_median": float(np.median(cv)), "certified_worst": float(worst(cv)),
                "attack_median": float(np.median(av)), "attack_worst": float(worst(av)),
            })
        ctl = np.array([t.values["control_lambda_min"] for t in trials])
        by["control_big_ball"].figures.update({
            "radius_median": float(np.median([t.values["control_radius"] for t in trials])),
            "witness_lambda_min_max": float(ctl.max())})
        # c*: the largest c at which the same trials still PASS (certified outcomes are monotone in
        # c). A trial's joint event is certified exactly while c is below both of its thresholds.
        c_norm = np.array([t.values["c_crit_norm"] for t in trials])
        c_min = np.array([t.values["c_crit_lambda_min"] for t in trials])
        target = by["joint"].target
        table, _ = critical_value([self.critical["claim.c"].thresholds(trials)["joint"]], [target], sc.confidence)
        by["joint"].figures["critical_c"] = table
        for name, th in (("norm", c_norm), ("lambda_min", c_min)):  # each alone, as its row is decided
            by[name].figures["critical_c"] = critical_value([th], [target], sc.confidence)[0]
        ctx.quantities["critical_c"] = table
        centre = sum(t.values["lambda_min_H0"] <= ctx.quantities["threshold_lambda_min"] for t in trials)
        if centre:
            ctx.notes.append(
                f"in {centre} of {len(trials)} trials λ_min(H(W(0))) ≤ λ0/2 already at the centre of the ball, "
                f"where no radius can help: the width m = {sc.network.m} is too small for these inputs (Corollary "
                "2.2 needs m ≥ C n² log(n/δ)/λ0² for λ_min(H(W(0))) ≥ ¾λ0).")

