"""Lemma 4.3 of the notes ([EMW]): the trained two-layer parameters grow at most so fast.

Corrected statement: f = Σ_k a_k σ(b_k·x), a_k(0) = ±c/m with
random signs, b_k(0) uniform on S^{d−1}, labels y_i = f*(x_i) with ‖f*‖∞ ≤ 1,
gradient flow on (a, B) jointly on R̂ = (1/2n) Σ (f(x_i) − y_i)². For t ∈ [0, T], with
a constant C_T that does not depend on m:

1. ‖a_t‖₂ ≤ C_T (c/√m + √m·t)
2. ‖B_t‖_F ≤ C_T (c·t/√m + √m)
3. ‖B_t − B_0‖_F ≤ C_T (c+1)(c·t/√m + (√m/2)·t²)

A trial trains one network of one width of the grid with the ``dynamics`` integrator:
exponential Euler steps on the frozen-K linearisation with an ETDRK2 second stage (the default,
:func:`ntkcheck.dynamics.integrate_flow_exponential`: no stability cap, so its steps do not grow
with m), or the Bogacki–Shampine pair (``bs3``: its step cap follows λ_max(K), K = JJᵀ/n, which
grows linearly with m, and so do its steps). The supremum
of each ratio LHS/RHS over t ∈ (0, T] covers the whole interval: the exact t → 0+ limits
(‖a_0‖/(c/√m) = 1, ‖B_0‖/√m = 1, ‖B′(0)‖√m/(c(c+1))), a geometric grid of checkpoints
from c/m/1024 to 1024·c/m (ratio 2^¼) that resolves the early interval, then on to T (ratio
2^⅛: the exponential integrator's steps would otherwise grow far beyond the time between
points that the envelope needs), and between evaluated points the larger end value of each
norm over the bound at the earlier point (every bound increases with t). Ĉ(m) is the maximum over the width's trials; each inequality is a scaling claim "log Ĉ(m) has slope ≤ tolerance
in log m", decided by an exact permutation test over all trials' ratios. With ``claim.C_T`` set, each is also a
universal claim at that constant (violations only beyond the integration error).

Control (false by proof): the first bound with c/√m replaced by c/m. At t → 0+ its ratio
is ‖a_0‖/(c/m) = √m exactly, so Ĉ(m) ≥ √m: slope ≥ 1/2, at any c and T. (The earlier
control, √m·t replaced by t/√m, is true for fixed c as m → ∞.)
"""
from __future__ import annotations

from dataclasses import dataclass

import math
from typing import Literal, Union

import numpy as np
from pydantic import Field

from ..dynamics import FlowOptions, Spectrum, integrate_flow, integrate_flow_exponential
from ..errors import UserError
from ..memory import require_memory
from ..models import TwoLayerNetwork
from ..scenario import Strict
from ..slopes import SlopeSample
from ..stats import SCALING, UNIVERSAL, ClaimRow
from ..targets import build_target
from .base import DIVERGED, HOLDS, UNDECIDED, VIOLATION, Check, Context, TrialResult, load_inputs
from .emw import EMWDynamics
from .thm41 import DEFAULT_TARGET, TargetSpec

RATIOS = ("a_norm", "B_norm", "B_move")


class Lemma43Network(Strict):
    m: int = Field(2048, gt=0, le=1 << 24, description="largest width of the grid")
    widths: Union[Literal["auto"], list[int]] = Field(
        "auto", description="widths of the grid; auto = 6 widths halving down from m")


class Lemma43Dynamics(EMWDynamics):
    T: float = Field(2.0, gt=0.0, le=1e4, description="time horizon T")
    min_step_fraction: float = Field(0.1, gt=0.0, le=1.0, description="smallest step: this fraction of T/1024 "
                                     "(exponential), of the stability cap (bs3)")
    integrator: Literal["exponential", "bs3"] = Field(
        "exponential", description="exponential: exponential Euler on the frozen-K linearisation with an "
                                   "ETDRK2 second stage (steps do not grow with m); bs3: the Bogacki–Shampine pair, "
                                   "capped at 2.26/λ_max")


class Lemma43Claim(Strict):
    c: float = Field(0.01, gt=0.0, le=1e6, description="a_k(0) = ±c/m")
    C_T: float | None = Field(None, gt=0.0, le=1e12, description="fixed constant: adds universal rows")
    slope_tolerance: float = Field(0.2, gt=0.0, le=10.0,
                                   description="scaling claims: slope of log Ĉ(m) against log m at most this")
    permutations: int = Field(2000, ge=100, le=100_000,
                              description="random permutations of the slope's exact permutation test")



@dataclass
class Lemma43State:
    """Inputs and labels f*(x), the grid of widths and the trials per width."""

    X: np.ndarray
    y: np.ndarray
    widths: list[int]
    per: int

