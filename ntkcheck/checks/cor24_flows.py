"""cor24's two integrations of the gradient flow, each with its monitor: the exact event-driven
flow (:mod:`ntkcheck.reluflow`, the default) and the Bogacki–Shampine pair (``bs3``). Both
check the hypothesis and the conclusions at every point through :mod:`.cor24_monitor`."""
from __future__ import annotations

import math

import numpy as np

from ..dynamics import FlowOptions, Spectrum, integrate_flow
from ..reluflow import ReluFlow
from .base import VIOLATION
from .cor24_monitor import conclusions, controls_at_zero, end_to_end, hypothesis_spectrum

_EPS = float(np.finfo(float).eps)  # (a Python float: scalar arithmetic without numpy dispatch)


def exact_flow(sc, st, net, W0, a, r0, R_prime, tr, ctl_scale):
    """The flow by :mod:`ntkcheck.reluflow`: H is constant between events and the monitor
    sees each event, so t_h is the start of the first mode with λ_min(H) < λ0/2; between two
    points the conclusions are bounded too (:func:`conclusions`)."""
    X, y = st.X, st.y
    lam, T = st.lambda0, st.T
    l0, n = lam.value, X.shape[0]
    loss0 = float(r0 @ r0)
    xn2 = st.x_norm2
    u0 = r0 + y
    rates = {"flow_loss": l0, "variant": sc.claim.variant_rate * l0, "control_loss": 3 * xn2}
    prev = {"loss": loss0, "dist": 0.0, "t_dist": 0.0, "r_dist": math.sqrt(loss0)}
    eig_tol, half = 8 * n * _EPS * math.sqrt(n), l0 / 2  # (per point: times λ_max)

    def monitor(p):
        lmin = float(p.eigvals[0])
        before = tr.hyp_failed_at is None and not tr.vacuous  # the hypothesis held up to t_prev
        if before:
            tr.lam_min_low = min(tr.lam_min_low, lmin)
        # allowance: the eigensolver's (8n·u·‖H‖_∞, ‖H‖_∞ ≤ √n λ_max) and λ0's own error
        go = lmin >= half - (eig_tol * float(p.eigvals[-1]) + lam.error)
        if p.step == 0:
            if not go:
                tr.vacuous = True  # the hypothesis fails at t = 0: no evidence for the implication
            elif loss0 > 0:
                spec = Spectrum(float(p.eigvals[-1]), lmin, eigvals=p.eigvals, eigvecs=p.eigvecs)
                controls_at_zero(tr, net, p, spec, xn2, ctl_scale)
            return True
        # H is p.eigvals on all of (t_prev, t]: the end-to-end bound is followed to T regardless
        end_to_end(tr, p, loss0, l0)
        if before and not go:
            tr.hyp_failed_at = p.t_prev  # the hypothesis held up to t_prev
        elif before:
            conclusions(tr, p, loss0, rates, W0, R_prime, y, u0, ctl_scale, xn2, lmin=lmin, prev=prev)
        if tr.hyp_failed_at is not None or tr.vacuous:
            # past t_h only thm32 is open: stop once it is decided against, or nothing more can be
            return tr.state.get("thm32") != VIOLATION and p.trusted
        return True

    # sample times besides the events: geometric towards t = 0, where the ratios to the bounds peak;
    # the monitor sees every event (about a thousand per default trial) and bounds the conclusions
    # between points, so evenly spaced times would add evaluations (all m rows), not soundness
    times = np.geomspace(T * 1e-6, T, 41)
    flow = ReluFlow(X, y, a, T)
    return flow.run(W0, monitor, times, max_events=sc.dynamics.max_steps,
                    max_iterations=20 * sc.dynamics.max_steps)

def bs3_flow(sc, st, net, theta0, W0, r0, R_prime, tr, ctl_scale, u0):
    """The flow by the Bogacki–Shampine pair (:func:`ntkcheck.dynamics.integrate_flow`);
    no violation and no end of the hypothesis after its first kink."""
    y = st.y
    lam, T = st.lambda0, st.T
    l0 = lam.value
    loss0 = float(r0 @ r0)
    xn2 = st.x_norm2
    rates = {"flow_loss": l0, "variant": sc.claim.variant_rate * l0, "control_loss": 3 * xn2}

    def monitor(p):
        spec = hypothesis_spectrum(net, p, l0, lam.error, tr)
        if p.step == 0:
            if not spec.go:
                tr.vacuous = True  # the hypothesis fails at t = 0: no evidence
            elif loss0 > 0:
                controls_at_zero(tr, net, p, spec, xn2, ctl_scale)
            return spec
        if not spec.go:
            if not p.trusted:
                tr.t_h_trusted = False
            return spec  # (the integration stops: thm32 is then not followed to T)
        end_to_end(tr, p, loss0, l0)
        conclusions(tr, p, loss0, rates, W0, R_prime, y, u0, ctl_scale, xn2)
        return spec

    opts = FlowOptions(rtol=sc.dynamics.rtol, min_step_fraction=sc.dynamics.min_step_fraction,
                       max_steps=sc.dynamics.max_steps)
    return integrate_flow(net, theta0, T, monitor, opts)
