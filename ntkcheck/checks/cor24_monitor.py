"""What cor24 checks at every point of a trajectory: the hypothesis λ_min(H) ≥ λ0/2, the
conclusions and controls against their bounds (beyond the error budget, and between points),
and the controls' exact limits at t → 0+. Shared by both integrators."""
from __future__ import annotations

import math

import numpy as np

from ..dynamics import Spectrum
from ..kernels import eigenvalue_tolerance
from ..models import NTKNetwork
from .base import HOLDS, UNDECIDED, VIOLATION

_EPS = float(np.finfo(float).eps)  # (a Python float: scalar arithmetic without numpy dispatch)


def _loss(p) -> float:
    """‖r‖² at the point: the engine's own figure when it formed one (the same dot product)."""
    got = getattr(p, "loss", None)
    return float(p.residual @ p.residual) if got is None else got


def conclusions(tr: "Tracker", p, loss0: float, rates: dict[str, float], W0: np.ndarray, R_prime: float,
                y: np.ndarray, u0: np.ndarray, ctl_scale: float, xn2: float, lmin: float | None = None,
                prev: dict | None = None) -> None:
    """The conclusions and controls at one point of the flow, beyond its error budget. With the
    spectrum's λ_min on (t_prev, t] and the previous point (``prev``, updated here), also their
    bounds in between: loss·e^{κt} moves at rate κ − 2rᵀHr/‖r‖² ≤ κ − 2λ_min(H), and a weight
    at most Δt‖X‖₂‖r(t_a)‖/√m after the last point t_a where the weights were formed (‖r‖
    does not grow). With ``prev`` the weights (all m rows) are formed only at points that are
    not events, or where that bound from t_a no longer certifies ‖w_k(t) − w_k(0)‖ ≤ R′."""
    m = W0.shape[0]
    loss = _loss(p)
    e = p.error_u
    loss_err = 2 * math.sqrt(loss) * e + e * e + 16 * _EPS * loss0
    dt = p.t - p.t_prev if prev is not None else 0.0
    for key, rate in rates.items():
        sup = None
        if prev is not None and rate - 2 * lmin > 0:  # the ratio may rise inside, above both ends
            sup = prev["loss"] * math.exp(-rate * dt) * math.exp((rate - 2 * lmin) * dt)
        tr.check(key, loss, math.exp(-rate * p.t) * loss0, loss_err, p.trusted, sup=sup)
    tr.t_h, tr.loss_h = p.t, loss
    tr.t_h_trusted = p.trusted
    if prev is not None:
        prev["loss"] = loss
        reach = prev["dist"] + (p.t - prev["t_dist"]) * math.sqrt(xn2) * prev["r_dist"] / math.sqrt(m)
        if p.event and reach <= R_prime - p.error_theta:
            return  # certified up to t without forming W: nothing to record
    dist = float(np.sqrt(((p.theta.reshape(W0.shape) - W0) ** 2).sum(axis=1)).max())
    sup = None
    if prev is not None:
        # from dist_a at t_a to dist at t with slope ≤ L: at most (dist_a + dist + L·Δt)/2, and
        # reach = dist_a + L·Δt
        sup = (dist + reach) / 2
        prev["dist"], prev["t_dist"], prev["r_dist"] = dist, p.t, math.sqrt(loss)
    tr.check("flow_weights", dist, R_prime, p.error_theta, p.trusted, sup=sup)
    moved = float(np.linalg.norm(p.residual + y - u0))
    tr.check("control_weights", dist, ctl_scale * moved, p.error_theta + ctl_scale * e, p.trusted)


def end_to_end(tr: "Tracker", p, loss0: float, l0: float) -> None:
    """[DZPS] Theorem 3.2's bound ‖r(t)‖² ≤ e^{−λ0 t}‖r(0)‖² at one point, whatever the hypothesis.
    The points suffice for the interval since the previous one: H is constant there (one
    mode), so ‖r(t)‖² e^{λ0 t} = Σ_i q_i² e^{(λ0 − 2λ_i)(t − t_s)} is a sum of exponentials,
    convex in t, and its largest value on [t_prev, t] is at an end."""
    loss = _loss(p)
    e = p.error_u
    err = 2 * math.sqrt(loss) * e + e * e + 16 * _EPS * loss0
    tr.check("thm32", loss, math.exp(-l0 * p.t) * loss0, err, p.trusted)
    tr.e2e_to = p.t
    if loss0 > 0:
        tr.curve.append((p.t, loss / loss0))


