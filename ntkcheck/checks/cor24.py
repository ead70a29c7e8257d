"""Corollary 2.4 of the notes ([DZPS] Lemma 3.3 and Theorem 4.1): linear convergence.

Corrected statement: if λ_min(H(s)) ≥ λ0/2 for all s ∈ [0, t],
then ‖y − u(t)‖² ≤ e^{−λ0 t} ‖y − u(0)‖² and ‖w_k(t) − w_k(0)‖₂ ≤ R′ =
2√n ‖y − u(0)‖/(√m λ0) for every k. For gradient descent with step η:
‖y − u(k)‖² ≤ (1 − ηλ0/2)^k ‖y − u(0)‖² while the hypothesis holds.

A trial draws a_k = ±1 and W(0) ~ N(0, I), trains on the fixed data (gradient flow
with the ``dynamics`` integrator, and/or gradient descent), finds t_h, the last
checked time up to which λ_min(H) ≥ λ0/2 held (H is evaluated at every step), and
checks the conclusions at every step up to t_h. These are universal claims: one
violation beyond the integration error estimate is a counterexample. A divergence
of gradient descent is a finding, never a pass.

The flow is solved exactly between kinks and event by event across them
(:mod:`ntkcheck.reluflow`): at small widths a trajectory crosses and slides along
dozens of kinks, where a Runge–Kutta step's error estimate is no bound and a wrong sign
pattern made a true implication look violated.

A trial whose hypothesis fails already at t = 0 is *vacuous* for the flow and descent
rows: it is no evidence, and the rows' N counts only the trials where the hypothesis held
(a row whose hypothesis never held is INCONCLUSIVE). A violation is only concluded at a
trusted point of the flow (exact flow: before any degenerate kink; bs3: before its first
kink or floor step); later it makes the trial undecided. A flow that stops before T while the
hypothesis still holds (kinks it cannot resolve, or out of steps) followed the implication
only part of the way: a trial with no violation up to there is undecided, not holding.

Controls, each false by the argument in its row:

* ``control_loss``: ‖y − u(t)‖² ≤ e^{−3‖X‖₂² t}‖y − u(0)‖². For every W, λ_max(H(W)) ≤
  ‖X‖₂² (Schur: H = XXᵀ ∘ SᵀS/m with SᵀS/m psd and diagonal ≤ 1), so
  d/dt‖r‖² = −2rᵀHr ≥ −2‖X‖₂²‖r‖² and ‖r(t)‖² ≥ e^{−2‖X‖₂² t}‖r(0)‖²: false at every t > 0.
  At t → 0+ the ratio's right derivative, 3‖X‖₂² − 2 r₀ᵀH(0)r₀/‖r₀‖² > 0, is exact.
* ``control_weights``: max_k ‖w_k(t) − w_k(0)‖ ≤ ½‖u(t) − u(0)‖/(√m ‖X‖₂). Since σ is
  1-Lipschitz, ‖u(t) − u(0)‖ ≤ (1/√m) Σ_k ‖X Δw_k‖ ≤ √m ‖X‖₂ max_k ‖Δw_k‖, so the left side
  is at least twice the right wherever u has moved; at t → 0+ the exact derivatives
  give the ratio max_k ‖w_k′(0)‖ · 2√m‖X‖₂ / ‖H(0) r₀‖ ≥ 2.
* ``control_gd``: ‖y − u(k)‖² ≤ ½(1 − ηλ0/2)^k ‖y − u(0)‖², false at k = 0 (equality).
* ``variant_fast_rate`` (a variant, not a proof): the rate e^{−3λ0 t}.

[DZPS] Theorem 3.2 end to end (secondary row ``thm32``): at width Ω(n⁶/(λ0⁴δ³)), with
probability ≥ 1 − δ, ‖y − u(t)‖² ≤ e^{−λ0 t}‖y − u(0)‖² for all t ≤ T, *not* conditioned
on the hypothesis. The exact flow goes on to T after the hypothesis fails, checking only
this bound (at every point, and between points through λ_min of each mode); a trial holds
when it is certified on all of [0, T]. Its critical width, the smallest m at which the row
PASSes, is what ``ntkcheck scaling cor24 --critical network.m`` measures.

A trial draws Z ~ N(0, I) of size m × (d + 1) and takes a_k = sign(Z_k0), w_k(0) = Z_k,1: so
the draws at width m are the first m rows of those at any larger width (common random
numbers across widths).
"""
from __future__ import annotations

