"""The two differentiable models trained by the dynamics checks: the NTK network (cor24, a
fixed) and the two-layer random-feature network (lemma43, a and B trained). Parameters are
one flat vector θ, gradients and Jacobian-vector products are matrix products (no loop over
neurons), and the quantities needed at one θ share one pre-activation product."""
from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np

from .memory import DEFAULT_WORKING_MEMORY_MB


class _Point:
    """W Xᵀ (m × n) at one parameter vector θ, with the sign mask 1{W Xᵀ ≥ 0} and the ReLU
    max(W Xᵀ, 0) (float64 each) formed on first use: the integrators ask for the gradient, the
    Jacobian-vector product, the outputs and H at the same θ, and each needs one of them."""

    def __init__(self, theta: np.ndarray, P: np.ndarray):
        self.theta, self.P = theta, P

    @cached_property
    def mask(self) -> np.ndarray:
        return (self.P >= 0).astype(np.float64)

    @cached_property
    def relu(self) -> np.ndarray:
        return np.maximum(self.P, 0.0)


def _point(cache: _Point | None, theta: np.ndarray, pre: Callable[[np.ndarray], np.ndarray]) -> _Point:
    """``cache`` if it holds θ, else a new point with P = pre(θ)."""
    if cache is not None and np.array_equal(cache.theta, theta):
        return cache
    return _Point(theta.copy(), pre(theta))


class NTKNetwork:
    """u_i = (1/√m) Σ_k a_k σ(w_k·x_i) with a_k = ±1 fixed; loss L = ½‖u − y‖²; gradient flow on W.

    Parameters are a flat vector θ = vec(W) (m·d), so the integrators in ``dynamics``
    see one array. Gradients are matrix products: ∇_W L = (1/√m) diag(a) (S ∘ r)ᵀ... X,
    with S = 1{W Xᵀ ≥ 0} and r = u − y; no loop over neurons.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, a: np.ndarray,
                 working_memory_mb: float = DEFAULT_WORKING_MEMORY_MB):
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.a = np.asarray(a, dtype=np.float64)
        self.m = self.a.size
        self.d = self.X.shape[1]
        self.G = self.X @ self.X.T
        self.wm = working_memory_mb
        self.calls = 0  # gradient evaluations, for reporting
        self.a_m = self.a / np.sqrt(self.m)  # a_k/√m, the output weights with the scaling
        self._cache: _Point | None = None

    def W(self, theta: np.ndarray) -> np.ndarray:
        return theta.reshape(self.m, self.d)

    def _at(self, theta: np.ndarray) -> _Point:
        """W Xᵀ for θ and what derives from it, reused while θ is unchanged."""
        self._cache = _point(self._cache, theta, lambda t: self.W(t) @ self.X.T)
        return self._cache

    def signs(self, theta: np.ndarray) -> np.ndarray:
        """1{w_k·x_i ≥ 0} (m × n): where the flow's vector field is smooth, it is constant."""
        return self._at(theta).P >= 0

    def output(self, theta: np.ndarray) -> np.ndarray:
        return self._at(theta).relu.T @ self.a_m

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return self.output(theta) - self.y

    def rhs(self, theta: np.ndarray) -> np.ndarray:
        """−∇L(θ): dw_k/dt = −(1/√m) a_k Σ_i r_i 1{w_k·x_i ≥ 0} x_i, i.e. −diag(a/√m) S (r ∘ X)
        with S the m × n sign mask (the n × d scaling r ∘ X instead of an m × n one)."""
        self.calls += 1
        pt = self._at(theta)
        r = pt.relu.T @ self.a_m - self.y
        grad = pt.mask @ (r[:, None] * self.X)  # m × d
        grad *= -self.a_m[:, None]
        return grad.ravel()

    def jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """J v: the first-order change of u along the parameter direction v."""
        pt = self._at(theta)
        Q = self.W(v) @ self.X.T
        Q *= pt.mask
        return Q.T @ self.a_m

    def gram(self, theta: np.ndarray) -> np.ndarray:
        """H(W) = J Jᵀ (a_k² = 1)."""
        S = self._at(theta).mask  # float64 0/1: the counts Sᵀ S are exact integers
        return self.G * (S.T @ S) / self.m


