"""Training dynamics: gradient flow with stiffness-aware step control, and gradient descent.

Gradient flow θ' = −∇L(θ) is integrated with the Bogacki–Shampine 3(2) embedded pair
(the pair of MATLAB's ode23; FSAL, three gradient evaluations per step):

* **Stiffness.** The flow is stiff: its Jacobian is the Gauss–Newton matrix, whose
  largest eigenvalue λ_max (that of the Gram matrix H = J Jᵀ) grows with n (and, for
  the two-layer model, with m). An explicit method is stable only for h·λ_max inside
  its stability interval, 2.51 for this pair, so every step is capped at
  ``safety · 2.51 / λ_max``, with λ_max re-read from the problem at each accepted step.
  Error control alone would find this limit by trial and rejection; the cap makes it
  explicit.
* **Accuracy.** The embedded second-order solution gives a local error estimate e of
  θ; its effect on the outputs, ‖J e‖ (a Jacobian-vector product), plus the exact
  error of the step on the frozen-H linear part r' = −H r (``linear_step_error``: the
  embedded estimate alone is only asymptotic and misses the error of a stiff component
  when hλ is near the cap) is compared with ``rtol · ‖r‖ + atol`` (r the residual).
  Steps above it are retried smaller.
* **Kinks.** ReLU's σ' jumps where a sign w_k·x_i changes, so a step straddling a kink
  has a first-order error that no small step removes cheaply (and the flow can slide
  along a kink, where signs chatter). Steps are never shrunk below ``min_step_fraction``
  of the stability cap: such a step is accepted and its estimated error is carried in
  the trajectory's error budget, but an embedded estimate is not a bound across a kink
  (fine references show the true error up to ~8× larger, also for steps accepted within
  tolerance), so once a step crosses a kink (a sign differs between its ends, for problems
  with a ``signs`` method) or is accepted at the floor, every later point is marked
  untrusted (``Point.trusted``): monitors may confirm a bound there (no violation on the
  numerical trajectory), but must not conclude a violation or the end of a hypothesis. The number of steps is at most
  T·λ_max/(2.51·safety·min_step_fraction), whatever m is.
* **Error budget.** The trajectory's error estimate in output space is accumulated
  as E ← e^{−μh} E + ‖J e‖, where μ = λ_min(H) ≥ 0 is the contraction rate of the
  outputs under du/dt = −H(u − y) (the logarithmic norm of −H): an error made
  earlier decays with the flow instead of being carried at full size for ever. It is
  reported with every result; claims count a violation only beyond it. Tests compare
  it with the true error against closed forms and fine reference solutions.

Gradient descent θ ← θ − η∇L(θ) is exact arithmetic on its own terms (no integration
error); a run that produces non-finite numbers or a loss above the initial one is
stopped and reported as a divergence.

:func:`integrate_flow_exponential` removes the stability cap for problems that say how a
residual moves θ (``velocity``) and give the Gram matrix K (``gram``; u′ = −K r along the flow):

* **Step.** With K = V Λ Vᵀ at θ₀ frozen over the step, the outputs' linear dynamics
  r′ = −K r has the exact solution r(s) = V e^{−Λs} Vᵀ r₀, and θ moves by the velocity of its
  integral, θ₁ = θ₀ + velocity(θ₀, V φ(Λ, h) Vᵀ r₀), φ(λ, h) = (1 − e^{−λh})/λ: the exponential
  Euler step of the Gauss–Newton linearisation. Every stiff component is integrated exactly
  at any h, so no step is capped by λ_max (the number of steps does not grow with it); what
  is left is the error from J changing along the step, which is O(h²) per step.
* **Accuracy.** A second stage (ETDRK2, Cox and Matthews, J. Comput. Phys. 2002: second order
  for any fixed linear part) adds c = h φ₂(hL) D, D the change over the step of the vector
  field's part that the frozen linearisation leaves out (one more gradient, no further
  eigendecomposition): c is the exponential Euler step's error to leading order, and its
  effect on the outputs, ‖J c‖, is compared with ``rtol · ‖r‖ + atol``; the corrected step
  is kept (its error is third order in h), the estimate is that of the Euler step, above its
  own. That estimate is asymptotic in h, so the steps are kept within its range: the first is
  1/λ_max (one step across the initial transient, K frozen where it changes fastest, erred 5×
  above its estimate) and each next at most twice the last (allowed 5×, the error at a trusted
  point reached 1.8× the estimate over 80 generated draws; at 2×, 0.70). Against an
  independent fine RK4 integration the outputs stay within the carried estimate at trusted
  points: at most 0.77 of it over 120 draws (tests/test_lemma43.py generates more).
* **Kinks, trust and the error budget** as for :func:`integrate_flow`: a step across which a
  sign changes, or one accepted at the floor (``min_step_fraction`` · T · 2⁻¹⁰, independent
  of λ_max) with its estimate above tolerance, makes every later point untrusted, and the
  budget is carried as E ← e^{−μh} E + ‖J e‖.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

RK_STABILITY = 2.51  # BS3 real-axis stability interval: |1 + z + z²/2 + z³/6| ≤ 1 for z ∈ [−2.51, 0]


class Problem(Protocol):
    def rhs(self, theta: np.ndarray) -> np.ndarray: ...  # −∇L(θ)
    def jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray: ...  # J(θ) v
    def residual(self, theta: np.ndarray) -> np.ndarray: ...  # r = u − y


class LinearisedProblem(Problem, Protocol):
    """What :func:`integrate_flow_exponential` needs besides: θ′ = velocity(θ, r(θ)) = rhs(θ),
    velocity linear in its residual argument, and J·velocity(θ, w) = −K(θ) w."""

    def velocity(self, theta: np.ndarray, w: np.ndarray) -> np.ndarray: ...
    def gram(self, theta: np.ndarray) -> np.ndarray: ...  # K(θ)


@dataclass
class Point:
    """What a monitor sees at an accepted time: t, θ, the error budget so far."""

    t: float
    step: int
    theta: np.ndarray
    residual: np.ndarray
    error_u: float  # estimated ‖u_numerical(t) − u_exact(t)‖ (0 for gradient descent)
    error_theta: float = 0.0  # estimated ‖θ_numerical(t) − θ_exact(t)‖₂ (sum of local estimates)
    #: False once a step was accepted across a ReLU kink (a sign of the pre-activations
    #: changed within it) or with an estimated error above tolerance: the embedded estimate
    #: is not a bound across a kink (fine references show the true error above it), so
    #: nothing negative (a violation, the end of a hypothesis) may be concluded from this
    #: point of the trajectory on
    trusted: bool = True
    #: the embedded local error estimate (a vector like θ) of the step that ended here, for
    #: monitors that need the error of a part of θ (None at t = 0 and for gradient descent)
    local_error: np.ndarray | None = None
    #: θ − θ(0) summed from the steps' increments (None at t = 0 and for gradient descent): a
    #: displacement far below the rounding of θ's entries (‖B_t − B_0‖ ~ 10⁻¹⁴ at t ~ 10⁻⁹ next
    #: to entries of size 1) keeps its relative accuracy here, not in θ − θ(0)
    displacement: np.ndarray | None = None


@dataclass
class Spectrum:
    """What a monitor tells the integrator: λ_max (the step cap), λ_min (the contraction
    rate of errors; 0 when unknown), whether to go on, and optionally the eigenpairs of
    the output-space Gram matrix H (so that the error of the stiff linear part can be
    computed exactly, see :func:`linear_step_error`)."""

    lam_max: float
    lam_min: float = 0.0
    go: bool = True
    eigvals: np.ndarray | None = None
    eigvecs: np.ndarray | None = None


def rk3_stability(z: np.ndarray) -> np.ndarray:
    """Stability function of any 3-stage, 3rd-order explicit RK (BS3 included): 1 + z + z²/2 + z³/6."""
    return 1 + z + z * z / 2 + z**3 / 6


def linear_step_error(spec: Spectrum, r: np.ndarray, h: float) -> float:
    """Exact one-step error of BS3 on the frozen-H output dynamics r' = −H r.

    The embedded estimate is asymptotic (hλ → 0); near the stability cap (hλ ≈ 2)
    it can underestimate the error of a stiff component that has not decayed yet.
    In H's eigenbasis the step multiplies component j by R(−hλ_j) instead of
    e^{−hλ_j}, so this part of the error is ‖(R(−hΛ) − e^{−hΛ}) Vᵀ r‖, exactly.
    """
    if spec.eigvals is None or spec.eigvecs is None:
        return 0.0
    z = -h * np.clip(spec.eigvals, 0.0, None)
    return float(np.linalg.norm((rk3_stability(z) - np.exp(z)) * (spec.eigvecs.T @ r)))


Monitor = Callable[[Point], Spectrum]


@dataclass
class FlowOptions:
    rtol: float = 1e-4
    atol: float = 1e-10
    safety: float = 0.9
    min_step_fraction: float = 0.1
    max_steps: int = 200_000
    #: times the integrator must land on (accepted steps end there), e.g. a geometric grid that
    #: resolves an early interval in which the monitor's quantities change fast
    checkpoints: tuple[float, ...] = ()


@dataclass
class Run:
    """Statistics of one integration (or descent) run."""

    method: str
    t_end: float
    steps: int
    rejected: int = 0
    floor_steps: int = 0  # accepted at the floor with an error above tolerance (kinks)
    kink_steps: int = 0  # accepted steps across which some sign of the pre-activations changed
    gradient_evals: int = 0
    error_u: float = 0.0
    error_theta: float = 0.0
    diverged: bool = False
    divergence: str = ""
    stopped_early: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def gradient_descent(problem: Problem, theta0: np.ndarray, eta: float, steps: int,
                     monitor: Monitor) -> Run:
    """θ_{k+1} = θ_k − η ∇L(θ_k) for ``steps`` steps; divergence stops the run."""
    t0 = time.perf_counter()
    theta = np.array(theta0, dtype=np.float64, copy=True)
    r = problem.residual(theta)
    loss0 = float(r @ r)
    run = Run("gd", 0.0, 0)
    go = monitor(Point(0.0, 0, theta, r, 0.0)).go
    for k in range(1, steps + 1):
        if not go:
            run.stopped_early = True
            break
        with np.errstate(over="ignore", invalid="ignore"):
            theta = theta + eta * problem.rhs(theta)
            r = problem.residual(theta)
            loss = float(r @ r)
        run.gradient_evals += 1
        if not (np.isfinite(loss) and np.all(np.isfinite(theta))):
            run.diverged, run.divergence = True, f"non-finite loss at step {k}"
            break
        if loss > loss0 * (1 + 1e-9):
            run.diverged = True
            run.divergence = f"loss grew above its initial value ({loss:.3g} > {loss0:.3g}) at step {k}"
            break
        run.steps = k
        go = monitor(Point(k * eta, k, theta, r, 0.0)).go
    run.t_end = run.steps * eta
    run.seconds = time.perf_counter() - t0
    return run


#: the floor of the exponential integrator's steps, as a fraction of T (times min_step_fraction)
EXP_FLOOR = 2.0**-10
#: the most the exponential integrator's step grows from one step to the next
GROWTH = 2.0


def _phi(lam: np.ndarray, h: float) -> np.ndarray:
    """φ(λ, h) = (1 − e^{−λh})/λ for λ ≥ 0, as −expm1(−λh)/λ (accurate for any λh that is not
    subnormal); h where λh ≤ 10⁻²⁹⁰ (there |φ − h| ≤ 10⁻²⁹⁰h)."""
    z = lam * h
    big = z > 1e-290
    return np.where(big, -np.expm1(-z) / np.where(big, lam, 1.0), h)


#: (φ₂(−x) − ½)/x = Σ_{j≥1} (−1)^j x^{j−1}/(j+2)!: its first 14 coefficients (the next term is
#: below 10⁻¹⁸ of the sum for x < ½)
_PHI2_SERIES = np.array([(-1.0) ** j / math.factorial(j + 2) for j in range(14, 0, -1)])


def _phi2_shift(lam: np.ndarray, h: float) -> np.ndarray:
    """(φ₂(−λh) − ½)/λ with φ₂(z) = (e^z − 1 − z)/z², for λ ≥ 0 (its limit −h/6 at λ = 0): by its
    series where λh < ½ (the direct form loses ~6u/(λh)² there by cancellation), directly
    elsewhere (relative error below 10⁻¹⁴)."""
    x = lam * h
    small = x < 0.5
    xs = np.where(small, 1.0, x)  # (a stand-in where the series is used: no 0/0)
    direct = ((np.expm1(-xs) + xs) / (xs * xs) - 0.5) / np.where(small, 1.0, lam)
    return np.where(small, h * np.polyval(_PHI2_SERIES, x), direct)


def _exp_step(problem: "LinearisedProblem", theta: np.ndarray, r: np.ndarray, lam: np.ndarray,
              V: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """One step of the exponential pair on the frozen-K linearisation at θ (K = V diag(λ)
    Vᵀ, L = −JᵀJ/n its action on θ, F = velocity(θ, r)): the exponential Euler increment
    Δ = h φ₁(hL) F = velocity(θ, V φ₁ Vᵀ r), and the second-order term c = h φ₂(hL) D with
    D = F(θ + Δ) − F − LΔ = rhs(θ + Δ) − velocity(θ, r_lin), r_lin = V e^{−λh} Vᵀ r the linear
    prediction of the residual at h (ETDRK2: Cox & Matthews, J. Comput. Phys. 176, 2002). For
    any v, f(hL) v = f(0) v − velocity(θ, V ((f(−hλ) − f(0))/λ ∘ Vᵀ J v)). Returns (Δ + c, c):
    the step and the estimate of the exponential Euler step's error, above the step's own."""
    q = V.T @ r
    delta = problem.velocity(theta, V @ (_phi(lam, h) * q))
    D = problem.rhs(theta + delta) - problem.velocity(theta, V @ (np.exp(-lam * h) * q))
    c = 0.5 * D - problem.velocity(theta, V @ (_phi2_shift(lam, h) * (V.T @ problem.jvp(theta, D))))
    c *= h
    return delta + c, c


def _integrate(problem: Problem, theta0: np.ndarray, T: float, monitor: Monitor, o: FlowOptions,
               stepper: "_BS3 | _Exponential") -> Run:
    """The loop both integrators share: steps capped by ``stepper.limits`` and landing on the
    checkpoints, rejected above tolerance down to the floor, the kink and trust rules and the
    error budget of the module's docstring; the step itself is ``stepper.step``'s."""
    t0 = time.perf_counter()
    theta = np.array(theta0, dtype=np.float64, copy=True)
    r = problem.residual(theta)
    spec = monitor(Point(0.0, 0, theta, r, 0.0))
    run = Run(stepper.method, 0.0, 0)
    if not spec.go:
        run.stopped_early = True
        return run
    stepper.start(problem, theta, spec)
    disp = np.zeros_like(theta)
    t, err_total, err_theta = 0.0, 0.0, 0.0
    signs = getattr(problem, "signs", None)  # problems with kinks say where they are
    pattern = signs(theta) if signs is not None else None
    h = stepper.first(spec, T)
    stops = sorted(c for c in o.checkpoints if 0 < c < T)
    power = 1 / (stepper.order + 1)  # (the estimate is O(h^(order + 1)))
    while t < T * (1 - 1e-12):
        cap, floor = stepper.limits(spec, T)
        while stops and stops[0] <= t * (1 + 1e-12):
            stops.pop(0)
        h = min(h, cap, T - t, stops[0] - t if stops else np.inf)
        inc, e, extra = stepper.step(problem, theta, r, spec, h)
        new = theta + inc
        err = float(np.linalg.norm(problem.jvp(new, e))) + extra
        tol = o.rtol * float(np.linalg.norm(r)) + o.atol
        if not np.isfinite(err) or not np.all(np.isfinite(new)):
            run.diverged, run.divergence = True, f"non-finite state at t = {t:.4g}"
            break
        if err > tol and h > floor * (1 + 1e-12):
            h = max(floor, h * max(0.2, 0.9 * (tol / err) ** power))
            run.rejected += 1
            continue
        if err > tol:
            run.floor_steps += 1
        if pattern is not None and run.kink_steps == 0:  # (once a kink is crossed, trust is gone)
            new_pattern = signs(new)
            if not np.array_equal(new_pattern, pattern):
                run.kink_steps += 1
            pattern = new_pattern
        t += h
        theta = new
        disp = disp + inc  # (a new array: a monitor may keep the one it was shown)
        stepper.accept()
        err_total = err_total * np.exp(-max(spec.lam_min, 0.0) * h) + err
        err_theta += float(np.linalg.norm(e))
        run.steps += 1
        r = problem.residual(theta)
        spec = monitor(Point(t, run.steps, theta, r, err_total, err_theta,
                             trusted=run.floor_steps == 0 and run.kink_steps == 0, local_error=e,
                             displacement=disp))
        if not spec.go:
            run.stopped_early = True
            break
        stepper.check(spec)
        if run.steps >= o.max_steps:
            run.stopped_early = True
            run.divergence = f"stopped after max_steps = {o.max_steps} at t = {t:.4g}"
            break
        top = stepper.growth
        grow = top if err == 0 else min(top, 0.9 * (tol / err) ** power)
        h = h * max(grow, 0.2)
    run.t_end = t
    run.gradient_evals = stepper.evals
    run.error_u = err_total
    run.error_theta = err_theta
    run.seconds = time.perf_counter() - t0
    return run


class _BS3:
    """The Bogacki–Shampine 3(2) pair (FSAL), capped at safety·2.51/λ_max."""

    method, order, growth = "flow", 2, 5.0

    def __init__(self, o: FlowOptions):
        self.o = o
        self.k1 = self.k4 = None
        self.evals = 0

    def start(self, problem: Problem, theta: np.ndarray, spec: Spectrum) -> None:
        self.k1 = problem.rhs(theta)
        self.evals = 1

    def first(self, spec: Spectrum, T: float) -> float:
        return self.limits(spec, T)[0]

    def limits(self, spec: Spectrum, T: float) -> tuple[float, float]:
        cap = self.o.safety * RK_STABILITY / max(spec.lam_max, 1e-300)
        return cap, self.o.min_step_fraction * cap

    def step(self, problem: Problem, theta: np.ndarray, r: np.ndarray, spec: Spectrum, h: float):
        k1 = self.k1
        k2 = problem.rhs(theta + 0.5 * h * k1)
        k3 = problem.rhs(theta + 0.75 * h * k2)
        inc = h * (2 / 9 * k1 + 1 / 3 * k2 + 4 / 9 * k3)
        self.k4 = k4 = problem.rhs(theta + inc)
        self.evals += 3
        e = h * (-5 / 72 * k1 + 1 / 12 * k2 + 1 / 9 * k3 - 1 / 8 * k4)
        return inc, e, linear_step_error(spec, r, h)

    def accept(self) -> None:
        self.k1 = self.k4

    def check(self, spec: Spectrum) -> None:
        pass


class _Exponential:
    """Exponential Euler with an ETDRK2 second stage on the frozen-K linearisation: no cap."""

    method, order, growth = "flow-exponential", 1, GROWTH

    def __init__(self, o: FlowOptions):
        self.o = o
        self.evals = 0

    def start(self, problem: "LinearisedProblem", theta: np.ndarray, spec: Spectrum) -> None:
        self.check(spec)

    def first(self, spec: Spectrum, T: float) -> float:
        # the first step resolves the fastest linear mode (the estimate is asymptotic in h; a
        # first step across the whole initial transient, with K frozen at t = 0 where it changes
        # fastest, erred 5× above it): growth ≤ 2× a step (GROWTH) then crosses it in a few
        return min(T, 1.0 / max(float(spec.eigvals[-1]), 1e-300))

    def limits(self, spec: Spectrum, T: float) -> tuple[float, float]:
        return np.inf, self.o.min_step_fraction * T * EXP_FLOOR

    def step(self, problem: "LinearisedProblem", theta: np.ndarray, r: np.ndarray, spec: Spectrum, h: float):
        self.evals += 2
        inc, e = _exp_step(problem, theta, r, np.clip(spec.eigvals, 0.0, None), spec.eigvecs, h)
        return inc, e, 0.0

    def accept(self) -> None:
        pass

    def check(self, spec: Spectrum) -> None:
        if spec.eigvals is None or spec.eigvecs is None:
            raise ValueError("integrate_flow_exponential needs the monitor to return K's eigenpairs")


def integrate_flow(problem: Problem, theta0: np.ndarray, T: float, monitor: Monitor,
                   opts: FlowOptions | None = None) -> Run:
    """Integrate θ' = −∇L(θ) on [0, T] by the Bogacki–Shampine pair; call ``monitor`` at t = 0
    and after every accepted step."""
    o = opts or FlowOptions()
    return _integrate(problem, theta0, T, monitor, o, _BS3(o))


def integrate_flow_exponential(problem: "LinearisedProblem", theta0: np.ndarray, T: float, monitor: Monitor,
                               opts: FlowOptions | None = None) -> Run:
    """Integrate θ' = −∇L(θ) on [0, T] by exponential Euler steps on the frozen-K linearisation,
    with a second stage (ETDRK2) for the error (see the module's docstring); call ``monitor`` at
    t = 0 and after every accepted step. The monitor must return K's eigenpairs at the point
    (``Spectrum.eigvals``, ``.eigvecs``): the next step starts from them."""
    o = opts or FlowOptions()
    return _integrate(problem, theta0, T, monitor, o, _Exponential(o))