from dataclasses import dataclass

import math
from typing import Literal, Union

import numpy as np
from pydantic import Field

from .. import data as data_mod
from ..errors import UserError
from ..critical import CriticalSpec
from ..dynamics import RK_STABILITY, gradient_descent
from ..kernels import Lambda0, h_infinity
from ..memory import require_memory
from ..models import NTKNetwork
from ..scenario import FailureProbability, Strict
from ..stats import PROBABILISTIC, UNIVERSAL, ClaimRow
from .base import DIVERGED, HOLDS, UNDECIDED, VACUOUS, VIOLATION, Check, Context, TrialResult, load_inputs, ntk_quantities, require_lambda0
from .cor24_flows import bs3_flow, exact_flow
from .cor24_monitor import Tracker, hypothesis_spectrum
_EPS = np.finfo(float).eps


class DynamicsSpec(Strict):
    method: Literal["both", "flow", "gd"] = Field(
        "both", description="flow (gradient flow), gd (gradient descent), or both")
    integrator: Literal["exact", "bs3"] = Field(
        "exact", description="flow: exact (closed form between kinks, kinks located, sliding resolved) or bs3 "
                             "(Bogacki–Shampine 3(2): faster at large m·n, but no conclusion after its first kink)")
    T: Union[float, Literal["auto"]] = Field("auto", description="time horizon; auto = 4/λ0")
    rtol: float = Field(1e-4, gt=0.0, lt=1.0, description="flow: local error tolerance, relative to ‖y − u‖")
    min_step_fraction: float = Field(0.1, gt=0.0, le=1.0,
                                     description="flow: smallest step, as a fraction of the stability cap")
    max_steps: int = Field(200_000, gt=0, le=10**8, description="flow/gd: most steps per trial")
    step: Union[float, Literal["auto"]] = Field(
        "auto", description="gd: step η; auto = 1/λ_max(H∞)")
    unstable_growth: float = Field(1e6, gt=1.0, le=1e100,
                                   description="gd with η above 2/λ_max(H∞): run enough steps for the unstable "
                                               "mode to grow by this factor")


class Cor24Claim(Strict):
    delta: FailureProbability = Field(0.1, description="thm32 row: failure probability δ of [DZPS] Theorem 3.2")
    variant_rate: float = Field(3.0, gt=1.0, le=1e6,
                                description="variant row: the too-fast rate e^{−variant_rate·λ0·t}")



