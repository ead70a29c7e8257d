"""The lecture's first conclusion ([EMW], E's slides): for large width the network is close
to kernel regression with the random-feature kernel.

Statement: Lemma 4.3's model, data and joint flow (a_k(0) = ±β, β = c/m, b_k(0) ~ π0,
x_i ~ ρ, y_i = f*(x_i)); k0(x, x′) = E_{b~π0} σ(b·x)σ(b·x′) = κ1(x·x′)/d, λ_n the smallest
eigenvalue of its Gram matrix G0 on the data (entries k0(x_i, x_j), no 1/n); f^ker(·, τ)
kernel-regression gradient flow on R̂ from 0 (:mod:`ntkcheck.kernelflow`, exact). If
m > 64 λ_n^{−4} ln(n²/δ), w.p. ≥ 1 − δ, for all t ≥ 0:
‖f_m(·; Θ_t) − f_m(·; Θ_0) − f^ker(·, mt)‖ ≤ c(δ) n ln^{3/2}(n) λ_n^{−2}(1/√m + β + √m β³).
With β = c/m the right side is ~ n ln^{3/2} n/(λ_n²√m): the distance falls like m^{−1/2}. (The
network's kernel is JJᵀ = ΦΦᵀ + (XXᵀ)∘(S diag(a²)Sᵀ) ≈ m·G0: time t of the network is kernel
time mt.) The notes' "m ≥ O(n²)" is schematic.

A trial draws data, a held-out sample of 256 points and an initialisation at one grid point,
and integrates the network's flow with the shared integrator to the kernel time
τ_max = horizon·n/λ_max(G0) (so the kernel has fitted every mode with λ_j ≥ λ_max/horizon),
landing on 41 geometric kernel times τ_max·2^(k/4), k = −40 … 0, at t = τ/m. The distance is
taken at those times, as the root mean square over the training points and over the held-out
sample (f^ker there is k0(x, X)α(τ)); D is its maximum over the times.

Rows:

* ``D_m`` (scaling): D(m) on the training data falls like m^{−1/2}: the log-log slope in m (at
  n = data.n) is at most −1/2 + tolerance.
* ``D_m_heldout`` (scaling): the same in function space, on the held-out sample.
* ``C_n`` (scaling, secondary): Ĉ = D/(n ln^{3/2}(n) λ_n^{−2}(1/√m + β + √m β³)), the bound's
  constant, against n (at m = network.m); with λ_n^{−2} the bound is far above D, so this
  measures how loose it is across n.

Control, false by the argument in its row:

* ``control_m_rate``: D(m) falls like 1/m (slope at most −1 + tolerance). At the first kernel
  time τ_1 the network has moved by ≈ (τ_1/m)K(0)(y − u_0)/… with K(0) = ΦΦᵀ/n + O(β²), and the
  kernel by (τ_1/n)G0 y: their difference carries (ΦΦᵀ − mG0)y/n, a sum of m independent
  mean-zero terms (b_k ~ π0) of positive variance, of size ~√m·τ_1/m = τ_1/√m (central limit):
  D ≥ that falls like m^{−1/2}, not 1/m.
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from .. import data as data_mod
from ..dynamics import FlowOptions, Spectrum, integrate_flow
from ..kernelflow import KernelFlow
from ..kernels import kappa1
from ..memory import require_memory
from ..models import TwoLayerNetwork
from ..stats import SCALING, ClaimRow
from .base import Context, TrialResult
from .emw import (FLOW_DEFAULT, EMWCheck, EMWClaim, EMWDynamics, EMWGrid, EMWNetwork, TargetSpec, draw, emw_default,
                  finish_trial, landed, prepare_state)

#: kernel times τ_max·2^(k/4), k = −KERNEL_TIMES … 0; held-out points per trial
KERNEL_TIMES = 40
HELD_OUT = 256


class NNKernelDynamics(EMWDynamics):
    horizon: float = Field(100.0, gt=0.0, le=1e7,
                           description="kernel time τ_max in units of n/λ_max(G0): the kernel fits modes down to "
                                       "λ_max/horizon")


class NNKernelClaim(EMWClaim):
    c: float = Field(0.01, gt=0.0, le=1e6, description="a_k(0) = ±β, β = c/m")
    slope_tolerance: float = Field(0.2, gt=0.0, le=10.0,
                                   description="D_m: slope of log D against log m at most −1/2 + this")
    delta: float = Field(0.05, gt=0.0, lt=1.0, description="the statement's δ (in the width hypothesis)")


def k0(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """k0(a, b) = E_{b~π0} σ(w·a)σ(w·b) = κ1(a·b)/d for unit rows."""
    return kappa1(A @ B.T) / A.shape[1]


class NNKernel(EMWCheck):
    name = "nnkernel"
    ref = "[EMW] (the lecture's conclusion 1; E's slides)"
    title = "NN ≈ kernel for large width: sup_t ‖f_m(Θ_t) − f_m(Θ_0) − f^ker(mt)‖ falls like m^{−1/2}"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019; "
              "W. E's course slides; lecture 7 notes (end of §4)")
    statement = ("With a_k(0) = ±β, β = c/m, b_k(0) ~ π0, x_i ~ ρ, y_i = f*(x_i) and gradient flow on (a, B): if "
                 "m > 64 λ_n^{−4} ln(n²/δ), w.p. ≥ 1 − δ, for all t ≥ 0, ‖f_m(·; Θ_t) − f_m(·; Θ_0) − f^ker(·, mt)‖ ≤ "
                 "c(δ) n ln^{3/2}(n) λ_n^{−2}(1/√m + β + √m β³), f^ker kernel-regression gradient flow with "
                 "k0(x, x′) = E_b σ(b·x)σ(b·x′), λ_n = λ_min of its Gram matrix.")
    typos = [
        "the notes conclude \"NN is close to the kernel when m ≥ O(n²); otherwise only at the beginning\": schematic; "
        "the slides' hypothesis is m > 64 λ_n^{−4} ln(n²/δ), reported per grid point (it is far above the widths "
        "at which the distance already falls like m^{−1/2}).",
    ]
    method = ("Per trial, the network's joint flow by the shared integrator to kernel time τ_max = horizon·n/λ_max(G0) "
              "on 41 geometric kernel times; the kernel flow exact from G0's eigendecomposition; the distance at "
              "those times on the training data and on 256 held-out points; D's log-log slope in m by an exact "
              "permutation test.")
    claim_model = NNKernelClaim
    sections = {"target": TargetSpec, "network": EMWNetwork, "grid": EMWGrid, "dynamics": NNKernelDynamics}
    default = emw_default(32, 2048, {"horizon": 100.0, **FLOW_DEFAULT},
                          {"c": 0.01, "delta": 0.05, "slope_tolerance": 0.2, "permutations": 2000})
    AUTO_TRIALS = 6

    def prepare(self, sc, explicit, rng) -> Context:
        state, q = prepare_state(sc, self.name, self.AUTO_TRIALS)
        m, n, d = state.m_max, state.n_max, sc.data.d
        # per trial: σ(XBᵀ) and the flow's work arrays (m × (d + n)), the held-out features (256 × m)
        trial_bytes = require_memory(8.0 * (4 * n * m + 12 * m * (d + 1) + 2 * HELD_OUT * m),
                                     f"nnkernel with m up to {m} and n = {n} inputs")
        q.update({"c": sc.claim.c, "delta": sc.claim.delta, "horizon": sc.dynamics.horizon,
                  "slope_tolerance": sc.claim.slope_tolerance})
        return Context(quantities=q, trial_bytes=trial_bytes, state=state)

    def rows(self, sc, ctx) -> list[ClaimRow]:
        tol = sc.claim.slope_tolerance
        D = "D = sup_t ‖u(t) − u(0) − f^ker(mt)‖_rms"
        return [
            ClaimRow("D_m", SCALING, f"{D} on the training data falls like m^{{−1/2}} (at n = {ctx.state.n_max}): "
                     f"slope in m ≤ −1/2 + {tol:g}", tolerance=-0.5 + tol),
            ClaimRow("D_m_heldout", SCALING, f"the same on {HELD_OUT} held-out points (function space)",
                     tolerance=-0.5 + tol),
            ClaimRow("C_n", SCALING, "Ĉ = D/(n ln^{3/2}(n) λ_n^{−2}(1/√m + β + √m β³)), the bound's constant, "
                     f"does not grow with n (at m = {ctx.state.m_max}): how loose the bound is across n",
                     tolerance=tol, primary=False, role="secondary"),
            ClaimRow("control_m_rate", SCALING,
                     f"control (false by proof): D falls like 1/m (slope ≤ −1 + {tol:g}); at the first kernel time "
                     "the difference carries (ΦΦᵀ − mG0)y/n, a sum of m independent mean-zero terms: ~ 1/√m",
                     tolerance=-1.0 + tol, primary=False),
        ]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        state = ctx.state
        m, n = state.point(index)
        c = sc.claim.c
        dr = draw(state, m, n, c, rng)
        Xt = data_mod.sample("sphere", HELD_OUT, dr.X.shape[1], rng)
        G0 = k0(dr.X, dr.X)
        kf = KernelFlow(G0, dr.y)
        lam_min, lam_max = float(kf.lam[0]), float(kf.lam[-1])
        tau = sc.dynamics.horizon * n / lam_max * 2.0 ** (np.arange(-KERNEL_TIMES, 1) / 4)
        u, held, run = _flow(dr, Xt, tau / m, sc.dynamics)
        tau = tau[:u.shape[0] - 1]  # (all of them unless the flow stopped early: then D is over those reached)
        dist = np.linalg.norm(u[1:] - u[0] - kf.on_data(tau), axis=1) / math.sqrt(n)
        f_ker = kf.coefficients(tau) @ k0(Xt, dr.X).T
        dist_held = np.linalg.norm(held[1:] - held[0] - f_ker, axis=1) / math.sqrt(HELD_OUT)
        D, Dh = float(dist.max()), float(dist_held.max())
        beta = c / m
        bound_rate = n * math.log(n) ** 1.5 / lam_min ** 2 * (1 / math.sqrt(m) + beta + math.sqrt(m) * beta ** 3) \
            if lam_min > 0 and n > 1 else math.inf
        y_rms = float(np.linalg.norm(dr.y)) / math.sqrt(n)
        values = {"m": float(m), "n": float(n), "D": D, "D_heldout": Dh, "C_hat": D / bound_rate,
                  "lambda_n": lam_min, "m_hypothesis": 64 / lam_min ** 4 * math.log(n * n / sc.claim.delta)
                  if lam_min > 0 else math.inf,
                  "D_over_y": D / y_rms, "t_argmax_kernel": float(tau[np.argmax(dist)]),
                  "kernel_fit_left": float(np.linalg.norm(kf.on_data(tau[-1:])[0] - dr.y)) / math.sqrt(n) / y_rms,
                  "error_ratio": run.error_u / math.sqrt(n) / max(D, 1e-300), "steps": float(run.steps),
                  "seconds": run.seconds}
        return finish_trial(index, {}, values, run)

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        by = self.summarize_grid(sc, ctx, rows, trials,
                                 (("D_m", "D", "m"), ("D_m_heldout", "D_heldout", "m"), ("C_n", "C_hat", "n"),
                                  ("control_m_rate", "D", "m")),
                                 maxima=("D", "D_heldout", "error_ratio"),
                                 medians=("D_over_y", "lambda_n", "m_hypothesis", "kernel_fit_left",
                                          "t_argmax_kernel", "steps", "seconds"))
        by["D_m"].figures["error_ratio_max"] = max(t.values["error_ratio"] for t in trials)
        by["D_m"].figures["m_hypothesis_median"] = float(np.median([t.values["m_hypothesis"] for t in trials]))


def _flow(dr, Xt: np.ndarray, times: np.ndarray, dyn):
    """The network's joint flow landing on ``times``: its outputs on the data and on the held-out
    points Xt at t = 0 and at each time reached (rows), and the run."""
    m = dr.a0.size
    net = TwoLayerNetwork(dr.X, dr.y, m)
    outs, held = [], []

    def monitor(p):
        if p.step == 0 or landed(times, p.t):
            a, B = net.split(p.theta)
            outs.append(p.residual + dr.y)
            held.append(np.maximum(Xt @ B.T, 0.0) @ a)
        w = np.linalg.eigvalsh(net.gram(p.theta))
        return Spectrum(float(w[-1]), max(float(w[0]), 0.0))

    opts = FlowOptions(rtol=dyn.rtol, min_step_fraction=dyn.min_step_fraction, max_steps=dyn.max_steps,
                       checkpoints=tuple(times[:-1]))
    run = integrate_flow(net, net.join(dr.a0, dr.B0), float(times[-1]), monitor, opts)
    return np.array(outs), np.array(held), run