class TwoLayerNetwork:
    """f(x) = Σ_k a_k σ(b_k·x) (no 1/m factor), both layers trained on R̂ = (1/2n)‖f(X) − y‖².

    θ = (a, vec(B)). Along the flow the outputs obey u' = −K (u − y) with
    K = J Jᵀ/n = (Φ Φᵀ + (X Xᵀ) ∘ (S diag(a²) Sᵀ))/n, Φ = σ(X Bᵀ), S = 1{X Bᵀ ≥ 0}:
    its largest eigenvalue grows linearly with m (Φ Φᵀ is a sum of m terms), which is
    the stiffness the integrator's step cap follows.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, m: int):
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.n, self.d = self.X.shape
        self.m = m
        self.G = self.X @ self.X.T
        self._cache: _Point | None = None

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return theta[: self.m], theta[self.m:].reshape(self.m, self.d)

    @staticmethod
    def join(a: np.ndarray, B: np.ndarray) -> np.ndarray:
        return np.concatenate([a, B.ravel()])

    def _at(self, theta: np.ndarray) -> _Point:
        """B Xᵀ (m × n) for θ and what derives from it, reused while θ is unchanged."""
        self._cache = _point(self._cache, theta, lambda t: self.split(t)[1] @ self.X.T)
        return self._cache

    def output(self, theta: np.ndarray) -> np.ndarray:
        a, _ = self.split(theta)
        return self._at(theta).relu.T @ a

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return self.output(theta) - self.y

    def rhs(self, theta: np.ndarray) -> np.ndarray:
        a, _ = self.split(theta)
        return self.velocity(theta, self._at(theta).relu.T @ a - self.y)

    def velocity(self, theta: np.ndarray, w: np.ndarray) -> np.ndarray:
        """−Jᵀw/n: θ′ when the residual is w (rhs(θ) = velocity(θ, r(θ))); J·velocity(θ, w) = −K w."""
        a, _ = self.split(theta)
        pt = self._at(theta)
        ga = pt.relu @ w / self.n
        gB = pt.mask @ (w[:, None] * self.X)  # S (w ∘ X): an n × d scaling, not an m × n one
        gB *= (a / self.n)[:, None]
        return -np.concatenate([ga, gB.ravel()])

    def jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        a, _ = self.split(theta)
        va, vB = self.split(v)
        pt = self._at(theta)
        Q = vB @ self.X.T
        Q *= pt.mask
        return pt.relu.T @ va + Q.T @ a

    def signs(self, theta: np.ndarray) -> np.ndarray:
        """1{B Xᵀ ≥ 0} (m × n): where σ′ jumps. The integrator marks the flow untrusted once a
        step changes one (its error estimate is no bound across a kink)."""
        return self._at(theta).P >= 0

    def gram(self, theta: np.ndarray) -> np.ndarray:
        """K = J Jᵀ/n: u' = −K (u − y) along the flow."""
        a, _ = self.split(theta)
        pt = self._at(theta)
        S = pt.mask * a[:, None]
        return (pt.relu.T @ pt.relu + self.G * (S.T @ S)) / self.n


class NetworkWithTwin:
    """The network's joint flow and its random-feature twin's flow (a alone, B_0 frozen) as one
    system, θ = (a, vec B, ã), integrated with the same steps. ‖a_t − ã_t‖ is far below the
    integration error of a alone (an exact twin beside a numerical a leaves that error in the
    difference); integrated together, the two errors nearly cancel in a − ã, and the part of
    each step's error estimate that falls on a − ã estimates what is left. Outputs (u, ũ),
    2n of them; the twin's Gram matrix Φ_0Φ_0ᵀ/n is below the network's K, so the network's
    λ_max caps the step of both."""

    def __init__(self, net: TwoLayerNetwork, Phi0: np.ndarray):
        self.net, self.Phi0 = net, Phi0
        self.k = net.m * (1 + net.d)

    def join(self, a: np.ndarray, B: np.ndarray, a_twin: np.ndarray) -> np.ndarray:
        return np.concatenate([a, B.ravel(), a_twin])

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return np.concatenate([self.net.residual(theta[:self.k]), self.Phi0 @ theta[self.k:] - self.net.y])

    def rhs(self, theta: np.ndarray) -> np.ndarray:
        r = self.Phi0 @ theta[self.k:] - self.net.y
        return np.concatenate([self.net.rhs(theta[:self.k]), -(self.Phi0.T @ r) / self.net.n])

    def jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.concatenate([self.net.jvp(theta[:self.k], v[:self.k]), self.Phi0 @ v[self.k:]])

    def signs(self, theta: np.ndarray) -> np.ndarray:
        """The network's signs (the twin's never change)."""
        return self.net.signs(theta[:self.k])

