"""Corollary 2.4 of the notes ([DZPS] Lemma 3.3 and Theorem 4.1): linear convergence.

Corrected statement (shared/SPEC.md §1): if λ_min(H(s)) ≥ λ0/2 for all s ∈ [0, t],
then ‖y − u(t)‖² ≤ e^{−λ0 t} ‖y − u(0)‖² and ‖w_k(t) − w_k(0)‖₂ ≤ R′ =
2√n ‖y − u(0)‖/(√m λ0) for every k. For gradient descent with step η:
‖y − u(k)‖² ≤ (1 − ηλ0/2)^k ‖y − u(0)‖² while the hypothesis holds.

A trial draws a_k = ±1 and W(0) ~ N(0, I), trains on the fixed data (gradient flow
with the ``dynamics`` integrator, and/or gradient descent), finds t_h, the last
checked time up to which λ_min(H) ≥ λ0/2 held (H is evaluated at every step), and
checks the conclusions at every step up to t_h. These are universal claims: one
violation beyond the integration error estimate is a counterexample. A divergence
of gradient descent is a finding, never a pass.

Variant row (must FAIL): a rate that is too fast, e^{−3λ0 t} (``claim.variant_rate``).
"""
from __future__ import annotations

import math
from typing import Literal, Union

import numpy as np
from pydantic import Field

from .. import data as data_mod
from ..dynamics import FlowOptions, Spectrum, gradient_descent, integrate_flow
from ..kernels import eigenvalue_tolerance, h_infinity
from ..network import NTKNetwork, require_memory
from ..scenario import Strict
from ..stats import UNIVERSAL, ClaimRow
from .base import (DIVERGED, HOLDS, UNDECIDED, VIOLATION, Check, Context, TrialResult, load_inputs,
                   ntk_quantities, require_lambda0)
_EPS = np.finfo(float).eps


class DynamicsSpec(Strict):
    method: Literal["both", "flow", "gd"] = Field(
        "both", description="flow (gradient flow), gd (gradient descent), or both")
    T: Union[float, Literal["auto"]] = Field("auto", description="time horizon; auto = 4/λ0")
    rtol: float = Field(1e-4, gt=0.0, lt=1.0, description="flow: local error tolerance, relative to ‖y − u‖")
    min_step_fraction: float = Field(0.1, gt=0.0, le=1.0,
                                     description="flow: smallest step, as a fraction of the stability cap")
    max_steps: int = Field(200_000, gt=0, le=10**8, description="flow/gd: most steps per trial")
    step: Union[float, Literal["auto"]] = Field(
        "auto", description="gd: step η; auto = 1/λ_max(H∞)")


class Cor24Claim(Strict):
    variant_rate: float = Field(3.0, gt=1.0, le=1e6,
                                description="variant row: the too-fast rate e^{−variant_rate·λ0·t}")


