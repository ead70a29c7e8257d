"""Corollary 2.2 of the notes ([DZPS] Lemma 3.1): H(0) is close to H∞ at large width.

Corrected statement: if m ≥ C n² log(n/δ)/λ0², then with
probability at least 1 − δ over W(0) ~ N(0, I):
‖H(0) − H∞‖₂ ≤ λ0/4 and λ_min(H(0)) ≥ ¾λ0.

C is unspecified, so the claim is checked as a probabilistic claim at the given
width. One probability 1 − δ covers both conclusions: the primary row is the joint
event, each conclusion alone a secondary row, and the run reports the ratio m·λ0²/(n² log(n/δ)) (the constant the
width would need). A trial draws W(0) and evaluates H(0) exactly (one product); the
outcome is holds or violation, beyond a floating-point allowance.

Control (false by proof): the joint event at width 1. With one neuron, H(0) =
diag(s) XXᵀ diag(s) for the sign vector s of w·x_i, so a sign of 0 leaves a zero row
and λ_min(H(0)) = 0 < ¾λ0; P(w·x_1 ≥ 0) = ½, so P(joint event) ≤ ½ < 1 − δ.
Variant row: the notes' reading, λ_min(H(0)) ≥ ¾λ0 with no width requirement, tested
at width ``claim.variant_width`` (default 16); it is expected to fail but no proof
says so at that width.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
from pydantic import Field

from ..critical import CriticalSpec
from ..kernels import Lambda0, eigenvalue_tolerance, gram_matrix
from ..memory import require_memory
from ..scenario import FailureProbability, Strict
from ..stats import PROBABILISTIC, ClaimRow
from .base import (Check, Context, TrialResult, at_most, joint, load_inputs, ntk_quantities,
                   require_lambda0)



class Cor22Claim(Strict):
    delta: FailureProbability = Field(0.1, description="failure probability δ")
    variant_width: int = Field(16, gt=0, le=1 << 30,
                               description="width of the variant row (the notes' reading without the width condition)")



@dataclass
class Cor22State:
    """What a cor22 trial needs: the inputs, the certified λ0 and H∞."""

    X: np.ndarray
    lambda0: Lambda0
    Hinf: np.ndarray

class Cor22(Check):
    name = "cor22"
    ref = "[DZPS] Lemma 3.1"
    title = "H(0) is within λ0/4 of H∞, and λ_min(H(0)) ≥ ¾λ0, at large width"
    source = "[DZPS] Du, Zhai, Póczos, Singh, ICLR 2019, Lemma 3.1 (notes: Corollary 2.2)"
    statement = ("If m ≥ C n² log(n/δ)/λ0², then with probability ≥ 1−δ over W(0) ~ N(0, I): "
                 "‖H(0) − H∞‖₂ ≤ λ0/4 and λ_min(H(0)) ≥ ¾λ0 (C unspecified).")
    typos = [
        "the notes state λ_min(H(0)) ≥ ¾λ0 with no condition; it needs m ≥ C n² log(n/δ)/λ0² and holds "
        "with probability ≥ 1−δ (the variant row tests the unconditional reading at a small width).",
        "the notes write w_k ~ Ω(0, I); it is N(0, I).",
    ]
    method = ("Per trial: H(0) = (XXᵀ)∘(SᵀS)/m exactly (float32 counts), its distance to H∞ and its smallest "
              "eigenvalue against λ0/4 and ¾λ0. Reported: width_ratio = m·λ0²/(n² log(n/δ)), the constant "
              "C this width provides.")
    claim_model = Cor22Claim
    #: m*: the draws are nested in m, the outcome is not monotone in it: a grid of widths
    critical = {"network.m": CriticalSpec(
        "network.m", "smallest", grid=tuple(float(2 ** k) for k in range(2, 18)),
        measured="critical width m*",
        proof=lambda q: q["n"] ** 2 * math.log(q["n"] / q["delta"]) / q["lambda0"] ** 2,
        proof_label="the proof's width n² log(n/δ)/λ0² (its C unknown)")}
    default = {
        "seed": 0,
        "trials": "auto",
        "confidence": 0.95,
        "data": {"source": "sphere", "n": 20, "d": 10},
        "network": {"m": 32768},
        "claim": {"delta": 0.1, "variant_width": 16},
    }

    def prepare(self, sc, explicit, rng) -> Context:
        inputs = load_inputs(sc, explicit, rng)
        lam = require_lambda0(inputs)
        n, m, d = inputs.n, sc.network.m, inputs.d
        trial_bytes = require_memory(8.0 * max(m, sc.claim.variant_width) * d + 3 * sc.compute.working_memory_mb * 2**20,
                       f"cor22 with m = {m}, d = {d}")
        from ..kernels import h_infinity
        q = ntk_quantities(inputs, lam, m)
        q.update({"delta": sc.claim.delta, "threshold_distance": lam.value / 4,
                  "threshold_lambda_min": 0.75 * lam.value,
                  "width_ratio": m * lam.value**2 / (n**2 * math.log(n / sc.claim.delta))})
        return Context(quantities=q, trial_bytes=trial_bytes, notes=list(inputs.notes),
                       state=Cor22State(inputs.X, lam, h_infinity(inputs.X)))

    def rows(self, sc, ctx) -> list[ClaimRow]:
        t = 1.0 - sc.claim.delta
        return [
            ClaimRow("joint", PROBABILISTIC, "both ‖H(0) − H∞‖₂ ≤ λ0/4 and λ_min(H(0)) ≥ ¾λ0 "
                     "(one event of probability ≥ 1−δ)", target=t),
            ClaimRow("distance", PROBABILISTIC, "that conclusion alone: ‖H(0) − H∞‖₂ ≤ λ0/4", target=t,
                     primary=False, role="secondary"),
            ClaimRow("lambda_min", PROBABILISTIC, "that conclusion alone: λ_min(H(0)) ≥ ¾λ0", target=t,
                     primary=False, role="secondary"),
            ClaimRow("control_width_one", PROBABILISTIC,
                     "control (false by proof): the joint event at m = 1, where a sign of 0 (probability ½ "
                     "for x_1) leaves a zero row in H(0), so λ_min(H(0)) = 0; P(event) ≤ ½ < 1−δ",
                     target=t, primary=False),
            ClaimRow("variant_no_width", PROBABILISTIC,
                     f"variant (the notes' reading, no width condition): λ_min(H(0)) ≥ ¾λ0 at m = "
                     f"{sc.claim.variant_width}", target=t, primary=False, role="variant"),
        ]

    def verdict_notes(self, sc, ctx, rows) -> list[str]:
        """C is unspecified: a FAIL at one width refutes the claim only for the constants that
        width provides."""
        notes = super().verdict_notes(sc, ctx, rows)
        joint_row = next(r for r in rows if r.name == "joint")
        if joint_row.verdict != "fail":
            return notes
        ratio = ctx.quantities["width_ratio"]
        return notes + [f"C is unspecified, so this FAIL does not refute Corollary 2.2: it shows that C = "
                        f"m·λ0²/(n² log(n/δ)) = {ratio:.3g}, the constant this width m = {sc.network.m} provides, "
                        "is too small. The smallest width that passes gives the smallest constant that would: "
                        "`ntkcheck scaling cor22 --over data.n=N --critical network.m` finds it."]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        X, Hinf, lam = ctx.state.X, ctx.state.Hinf, ctx.state.lambda0
        l0 = lam.value
        d = X.shape[1]
        W0 = rng.standard_normal((sc.network.m, d))
        H0 = gram_matrix(X, W0, sc.compute.working_memory_mb)
        tol = eigenvalue_tolerance(H0) + lam.error
        dist = float(np.linalg.norm(H0 - Hinf, 2))
        lmin = float(np.linalg.eigvalsh(H0)[0])
        Wv = rng.standard_normal((sc.claim.variant_width, d))
        lmin_v = float(np.linalg.eigvalsh(gram_matrix(X, Wv, sc.compute.working_memory_mb))[0])
        out = {"distance": at_most(dist, l0 / 4, tol), "lambda_min": at_most(-lmin, -0.75 * l0, tol),
               "variant_no_width": at_most(-lmin_v, -0.75 * l0, tol)}
        out["joint"] = joint(out["distance"], out["lambda_min"])
        w1 = rng.standard_normal((1, d))
        H1 = gram_matrix(X, w1, sc.compute.working_memory_mb)
        tol1 = eigenvalue_tolerance(H1) + lam.error
        l1 = float(np.linalg.eigvalsh(H1)[0])
        out["control_width_one"] = joint(at_most(float(np.linalg.norm(H1 - Hinf, 2)), l0 / 4, tol1),
                                         at_most(-l1, -0.75 * l0, tol1))
        return TrialResult(index, out, {"distance": dist, "lambda_min_H0": lmin,
                                        "variant_lambda_min": lmin_v, "control_lambda_min": l1})

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        by = {r.name: r for r in rows}
        for row, key, worst in ((by["distance"], "distance", np.max), (by["lambda_min"], "lambda_min_H0", np.min),
                                (by["variant_no_width"], "variant_lambda_min", np.min),
                                (by["control_width_one"], "control_lambda_min", np.min)):
            v = np.array([t.values[key] for t in trials])
            row.figures.update({"threshold": ctx.quantities["threshold_distance" if row.name == "distance"
                                                             else "threshold_lambda_min"],
                                "median": float(np.median(v)), "worst": float(worst(v))})
