"""Lemma 2.1 of the notes ([DZPS] Theorem 3.1): H∞ is positive definite.

Corrected statement: if no two inputs x_i, x_j (i ≠ j) are parallel, then
λ0 = λ_min(H∞) > 0.

It is an implication about a data set. With a data file the file is that one
data set (one trial); otherwise every trial draws a fresh data set from the
scenario's distribution. The outcome is decided from the certified λ0, not from
a cosine threshold: a trial *holds* when λ0 exceeds its numerical error (the
conclusion is true, whatever the angles); otherwise it is *vacuous* when two
rows are parallel beyond doubt (the hypothesis fails, the rows are named) and
*undecided* when no pair is (a tiny λ0 cannot be told from 0 in floating
point, or a pair is parallel only within rounding).

Variant row (must FAIL): the reading without the hypothesis, "λ0 > 0 for any
inputs", tested on the same data with row 0 duplicated; two equal rows make H∞
singular, so λ0 = 0 there and a numerically-zero λ0 is a verified violation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import data as data_mod
from ..kernels import lambda0
from ..scenario import Strict
from ..stats import UNIVERSAL, ClaimRow
from .base import HOLDS, UNDECIDED, VACUOUS, VIOLATION, Check, Context, TrialResult, load_inputs


class Lemma21Claim(Strict):
    pass


def assess(X: np.ndarray) -> dict:
    """λ0 of one data set, its error, the most nearly parallel pair and any parallel pairs."""
    lam = lambda0(X)
    i, j, cos = data_mod.most_parallel_pair(X)
    near = data_mod.parallel_pairs(X)
    return {"lambda0": lam.reported, "lambda0_raw": lam.value, "lambda0_error": lam.error,
            "certified_positive": lam.certified_positive, "pair": (i, j), "abs_cos": cos,
            "parallel": [p for p in near if data_mod.exactly_parallel(X, *p)], "near_parallel": near}



@dataclass
class Lemma21State:
    """The inputs, and whether they come from a file (then a single trial is the whole check)."""

    X: np.ndarray
    file: bool

class Lemma21(Check):
    name = "lemma21"
    title = "λ0 = λ_min(H∞) > 0 when no two inputs are parallel"
    ref = "[DZPS] Thm 3.1"
    source = "[DZPS] Du, Zhai, Póczos, Singh, ICLR 2019, Theorem 3.1 (notes: Lemma 2.1)"
    statement = "If no two inputs x_i, x_j (i ≠ j) are parallel, then λ0 = λ_min(H∞) > 0."
    typos = [
        "the notes write λ_min(H^α); it is H^∞, the infinite-width Gram matrix.",
        "the notes write w_k ~ Ω(0, I); it is N(0, I).",
    ]
    method = ("λ0 = λ_min(H∞) by a symmetric eigensolver, with an error bound from the rounding of the "
              "cosines (arccos is steep near ±1) and of the eigensolver; λ0 below its error counts as 0. "
              "Variant: the same data with row 0 duplicated must give λ0 = 0.")
    claim_model = Lemma21Claim
    unused_keys = ("network.m", "data.labels.")
    default = {
        "seed": 0,
        "trials": "auto",
        "confidence": 0.95,
        "data": {"source": "sphere", "n": 50, "d": 10},
        "network": {"m": 4096},
        "claim": {},
    }

    def prepare(self, sc, explicit, rng) -> Context:
        inputs = load_inputs(sc, explicit, rng)
        a = assess(inputs.X)
        q = {"n": inputs.n, "d": inputs.d, "lambda0": a["lambda0"], "lambda0_error": a["lambda0_error"],
             "most_parallel_pair": list(a["pair"]), "most_parallel_abs_cos": a["abs_cos"],
             "most_parallel_1_minus_abs_cos": data_mod.parallel_gap(inputs.X, *a["pair"]),
             "hypothesis_holds": not a["parallel"]}
        notes = list(inputs.notes)
        if a["parallel"] and not a["certified_positive"]:
            notes.append(f"the hypothesis fails: {data_mod.describe_pairs(a['parallel'])} are parallel "
                         f"(|cos| = 1), λ0 = {a['lambda0']:.3g} (error {a['lambda0_error']:.1g}), and "
                         "Lemma 2.1 says nothing about these data.")
        elif a["parallel"]:
            notes.append(f"{data_mod.describe_pairs(a['parallel'])} are parallel or opposite, yet λ0 = "
                         f"{a['lambda0']:.3g} is certified positive (error {a['lambda0_error']:.1g}).")
        if sc.data.source == "file" and sc.trials not in ("auto", 1):
            notes.append(f"one fixed data set: 1 trial runs instead of {sc.trials}.")
        return Context(quantities=q, notes=notes, state=Lemma21State(inputs.X, sc.data.source == "file"))

    def fixed_trials(self, sc, ctx):
        return 1 if ctx.state.file else None

    def rows(self, sc, ctx) -> list[ClaimRow]:
        fixed = bool(ctx.state.file)  # one data file: one data set, a fact about it
        return [
            ClaimRow("positive", UNIVERSAL, "no two rows parallel ⇒ λ0 > 0", deterministic=fixed),
            ClaimRow("variant_no_hypothesis", UNIVERSAL,
                     "variant (false): λ0 > 0 for any inputs — tested with row 0 duplicated",
                     primary=False, deterministic=fixed),
        ]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        if ctx.state.file:
            X = ctx.state.X
        else:
            X = load_inputs(sc, set(), rng).X
        a = assess(X)
        out = {}
        if a["certified_positive"]:
            out["positive"] = HOLDS  # the conclusion holds, so the implication does
        elif a["parallel"]:
            out["positive"] = VACUOUS  # the hypothesis fails: the implication is silent
        else:
            out["positive"] = UNDECIDED
        b = assess(np.vstack([X, X[:1]]))
        out["variant_no_hypothesis"] = HOLDS if b["certified_positive"] else VIOLATION
        values = {"lambda0": a["lambda0"], "lambda0_error": a["lambda0_error"],
                  "most_parallel_abs_cos": a["abs_cos"], "pair_i": float(a["pair"][0]),
                  "pair_j": float(a["pair"][1]), "hypothesis_holds": float(not a["parallel"]),
                  "variant_lambda0_raw": b["lambda0_raw"], "variant_lambda0_error": b["lambda0_error"]}
        return TrialResult(index, out, values)

    def summarize(self, sc, ctx, rows, trials) -> None:
        ok = [t for t in trials if t.error is None]
        if not ok:
            return
        lam = np.array([t.values["lambda0"] for t in ok])
        hyp = np.array([t.values["hypothesis_holds"] for t in ok])
        rows[0].figures.update({"lambda0_min": float(lam.min()), "lambda0_median": float(np.median(lam)),
                                "parallel_pair_trials": int((hyp == 0).sum())})
        vl = np.array([abs(t.values["variant_lambda0_raw"]) for t in ok])
        rows[1].figures.update({"variant_lambda0_max_abs": float(vl.max())})