class Cor24(Check):
    name = "cor24"
    ref = "[DZPS] Lemma 3.3, Thm 4.1"
    title = "while λ_min(H) ≥ λ0/2, the training error decays like e^{−λ0 t} and weights stay within R′"
    source = ("[DZPS] Du, Zhai, Póczos, Singh, ICLR 2019, Lemma 3.3 and Theorem 4.1 "
              "(notes: Corollary 2.4)")
    statement = ("If λ_min(H(s)) ≥ λ0/2 for s ∈ [0, t], then ‖y − u(t)‖² ≤ e^{−λ0 t}‖y − u(0)‖² and "
                 "‖w_k(t) − w_k(0)‖₂ ≤ R′ = 2√n‖y − u(0)‖/(√m λ0) for every k; gradient descent with step η: "
                 "‖y − u(k)‖² ≤ (1 − ηλ0/2)^k ‖y − u(0)‖² while the hypothesis holds.")
    typos = [
        "the notes state only the loss bound; [DZPS] Lemma 3.3 also bounds the movement of each w_k by R′.",
        "the notes write w_k ~ Ω(0, I); it is N(0, I).",
    ]
    method = ("Gradient flow by the Bogacki–Shampine 3(2) pair with a step cap 0.9·2.51/λ_max(H) (stiffness) "
              "and an error estimate in output space carried along; gradient descent with fixed η. H(W) and its "
              "spectrum are evaluated at every step: t_h is the last step time with λ_min(H) ≥ λ0/2. The "
              "conclusions are checked at every step up to t_h; a violation counts only beyond the error "
              "estimate (else undecided). Variant: the rate e^{−3λ0 t} must fail.")
    claim_model = Cor24Claim
    sections = {"dynamics": DynamicsSpec}
    unused_keys = ()
    default = {
        "seed": 0,
        "trials": "auto",
        "confidence": 0.95,
        "violation_bound": 0.1,
        "data": {"source": "sphere", "n": 20, "d": 10, "labels": {"source": "sign"}},
        "network": {"m": 1024},
        "dynamics": {"method": "both", "T": "auto", "rtol": 1e-4, "min_step_fraction": 0.1,
                     "max_steps": 200_000, "step": "auto"},
        "claim": {"variant_rate": 3.0},
    }

    def prepare(self, sc, explicit, rng) -> Context:
        inputs = load_inputs(sc, explicit, rng)
        lam = require_lambda0(inputs)
        y, label_notes = data_mod.make_labels(sc.data.labels, inputs.X, rng)
        n, m, d = inputs.n, sc.network.m, inputs.d
        # W, a few gradient-sized work arrays (m × d) and the m × n pre-activations
        require_memory(8.0 * m * (8 * d + 4 * n), f"cor24 with m = {m}, d = {d}, n = {n}")
        l0 = lam.value
        T = 4.0 / l0 if sc.dynamics.T == "auto" else float(sc.dynamics.T)
        if not (T > 0 and math.isfinite(T)):
            from ..errors import UserError
            raise UserError(f"scenario key 'dynamics.T' must be a positive time (got {sc.dynamics.T!r}).")
        lam_max_inf = float(np.linalg.eigvalsh(h_infinity(inputs.X))[-1])
        eta = 1.0 / lam_max_inf if sc.dynamics.step == "auto" else float(sc.dynamics.step)
        if not (eta > 0 and math.isfinite(eta)):
            from ..errors import UserError
            raise UserError(f"scenario key 'dynamics.step' must be a positive step (got {sc.dynamics.step!r}).")
        gd_steps = int(math.ceil(T / eta))
        if sc.dynamics.method in ("both", "gd") and gd_steps > sc.dynamics.max_steps:
            from ..errors import UserError
            raise UserError(f"gradient descent with step {eta:.3g} needs {gd_steps} steps to reach T = {T:.3g}, "
                            f"more than dynamics.max_steps = {sc.dynamics.max_steps}; raise one of them.")
        q = ntk_quantities(inputs, lam, m)
        q.update({"T": T, "lambda_max_Hinf": lam_max_inf, "method": sc.dynamics.method,
                  "labels": sc.data.labels.source})
        if sc.dynamics.method in ("both", "gd"):
            q.update({"gd_step": eta, "gd_steps": gd_steps, "gd_stability_limit": 2.0 / lam_max_inf})
        return Context(quantities=q, notes=list(inputs.notes) + label_notes,
                       arrays={"X": inputs.X, "y": y, "lambda0": lam, "T": T, "eta": eta,
                               "gd_steps": gd_steps})

    def rows(self, sc, ctx) -> list[ClaimRow]:
        rows = []
        meth = sc.dynamics.method
        if meth in ("both", "flow"):
            rows += [
                ClaimRow("flow_loss", UNIVERSAL, "gradient flow: ‖y − u(t)‖² ≤ e^{−λ0 t}‖y − u(0)‖² for t ≤ t_h"),
                ClaimRow("flow_weights", UNIVERSAL, "gradient flow: max_k ‖w_k(t) − w_k(0)‖₂ ≤ R′ for t ≤ t_h"),
            ]
        if meth in ("both", "gd"):
            rows.append(ClaimRow("gd_loss", UNIVERSAL,
                                 "gradient descent: ‖y − u(k)‖² ≤ (1 − ηλ0/2)^k ‖y − u(0)‖² for k ≤ k_h"))
        v = sc.claim.variant_rate
        what = "flow" if meth in ("both", "flow") else "gd"
        rows.append(ClaimRow("variant_fast_rate", UNIVERSAL,
                             f"variant (false): {what} loss ≤ e^{{−{v:g}λ0 t}}‖y − u(0)‖² for t ≤ t_h",
                             primary=False))
        return rows

    # ---------------------------------------------------------------------------------
    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        X, y = ctx.arrays["X"], ctx.arrays["y"]
        lam = ctx.arrays["lambda0"]
        l0, T = lam.value, ctx.arrays["T"]
        m, d = sc.network.m, X.shape[1]
        n = X.shape[0]
        a = rng.choice(np.array([-1.0, 1.0]), size=m)
        W0 = rng.standard_normal((m, d))
        net = NTKNetwork(X, y, a, sc.compute.working_memory_mb)
        theta0 = W0.ravel().copy()
        r0 = net.residual(theta0)
        loss0 = float(r0 @ r0)
        R_prime = 2.0 * math.sqrt(n) * math.sqrt(loss0) / (math.sqrt(m) * l0)
        vr = sc.claim.variant_rate
        out: dict[str, str] = {}
        notes: list[str] = []
        values: dict[str, float] = {"loss0": loss0, "R_prime": R_prime}
        meth = sc.dynamics.method

        if meth in ("both", "flow"):
            tr = _Tracker(l0)
            W0m = W0

            def monitor(p):
                spec = _hypothesis(net, p, l0, lam.error, tr)
                if not spec.go or p.step == 0:  # hypothesis failed, or t = 0 (equality)
                    return spec
                loss = float(p.residual @ p.residual)
                e = p.error_u
                loss_err = 2 * math.sqrt(loss) * e + e * e + 16 * _EPS * loss0
                tr.check("flow_loss", loss, math.exp(-l0 * p.t) * loss0, loss_err)
                tr.check("variant", loss, math.exp(-vr * l0 * p.t) * loss0, loss_err)
                dist = float(np.sqrt(((p.theta.reshape(m, d) - W0m) ** 2).sum(axis=1)).max())
                tr.check("flow_weights", dist, R_prime, p.error_theta)
                tr.t_h, tr.loss_h = p.t, loss
                return spec

            opts = FlowOptions(rtol=sc.dynamics.rtol, min_step_fraction=sc.dynamics.min_step_fraction,
                               max_steps=sc.dynamics.max_steps)
            run = integrate_flow(net, theta0, T, monitor, opts)
            if run.stopped_early and run.divergence and not run.diverged:
                notes.append(f"gradient flow: {run.divergence} (raise dynamics.max_steps)")
            if run.diverged:
                notes.append(f"gradient flow: {run.divergence}")
                out["flow_loss"] = out["flow_weights"] = DIVERGED
                values["flow_diverged"] = 1.0
            else:
                out["flow_loss"] = tr.outcome("flow_loss")
                out["flow_weights"] = tr.outcome("flow_weights")
            out["variant_fast_rate"] = tr.outcome("variant") if not run.diverged else DIVERGED
            held = tr.hyp_failed_at is None and run.t_end >= T * (1 - 1e-9)
            values.update({
                "flow_t_h": tr.t_h, "flow_held_to_T": float(held), "flow_lambda_min_low": tr.lam_min_low,
                "flow_worst_ratio": tr.worst["flow_loss"], "flow_weight_ratio": tr.worst["flow_weights"],
                "variant_worst_ratio": tr.worst["variant"],
                "flow_rate_over_lambda0": (-math.log(tr.loss_h / loss0) / (tr.t_h * l0)
                                           if tr.t_h > 0 and tr.loss_h > 0 else float("nan")),
                "flow_steps": float(run.steps), "flow_rejected": float(run.rejected),
                "flow_floor_steps": float(run.floor_steps), "flow_gradient_evals": float(run.gradient_evals),
                "flow_error_u": run.error_u, "flow_seconds": run.seconds,
            })
            if not np.isfinite(values["flow_rate_over_lambda0"]):
                values["flow_rate_over_lambda0"] = 0.0

        if meth in ("both", "gd"):
            eta, K = ctx.arrays["eta"], ctx.arrays["gd_steps"]
            g = _Tracker(l0)
            q = 1.0 - eta * l0 / 2

            def gd_monitor(p):
                spec = _hypothesis(net, p, l0, lam.error, g)
                if not spec.go or p.step == 0:
                    return spec
                loss = float(p.residual @ p.residual)
                bound = (q ** p.step) * loss0 if q > 0 else 0.0
                g.check("gd", loss, bound, 64 * _EPS * loss0 * (1 + p.step))
                if meth == "gd":
                    g.check("variant", loss, math.exp(-vr * l0 * p.t) * loss0, 64 * _EPS * loss0 * (1 + p.step))
                g.t_h, g.loss_h, g.k_h = p.t, loss, p.step
                return spec

            run = gradient_descent(net, theta0, eta, K, gd_monitor)
            if run.diverged:
                lim = ctx.quantities["gd_stability_limit"]
                notes.append(f"gradient descent with step η = {eta:.4g}"
                             f"{f' (above the stability limit 2/λ_max(H∞) = {lim:.4g})' if eta > lim else ''}: "
                             f"{run.divergence}")
                out["gd_loss"] = DIVERGED
                values["gd_diverged"] = 1.0
                if meth == "gd":
                    out["variant_fast_rate"] = DIVERGED
            else:
                out["gd_loss"] = g.outcome("gd")
                if meth == "gd":
                    out["variant_fast_rate"] = g.outcome("variant")
                    values["variant_worst_ratio"] = g.worst["variant"]
            values.update({"gd_k_h": float(g.k_h), "gd_held_to_end": float(g.hyp_failed_at is None
                                                                           and not run.diverged
                                                                           and run.steps == K),
                           "gd_worst_ratio": g.worst["gd"], "gd_steps": float(run.steps),
                           "gd_seconds": run.seconds})
        return TrialResult(index, out, values, note="; ".join(notes) or None)

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        by = {r.name: r for r in rows}

        def col(k):
            return np.array([t.values[k] for t in trials if k in t.values])

        if "flow_loss" in by:
            held = col("flow_held_to_T")
            by["flow_loss"].figures.update({
                "hypothesis_held_to_T": float(held.mean()),
                "worst_ratio_to_bound": float(col("flow_worst_ratio").max()),
                "decay_rate_over_lambda0_median": float(np.median(col("flow_rate_over_lambda0"))),
                "steps_median": float(np.median(col("flow_steps"))),
                "rejected_steps_median": float(np.median(col("flow_rejected"))),
                "error_estimate_max": float(col("flow_error_u").max()),
                "seconds_per_trial": float(np.median(col("flow_seconds"))),
            })
            by["flow_weights"].figures.update({
                "R_prime_median": float(np.median(col("R_prime"))),
                "worst_ratio_to_R_prime": float(col("flow_weight_ratio").max()),
            })
            ctx.quantities["flow_hypothesis_held_to_T"] = float(held.mean())
        if "gd_loss" in by:
            gd = col("gd_worst_ratio")
            by["gd_loss"].figures.update({
                "step": ctx.arrays["eta"],
                "hypothesis_held_to_end": float(col("gd_held_to_end").mean()),
                "worst_ratio_to_bound": float(gd.max()) if gd.size else None,
                "diverged_trials": int(col("gd_diverged").size),
                "seconds_per_trial": float(np.median(col("gd_seconds"))),
            })
        vw = col("variant_worst_ratio")
        if vw.size:
            by["variant_fast_rate"].figures["worst_ratio_to_bound"] = float(vw.max())