@dataclass
class Cor24State:
    """What a cor24 trial needs: inputs and labels, the certified λ0, the horizon T, the descent's
    step η and number of steps, and ‖X‖₂²."""

    X: np.ndarray
    y: np.ndarray
    lambda0: Lambda0
    T: float
    eta: float
    gd_steps: int
    x_norm2: float

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
    method = ("Gradient flow solved exactly between ReLU kinks (a linear ODE in closed form from H's eigenbasis), "
              "kinks located by certified steps and sliding along them resolved (Filippov), see "
              "ntkcheck.reluflow; or, with dynamics.integrator=bs3, the Bogacki–Shampine 3(2) pair (no conclusion "
              "after its first kink). Gradient descent with fixed η. t_h is the start of the first mode with "
              "λ_min(H) < λ0/2; the conclusions are checked at every event and sample time up to t_h, with bounds "
              "between them; a violation counts only beyond the error budget (else undecided). Variant: the rate "
              "e^{−3λ0 t} must fail.")
    claim_model = Cor24Claim
    #: m* of Theorem 3.2's end-to-end row (the draws are nested in m): a grid of widths
    critical = {"network.m": CriticalSpec(
        "network.m", "smallest", grid=tuple(float(2 ** k) for k in range(3, 12)), row="thm32",
        measured="critical width m* of [DZPS] Theorem 3.2 (row thm32)",
        proof=lambda q: q["n"] ** 6 / (q["lambda0"] ** 4 * q["delta"] ** 3),
        proof_label="the proof's width n⁶/(λ0⁴δ³) (its constant unknown)")}
    sections = {"dynamics": DynamicsSpec}
    unused_keys = ()
    default = {
        "seed": 0,
        "trials": "auto",
        "confidence": 0.95,
        "violation_bound": 0.1,
        "data": {"source": "sphere", "n": 20, "d": 10, "labels": {"source": "sign"}},
        "network": {"m": 1024},
        "dynamics": {"method": "both", "integrator": "exact", "T": "auto", "rtol": 1e-4, "min_step_fraction": 0.1,
                     "max_steps": 200_000, "step": "auto"},
        "claim": {"variant_rate": 3.0, "delta": 0.1},
    }

    def prepare(self, sc, explicit, rng) -> Context:
        inputs = load_inputs(sc, explicit, rng)
        lam = require_lambda0(inputs)
        y, label_notes = data_mod.make_labels(sc.data.labels, inputs.X, rng)
        n, m, d = inputs.n, sc.network.m, inputs.d
        # W, a few gradient-sized work arrays (m × d) and the m × n pre-activations
        trial_bytes = require_memory(8.0 * m * (8 * d + 4 * n), f"cor24 with m = {m}, d = {d}, n = {n}")
        l0 = lam.value
        T = 4.0 / l0 if sc.dynamics.T == "auto" else float(sc.dynamics.T)
        if not (T > 0 and math.isfinite(T)):
            raise UserError(f"scenario key 'dynamics.T' must be a positive time (got {sc.dynamics.T!r}).")
        if sc.dynamics.method in ("both", "flow") and T * l0 > 700:
            raise UserError(f"dynamics.T = {T:.3g} is more than 700/λ0 = {700 / l0:.3g}: the bound e^{{−λ0 t}}‖y − u(0)‖² "
                            "underflows to 0 before T; lower T.")
        lam_max_inf = float(np.linalg.eigvalsh(h_infinity(inputs.X))[-1])
        eta = 1.0 / lam_max_inf if sc.dynamics.step == "auto" else float(sc.dynamics.step)
        if not (eta > 0 and math.isfinite(eta)):
            raise UserError(f"scenario key 'dynamics.step' must be a positive step (got {sc.dynamics.step!r}).")
        if sc.dynamics.method in ("both", "gd") and not T / eta <= sc.dynamics.max_steps:  # (inf, nan too)
            raise UserError(f"gradient descent with step {eta:.3g} needs more steps to reach T = {T:.3g} than "
                            f"dynamics.max_steps = {sc.dynamics.max_steps}; lower T or raise the step.")
        flow_steps = T * lam_max_inf / (0.9 * RK_STABILITY)  # steps at the stability cap of H∞
        if (sc.dynamics.method in ("both", "flow") and sc.dynamics.integrator == "bs3"
                and not flow_steps <= sc.dynamics.max_steps):
            raise UserError(f"gradient flow to T = {T:.3g} needs about {flow_steps:.3g} steps (T·λ_max(H∞)/2.26), "
                            f"more than dynamics.max_steps = {sc.dynamics.max_steps}; lower T or raise max_steps.")
        gd_steps = int(math.ceil(T / eta)) if sc.dynamics.method in ("both", "gd") else 0
        gd_notes = []
        if eta * lam_max_inf > 2.0:
            # the mode of λ_max(H) grows like |1 − ηλ_max|^k: a horizon of T/η steps may end before
            # it shows, so run until it would have grown by ``unstable_growth``
            grow = int(math.ceil(math.log(sc.dynamics.unstable_growth) / math.log(eta * lam_max_inf - 1.0)))
            gd_notes.append(f"gradient descent: η = {eta:.4g} is above the stability limit 2/λ_max(H∞) = "
                            f"{2 / lam_max_inf:.4g}; it runs {max(gd_steps, grow)} steps (not T/η = {gd_steps}) "
                            f"so that the unstable mode can grow by {sc.dynamics.unstable_growth:g}.")
            gd_steps = max(gd_steps, grow)
        eta_theorem = l0 / n**2
        if sc.dynamics.method in ("both", "gd") and eta > eta_theorem:
            gd_notes.append(f"gradient descent: η = {eta:.4g} is {eta / eta_theorem:.3g} × λ0/n²; [DZPS] Theorem 4.1 "
                            "assumes η = O(λ0/n²), so at this step the gd_loss row tests the bound beyond the "
                            "theorem's condition.")
        if sc.dynamics.method in ("both", "gd") and gd_steps > sc.dynamics.max_steps:
            raise UserError(f"gradient descent with step {eta:.3g} needs {gd_steps} steps to reach T = {T:.3g}, "
                            f"more than dynamics.max_steps = {sc.dynamics.max_steps}; raise one of them.")
        q = ntk_quantities(inputs, lam, m)
        q.update({"T": T, "lambda_max_Hinf": lam_max_inf, "method": sc.dynamics.method, "delta": sc.claim.delta,
                  "labels": sc.data.labels.source})
        if sc.dynamics.method in ("both", "gd"):
            q.update({"gd_step": eta, "gd_steps": gd_steps, "gd_stability_limit": 2.0 / lam_max_inf,
                      "gd_step_over_lambda0_n2": eta / eta_theorem})
        else:
            gd_notes = []
        x_norm2 = float(np.linalg.norm(inputs.X, 2) ** 2)
        q["X_norm2_squared"] = x_norm2
        return Context(quantities=q, trial_bytes=trial_bytes, notes=list(inputs.notes) + label_notes + gd_notes,
                       state=Cor24State(inputs.X, y, lam, T, eta, gd_steps, x_norm2))

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
        if meth in ("both", "flow"):
            rows += [
                ClaimRow("control_loss", UNIVERSAL,
                         "control (false by proof): flow loss ≤ e^{−3‖X‖₂² t}‖y − u(0)‖²; λ_max(H(W)) ≤ ‖X‖₂² "
                         "for every W (Schur), so the loss is ≥ e^{−2‖X‖₂² t}‖y − u(0)‖² at every t > 0",
                         primary=False),
                ClaimRow("control_weights", UNIVERSAL,
                         "control (false by proof): max_k ‖w_k(t) − w_k(0)‖₂ ≤ ½‖u(t) − u(0)‖/(√m‖X‖₂); σ is "
                         "1-Lipschitz, so ‖u(t) − u(0)‖ ≤ √m‖X‖₂ max_k ‖w_k(t) − w_k(0)‖₂", primary=False),
            ]
        if meth in ("both", "gd"):
            rows.append(ClaimRow("control_gd", UNIVERSAL,
                                 "control (false by proof): gd loss ≤ ½(1 − ηλ0/2)^k ‖y − u(0)‖², false at k = 0",
                                 primary=False))
        if meth in ("both", "flow"):
            rows.append(ClaimRow(
                "thm32", PROBABILISTIC, "[DZPS] Theorem 3.2 end to end: ‖y − u(t)‖² ≤ e^{−λ0 t}‖y − u(0)‖² for "
                "all t ≤ T, not conditioned on the hypothesis (w.p. ≥ 1−δ at width Ω(n⁶/(λ0⁴δ³)))",
                target=1.0 - sc.claim.delta, primary=False, role="secondary"))
        v = sc.claim.variant_rate
        what = "flow" if meth in ("both", "flow") else "gd"
        rows.append(ClaimRow("variant_fast_rate", UNIVERSAL,
                             f"variant: {what} loss ≤ e^{{−{v:g}λ0 t}}‖y − u(0)‖² for t ≤ t_h",
                             primary=False, role="variant"))
        return rows

    # ---------------------------------------------------------------------------------
    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        X, y = ctx.state.X, ctx.state.y
        lam = ctx.state.lambda0
        l0, T = lam.value, ctx.state.T
        m, d = sc.network.m, X.shape[1]
        n = X.shape[0]
        Z = rng.standard_normal((m, d + 1))  # row k: the sign of a_k, then w_k(0) (nested in m)
        a = np.where(Z[:, 0] >= 0, 1.0, -1.0)
        W0 = np.ascontiguousarray(Z[:, 1:])
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
            tr = Tracker(l0)
            xn2 = ctx.state.x_norm2
            ctl_scale = 0.5 / (math.sqrt(m) * math.sqrt(xn2))
            u0 = r0 + y
            if sc.dynamics.integrator == "exact":
                run = exact_flow(sc, ctx.state, net, W0, a, r0, R_prime, tr, ctl_scale)
            else:
                run = bs3_flow(sc, ctx.state, net, theta0, W0, r0, R_prime, tr, ctl_scale, u0)
            if run.stopped_early and run.divergence and not run.diverged:
                hint = " (raise dynamics.max_steps)" if "max_" in run.divergence else ""
                notes.append(f"gradient flow: {run.divergence}{hint}")
            flow_rows = ("flow_loss", "flow_weights", "control_loss", "control_weights")
            if tr.vacuous:
                for key in flow_rows + ("variant_fast_rate",):
                    out[key] = VACUOUS
            elif run.diverged:
                for key in flow_rows + ("variant_fast_rate",):
                    out[key] = DIVERGED
            else:
                for key in flow_rows:
                    out[key] = tr.outcome(key)
                out["variant_fast_rate"] = tr.outcome("variant")
                if tr.hyp_failed_at is None and run.t_end < T * (1 - 1e-9):
                    # the flow stopped before T (not resolved, or out of steps) while the hypothesis
                    # still held: the implication was followed only to run.t_end, short of its t_h
                    for key in flow_rows + ("variant_fast_rate",):
                        if out[key] == HOLDS:
                            out[key] = UNDECIDED
            if run.diverged:
                notes.append(f"gradient flow: {run.divergence}")
                values["flow_diverged"] = 1.0
                out["thm32"] = DIVERGED
            elif tr.e2e_to < T * (1 - 1e-9):  # not followed to T: no statement about [0, T]
                out["thm32"] = VIOLATION if tr.outcome("thm32") == VIOLATION else UNDECIDED
            else:
                out["thm32"] = tr.outcome("thm32")
            held = not tr.vacuous and tr.hyp_failed_at is None and run.t_end >= T * (1 - 1e-9)
            values.update({
                "flow_t_h": tr.t_h, "flow_held_to_T": float(held), "flow_lambda_min_low": tr.lam_min_low,
                "flow_worst_ratio": tr.worst["flow_loss"], "flow_weight_ratio": tr.worst["flow_weights"],
                "variant_worst_ratio": tr.worst["variant"], "control_loss_worst_ratio": tr.worst["control_loss"],
                "control_weights_worst_ratio": tr.worst["control_weights"],
                "flow_t_h_trusted": float(tr.t_h_trusted), **tr.zero,
                "thm32_worst_ratio": tr.worst["thm32"],
                "flow_rate_over_lambda0": (-math.log(tr.loss_h / loss0) / (tr.t_h * l0)
                                           if tr.t_h > 0 and tr.loss_h > 0 else float("nan")),
                "flow_steps": float(run.steps), "flow_rejected": float(run.rejected),
                "flow_floor_steps": float(run.floor_steps), "flow_gradient_evals": float(run.gradient_evals),
                "flow_kink_events": float(run.extra.get("events", run.kink_steps)),
                "flow_sliding_time": float(run.extra.get("sliding_time", 0.0)),
                "flow_degenerate": float(run.extra.get("degenerate", 0)),
                "flow_error_u": run.error_u, "flow_seconds": run.seconds,
            })
            if not np.isfinite(values["flow_rate_over_lambda0"]):
                values["flow_rate_over_lambda0"] = 0.0

        if meth in ("both", "gd"):
            eta, K = ctx.state.eta, ctx.state.gd_steps
            g = Tracker(l0)
            q = 1.0 - eta * l0 / 2

            def gd_monitor(p):
                spec = hypothesis_spectrum(net, p, l0, lam.error, g)
                if p.step == 0:
                    if not spec.go:
                        g.vacuous = True
                    else:  # the control at k = 0: loss0 ≤ ½ loss0 is false whenever loss0 > 0
                        g.check("control_gd", loss0, 0.5 * loss0, 16 * _EPS * loss0)
                    return spec
                if not spec.go:
                    return spec
                loss = float(p.residual @ p.residual)
                bound = (q ** p.step) * loss0 if q > 0 else 0.0
                g.check("gd", loss, bound, 64 * _EPS * loss0 * (1 + p.step))
                g.check("control_gd", loss, 0.5 * bound, 64 * _EPS * loss0 * (1 + p.step))
                if meth == "gd":
                    g.check("variant", loss, math.exp(-vr * l0 * p.t) * loss0, 64 * _EPS * loss0 * (1 + p.step))
                g.t_h, g.loss_h, g.k_h = p.t, loss, p.step
                return spec

            run = gradient_descent(net, theta0, eta, K, gd_monitor)
            if g.vacuous:
                out["gd_loss"] = out["control_gd"] = VACUOUS
                if meth == "gd":
                    out["variant_fast_rate"] = VACUOUS
            elif run.diverged:
                lim = ctx.quantities["gd_stability_limit"]
                notes.append(f"gradient descent with step η = {eta:.4g}"
                             f"{f' (above the stability limit 2/λ_max(H∞) = {lim:.4g})' if eta > lim else ''}: "
                             f"{run.divergence}")
                out["gd_loss"] = out["control_gd"] = DIVERGED
                values["gd_diverged"] = 1.0
                if meth == "gd":
                    out["variant_fast_rate"] = DIVERGED
            else:
                out["gd_loss"] = g.outcome("gd")
                out["control_gd"] = g.outcome("control_gd")
                if meth == "gd":
                    out["variant_fast_rate"] = g.outcome("variant")
                    values["variant_worst_ratio"] = g.worst["variant"]
            values.update({"gd_k_h": float(g.k_h), "gd_held_to_end": float(g.hyp_failed_at is None
                                                                           and not run.diverged
                                                                           and run.steps == K),
                           "gd_worst_ratio": g.worst["gd"], "gd_steps": float(run.steps),
                           "gd_seconds": run.seconds})
        series = {}
        if meth in ("both", "flow"):
            pts = tr.curve[:: max(1, len(tr.curve) // 400)] + tr.curve[-1:]  # at most ~400 points, the last kept
            series = {"t": [p[0] for p in pts], "loss_ratio": [p[1] for p in pts]}
        return TrialResult(index, out, values, note="; ".join(notes) or None, series=series)

    # ---------------------------------------------------------------------------------
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
                "kink_events_median": float(np.median(col("flow_kink_events"))),
                "sliding_time_median": float(np.median(col("flow_sliding_time"))),
                "degenerate_trials": int((col("flow_degenerate") > 0).sum()),
                "seconds_per_trial": float(np.median(col("flow_seconds"))),
            })
            by["flow_weights"].figures.update({
                "R_prime_median": float(np.median(col("R_prime"))),
                "worst_ratio_to_R_prime": float(col("flow_weight_ratio").max()),
            })
            ctx.quantities["flow_hypothesis_held_to_T"] = float(held.mean())
        if "thm32" in by:
            by["thm32"].figures["worst_ratio_to_bound"] = float(col("thm32_worst_ratio").max())
        if "gd_loss" in by:
            gd = col("gd_worst_ratio")
            by["gd_loss"].figures.update({
                "step": ctx.state.eta,
                "hypothesis_held_to_end": float(col("gd_held_to_end").mean()),
                "worst_ratio_to_bound": float(gd.max()) if gd.size else None,
                "diverged_trials": int(col("gd_diverged").size),
                "seconds_per_trial": float(np.median(col("gd_seconds"))),
            })
        vw = col("variant_worst_ratio")
        if vw.size:
            by["variant_fast_rate"].figures["worst_ratio_to_bound"] = float(vw.max())
        for name, keys in (("control_loss", ("control_loss_slope_at_0", "control_loss_worst_ratio")),
                           ("control_weights", ("control_weights_ratio_at_0", "control_weights_worst_ratio"))):
            if name in by:
                for k in keys:
                    v = col(k)
                    if v.size:
                        by[name].figures[k.removeprefix(name + "_") + ("_min" if "at_0" in k else "_max")] = (
                            float(v.min()) if "at_0" in k else float(v.max()))