class Lemma43(Check):
    name = "lemma43"
    ref = "[EMW] (notes Lemma 4.3)"
    sequential = False  # the primary rows are slopes over a fixed grid of trials
    title = "two-layer training: ‖a_t‖, ‖B_t‖, ‖B_t − B_0‖ grow at most like √m·t, √m, √m·t²"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019 "
              "(notes: Lemma 4.3)")
    statement = ("With a_k(0) = ±c/m, b_k(0) ~ π0, ‖f*‖∞ ≤ 1 and gradient flow on (a, B): for t ∈ [0, T], "
                 "‖a_t‖ ≤ C_T(c/√m + √m·t), ‖B_t‖_F ≤ C_T(c·t/√m + √m), "
                 "‖B_t − B_0‖_F ≤ C_T(c+1)(c·t/√m + (√m/2)·t²), C_T independent of m.")
    typos = [
        "the notes write √(mt) in the first bound; it is √m·t.",
        "the notes write ‖B_t‖ without a norm; it is the Frobenius norm of the m × d matrix.",
    ]
    method = ("One run trains networks at every width of a grid (trials per width) by gradient flow: exponential "
              "Euler steps on the frozen-K linearisation (K = JJᵀ/n exact over each step, so no stability cap and "
              "steps that do not grow with m), with an ETDRK2 second stage for accuracy and the error. Per width, Ĉ(m) = max over "
              "trials and steps of LHS/RHS; the log-log slope of the ratios, with an exact permutation test over trials, "
              "is compared with the tolerance. claim.C_T adds universal rows at that constant.")
    claim_model = Lemma43Claim
    sections = {"target": TargetSpec, "dynamics": Lemma43Dynamics, "network": Lemma43Network}
    unused_keys = ("data.labels.",)
    default = {
        "seed": 0,
        "trials": "auto",
        "confidence": 0.95,
        "data": {"source": "sphere", "n": 50, "d": 5},
        "network": {"m": 2048, "widths": "auto"},
        "target": DEFAULT_TARGET,
        "dynamics": {"T": 2.0, "integrator": "exponential", "rtol": 1e-4, "min_step_fraction": 0.1,
                     "max_steps": 200_000},
        "claim": {"c": 0.01, "C_T": None, "slope_tolerance": 0.2, "permutations": 2000},
    }
    #: trials per width when trials = auto
    AUTO_TRIALS = 10

    def prepare(self, sc, explicit, rng) -> Context:
        inputs = load_inputs(sc, explicit, rng)
        d = inputs.d
        tg = build_target(sc.target, d)
        sup_f = tg.sup_abs_bound()  # ‖f*‖∞ ≤ Σ_j |w_j| sup|F_j|
        if sup_f > 1:
            raise UserError(f"the target may exceed 1 in absolute value (sup|f*| ≤ {sup_f:.3g}), but Lemma 4.3 "
                            "assumes ‖f*‖∞ ≤ 1; scale the target's weights down.")
        y = tg(inputs.X)
        M = sc.network.m
        if sc.network.widths == "auto":
            widths = sorted({max(8, M >> k) for k in range(6)})
        else:
            widths = sorted(set(sc.network.widths))
            if len(widths) < 2:
                raise UserError(f"lemma43 needs at least two widths to fit a slope (got {widths}).")
            if "network.m" in explicit and max(widths) != M:
                raise UserError(f"--m {M} must be the largest width of network.widths {widths}.")
            if any(w <= 0 for w in widths):
                raise UserError("scenario key 'network.widths' must hold positive widths.")
        if len(widths) < 2:
            raise UserError(f"lemma43 needs at least two widths to fit a slope (got {widths}).")
        wmax, n = max(widths), inputs.n
        # per trial: the features and work arrays (m × d, m × n) and the Gram matrices (n × n)
        trial_bytes = require_memory(8.0 * wmax * (10 * d + 6 * n) + 8.0 * 4 * n * n,
                       f"lemma43 with widths up to {wmax} and n = {n} inputs")
        per = self.AUTO_TRIALS if sc.trials == "auto" else sc.trials
        q = {"n": n, "d": d, "widths": widths, "trials_per_width": per, "c": sc.claim.c, "T": sc.dynamics.T,
             "sup_f_star_bound": sup_f, "slope_tolerance": sc.claim.slope_tolerance, "C_T": sc.claim.C_T}
        return Context(quantities=q, trial_bytes=trial_bytes, notes=list(inputs.notes),
                       state=Lemma43State(inputs.X, y, widths, per))

    def fixed_trials(self, sc, ctx):
        return len(ctx.state.widths) * ctx.state.per

    def rows(self, sc, ctx) -> list[ClaimRow]:
        tol = sc.claim.slope_tolerance
        rows = [
            ClaimRow("a_norm", SCALING, "Ĉ(m) for ‖a_t‖₂ ≤ C_T(c/√m + √m·t) does not grow with m", tolerance=tol),
            ClaimRow("B_norm", SCALING, "Ĉ(m) for ‖B_t‖_F ≤ C_T(c·t/√m + √m) does not grow with m (Ĉ ≥ 1 by "
                     "construction, ‖B_0‖_F = √m: the row tests that training does not outgrow the bound)",
                     tolerance=tol),
            ClaimRow("B_move", SCALING,
                     "Ĉ(m) for ‖B_t − B_0‖_F ≤ C_T(c+1)(c·t/√m + (√m/2)t²) does not grow with m", tolerance=tol),
        ]
        if sc.claim.C_T is not None:
            C = sc.claim.C_T
            rows += [ClaimRow(f"{k}_at_C_T", UNIVERSAL, f"{k} inequality with C_T = {C:g} at every t ≤ T")
                     for k in RATIOS]
        rows.append(ClaimRow("control_a_fast", SCALING,
                             "control (false by proof): Ĉ(m) for ‖a_t‖₂ ≤ C_T(c/m + √m·t) does not grow with m; "
                             "at t → 0+ the ratio is ‖a_0‖/(c/m) = √m exactly (|a_k(0)| = c/m), so "
                             f"Ĉ(m) ≥ √m grows with slope ≥ 1/2 > {tol:g}",
                             tolerance=tol, primary=False))
        return rows

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        widths, per = ctx.state.widths, ctx.state.per
        m = widths[(index // per) % len(widths)]
        X, y = ctx.state.X, ctx.state.y
        c, T = sc.claim.c, sc.dynamics.T
        d = X.shape[1]
        a0 = rng.choice(np.array([-1.0, 1.0]), size=m) * (c / m)
        B0 = rng.standard_normal((m, d))
        B0 /= np.linalg.norm(B0, axis=1, keepdims=True)
        net = TwoLayerNetwork(X, y, m)
        sm = math.sqrt(m)
        worst = dict.fromkeys(RATIOS + ("control",), 0.0)
        state: dict[str, str] = {}
        C = sc.claim.C_T
        last = {"theta": net.join(a0, B0), "disp": np.zeros(m * (1 + d))}
        prev: dict[str, dict[str, float]] = {}

        def bounds(t: float) -> dict[str, float]:
            return {"a_norm": c / sm + sm * t, "B_norm": c * t / sm + sm,
                    "B_move": (c + 1) * (c * t / sm + sm / 2 * t * t), "control": c / m + sm * t}

        def monitor(p):
            last["theta"] = p.theta
            if p.displacement is not None:
                last["disp"] = p.displacement
            a, B = net.split(p.theta)
            K = net.gram(p.theta)
            w, V = np.linalg.eigh(K)
            spec = Spectrum(w[-1], max(w[0], 0.0), eigvals=w, eigvecs=V)
            na, nB = float(np.linalg.norm(a)), float(np.linalg.norm(B))
            if p.step == 0:
                # exact t → 0+ limits: ‖a_t‖ → ‖a_0‖, ‖B_t‖ → ‖B_0‖, ‖B_t − B_0‖/t → ‖B′(0)‖
                dB = net.split(net.rhs(p.theta))[1]
                lim = {"a_norm": na / (c / sm), "B_norm": nB / sm,
                       "B_move": float(np.linalg.norm(dB)) / ((c + 1) * c / sm), "control": na / (c / m)}
                for k, v in lim.items():
                    worst[k] = v
                    limits[k] = v
                    if C is not None and k in RATIOS and v > C * (1 + 1e-12):
                        state[k] = VIOLATION  # exceeded just after t = 0
                prev.update(lhs={"a_norm": na, "B_norm": nB, "B_move": 0.0, "control": na}, rhs=bounds(0.0))
                return spec
            # (B_t − B_0 from the integrator's summed increments: formed from B_t it is rounding
            # noise at the first checkpoints, where it is ~10⁻¹⁴ beside entries of size 1)
            lhs = {"a_norm": na, "B_norm": nB, "B_move": float(np.linalg.norm(net.split(p.displacement)[1])),
                   "control": na}
            rhs = bounds(p.t)
            for k in RATIOS + ("control",):
                # between this point and the previous one every bound is at least its value there
                # (the bounds increase with t), so the ratio there is at most the larger end value
                # of the norm over the previous bound (steps are ≤ 19% of t early: checkpoints).
                # A bound that is 0 at the previous point (B_move at t = 0) leaves that first
                # interval to the exact t → 0+ limit and this end's value.
                ref = prev["rhs"][k] if prev["rhs"][k] > 0 else rhs[k]
                top = max(lhs[k], prev["lhs"][k]) if prev["rhs"][k] > 0 else lhs[k]
                worst[k] = max(worst[k], top / ref)
                if C is not None and k in RATIOS:
                    if lhs[k] - p.error_theta > C * rhs[k]:
                        state[k] = VIOLATION
                    elif top + p.error_theta > C * ref and state.get(k) != VIOLATION:
                        state[k] = UNDECIDED
            prev.update(lhs=lhs, rhs=rhs)
            return spec

        limits: dict[str, float] = {}
        # a geometric grid of times from c/m/1024 to 1024·c/m (ratio 2^¼) resolves the early
        # interval, where the c/√m and c·t/√m terms give way to the √m terms; the envelope
        # between points then over-covers by at most the bounds' growth over one step there.
        # From there to T the grid goes on at ratio 2^⅛ (a bound ∝ t² grows by 2^¼ over a step):
        # the Runge–Kutta pair's capped steps are shorter anyway, the exponential integrator's
        # are not (log₂(T·m/(1024c))·8 points: 53 at m = 512, 85 at m = 8192 with the defaults)
        grid = [(c / m) * 2.0 ** (k / 4) for k in range(-40, 41)]
        while grid[-1] * 2.0 ** (1 / 8) < T:
            grid.append(grid[-1] * 2.0 ** (1 / 8))
        opts = FlowOptions(rtol=sc.dynamics.rtol, min_step_fraction=sc.dynamics.min_step_fraction,
                           max_steps=sc.dynamics.max_steps, checkpoints=tuple(grid))
        integrate = integrate_flow_exponential if sc.dynamics.integrator == "exponential" else integrate_flow
        run = integrate(net, net.join(a0, B0), T, monitor, opts)
        out = {}
        if C is not None:
            for k in RATIOS:
                out[f"{k}_at_C_T"] = DIVERGED if run.diverged else state.get(k, HOLDS)
        aT = net.split(last["theta"])[0]
        r = net.residual(last["theta"])
        values = {"width": float(m), **{f"ratio_{k}": v for k, v in worst.items()},
                  **{f"limit0_{k}": v for k, v in limits.items()},
                  "a_T": float(np.linalg.norm(aT)), "B_move_T": float(np.linalg.norm(net.split(last["disp"])[1])),
                  "risk_T": float(r @ r) / (2 * len(r)), "steps": float(run.steps),
                  "rejected": float(run.rejected), "error_theta": run.error_theta, "seconds": run.seconds,
                  "t_end": run.t_end}
        note = run.divergence if (run.diverged or run.stopped_early) and run.divergence else None
        return TrialResult(index, out, values, note=note)

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        widths = ctx.state.widths
        by = {r.name: r for r in rows}
        wv = np.array([t.values["width"] for t in trials])
        complete = all(int(np.sum(wv == w)) == ctx.state.per for w in widths)
        boot_rng = np.random.default_rng(np.random.SeedSequence(sc.seed, spawn_key=(2,)))
        table = []
        for w in widths:
            sel = [t for t in trials if t.values["width"] == w]
            if not sel:  # (an interrupted run, or every trial of this width failed numerically)
                table.append({"m": w, "trials": 0})
                continue
            table.append({"m": w, "trials": len(sel), **{f"C_hat_{k}": max(t.values[f"ratio_{k}"] for t in sel)
                                     for k in RATIOS + ("control",)},
                          "a_T_median": float(np.median([t.values["a_T"] for t in sel])),
                          "B_move_T_median": float(np.median([t.values["B_move_T"] for t in sel])),
                          "risk_T_median": float(np.median([t.values["risk_T"] for t in sel])),
                          "steps_median": float(np.median([t.values["steps"] for t in sel])),
                          "seconds_median": float(np.median([t.values["seconds"] for t in sel]))})
        ctx.quantities["per_width"] = table
        for name, key in (("a_norm", "a_norm"), ("B_norm", "B_norm"), ("B_move", "B_move"),
                          ("control_a_fast", "control")):
            row = by[name]
            row.measured = len(trials)
            if not complete:
                continue  # a width lost trials (numerical errors): no slope
            vals = np.array([[t.values[f"ratio_{key}"] for t in trials if t.values["width"] == w]
                             for w in widths])
            if np.any(vals <= 0) or not np.all(np.isfinite(vals)):
                continue
            row.slopes = SlopeSample.from_groups(np.array(widths, float), vals, sc.claim.permutations, boot_rng)
            row.estimate = est = row.slopes.estimate
            row.figures.update({"slope": est, "C_hat_per_width": [round(float(v), 6) for v in vals.max(axis=1)]})