def hypothesis_spectrum(net: NTKNetwork, p, l0: float, l0_error: float, tracker: "Tracker") -> Spectrum:
    """H at this step and its spectrum; go=False (and the time recorded) when
    λ_min(H) < λ0/2 beyond the floating-point allowance, i.e. the hypothesis fails here."""
    H = net.gram(p.theta)
    w, V = np.linalg.eigh(H)
    tracker.lam_min_low = min(tracker.lam_min_low, w[0])
    go = w[0] >= l0 / 2 - (eigenvalue_tolerance(H) + l0_error)
    if not go:
        tracker.hyp_failed_at = p.t
    return Spectrum(w[-1], w[0], go=go, eigvals=w, eigvecs=V)


def controls_at_zero(tr: "Tracker", net: NTKNetwork, p, spec: Spectrum, xn2: float, ctl_scale: float) -> None:
    """The controls' exact limits at t → 0+, from H(0), r(0) and θ′(0) (no integration).

    control_loss: the ratio ‖r(t)‖² e^{3‖X‖²t}/‖r₀‖² has right derivative 3‖X‖² − 2 r₀ᵀH r₀/‖r₀‖² at 0,
    positive since r₀ᵀH r₀ ≤ ‖X‖²‖r₀‖²: the ratio exceeds 1 just after 0. control_weights: as
    t → 0+, max_k ‖Δw_k‖/(½‖Δu‖/(√m‖X‖₂)) → max_k ‖w_k′(0)‖/(ctl_scale ‖H r₀‖), which is ≥ 2.
    The signs of W(0) are constant near t = 0 (no w_k·x_i is exactly 0), so H there is H(0)."""
    r0 = p.residual
    Hr = spec.eigvecs @ (spec.eigvals * (spec.eigvecs.T @ r0))
    rq = float(r0 @ Hr) / float(r0 @ r0)
    tr.zero["control_loss_slope_at_0"] = slope = 3 * xn2 - 2 * rq
    tr.state["control_loss"] = VIOLATION if slope > 1e-9 * 3 * xn2 else UNDECIDED
    wdot = float(np.sqrt((net.rhs(p.theta).reshape(net.m, net.d) ** 2).sum(axis=1)).max())
    speed_u = float(np.linalg.norm(Hr))
    if speed_u > 0:
        tr.zero["control_weights_ratio_at_0"] = ratio = wdot / (ctl_scale * speed_u)
        tr.state["control_weights"] = VIOLATION if ratio > 1 + 1e-9 else UNDECIDED


class Tracker:
    """Per-trial bookkeeping of the conclusions checked at every step up to t_h."""

    def __init__(self, l0: float):
        self.l0 = l0
        self.hyp_failed_at: float | None = None
        self.t_h = 0.0
        self.k_h = 0
        self.loss_h = 0.0
        self.lam_min_low = np.inf
        self.vacuous = False  # the hypothesis failed at t = 0
        self.t_h_trusted = True  # t_h is a trusted point of the trajectory
        self.zero: dict[str, float] = {}  # the controls' exact t → 0+ figures
        self.e2e_to = 0.0  # the time up to which the end-to-end bound (thm32) was followed
        self.curve: list[tuple[float, float]] = [(0.0, 1.0)]  # (t, loss ratio) at each point, for --plot
        self.worst: dict[str, float] = dict.fromkeys(
            ("thm32", "flow_loss", "flow_weights", "variant", "gd", "control_loss", "control_weights", "control_gd"), 0.0)
        self.state: dict[str, str] = {}

    def check(self, key: str, value: float, bound: float, err: float, trusted: bool = True,
              sup: float | None = None) -> None:
        """value ≤ bound at one point: beyond the error a violation (undecided at an untrusted
        point, whose error estimate is no bound), within it undecided, and so is a point whose
        value, bound or error is NaN (it certifies nothing). ``sup`` bounds the value
        over the interval since the last point (in units of this bound): above bound − err the
        claim is not certified there (undecided unless violated)."""
        top = value if sup is None else max(value, sup)
        if bound > 0:  # (a bound that underflows towards 0 would make the ratio overflow)
            self.worst[key] = max(self.worst[key], value / bound if value < bound * 1e300 else 1e300)
        if value > bound + err and trusted:
            self.state[key] = VIOLATION
        elif not top <= bound - err and self.state.get(key) != VIOLATION:  # (a NaN anywhere: not certified)
            self.state[key] = UNDECIDED

    def outcome(self, key: str) -> str:
        return self.state.get(key, HOLDS)