def _hypothesis(net: NTKNetwork, p, l0: float, l0_error: float, tracker: "_Tracker") -> Spectrum:
    """H at this step and its spectrum; go=False (and the time recorded) when
    λ_min(H) < λ0/2 beyond the floating-point allowance, i.e. the hypothesis fails here."""
    H = net.gram(p.theta)
    w, V = np.linalg.eigh(H)
    tracker.lam_min_low = min(tracker.lam_min_low, w[0])
    go = w[0] >= l0 / 2 - (eigenvalue_tolerance(H) + l0_error)
    if not go:
        tracker.hyp_failed_at = p.t
    return Spectrum(w[-1], w[0], go=go, eigvals=w, eigvecs=V)


class _Tracker:
    """Per-trial bookkeeping of the conclusions checked at every step up to t_h."""

    def __init__(self, l0: float):
        self.l0 = l0
        self.hyp_failed_at: float | None = None
        self.t_h = 0.0
        self.k_h = 0
        self.loss_h = 0.0
        self.lam_min_low = np.inf
        self.worst: dict[str, float] = {"flow_loss": 0.0, "flow_weights": 0.0, "variant": 0.0, "gd": 0.0}
        self.state: dict[str, str] = {}

    def check(self, key: str, value: float, bound: float, err: float) -> None:
        if bound > 0:
            self.worst[key] = max(self.worst[key], value / bound)
        if value > bound + err:
            self.state[key] = VIOLATION
        elif value > bound - err and self.state.get(key) != VIOLATION:
            self.state[key] = UNDECIDED

    def outcome(self, key: str) -> str:
        return self.state.get(key, HOLDS)
