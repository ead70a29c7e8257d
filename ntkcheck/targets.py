"""Target functions f*(x) = E_{b~π0}[a*(b) σ(b·x)] evaluated accurately.

a* is a sum of zonal terms a*(b) = Σ_j w_j g_j(b·v_j) (linear, cos(ω t), a Gegenbauer
polynomial, sign), π0 and the data measure ρ are uniform on S^{d−1}, σ = ReLU. Then

* f*(x) = Σ_j w_j F_j(x·v_j),  F(s) = ∫ g(t) p_d(t) Φ(s, t) dt,
* Φ(s, τ) = E_w[σ(sτ + √((1−s²)(1−τ²)) w)], w ~ p_{d−1}: a ramp against a Beta-type
  density, in closed form through the regularised incomplete beta function,
* r(b) = E_x[f*(x) σ(b·x)] = Σ_j w_j ∫ F_j(s) p_d(s) Φ(s, b·v_j) ds,
* ‖f*‖² = Σ_{j,l} w_j w_l E_x[F_j(x·v_j) F_l(x·v_l)] (a 1-D integral for j = l, a 2-D one
  otherwise),

where p_k(t) ∝ (1 − t²)^{(k−3)/2} is the law of one coordinate of a uniform point of
S^{k−1}. Every integral is split at 0 (sign(t) jumps there) and done by Gauss–Jacobi
quadrature on each half, so the density's endpoint behaviour is in the weights.

F_j(s) and R_j(τ) = ∫ F_j(s) p_d(s) Φ(s, τ) ds are smooth functions on [−1, 1] that do
not depend on the random features: each is computed once per run at Chebyshev points
and kept as a Chebyshev interpolant, so a trial with m features costs m polynomial
evaluations, not m quadratures. Error estimates: every interpolant is compared on a
dense grid with a direct quadrature using half the nodes (that difference bounds the
quadrature and the interpolation error together, up to the usual a-posteriori caveat).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.polynomial import chebyshev as cheb
from scipy import special

from .errors import UserError

FAMILIES = ("linear", "cos", "gegenbauer", "sign")


def coordinate_density_constant(k: int) -> float:
    """C_k with p_k(t) = C_k (1 − t²)^{(k−3)/2} on [−1, 1] (k ≥ 2)."""
    return math.exp(special.gammaln(k / 2) - 0.5 * math.log(math.pi) - special.gammaln((k - 1) / 2))


def half_rule(beta: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes t ∈ [0, 1] and weights with Σ w h(t) ≈ ∫_0^1 h(t) (1 − t²)^β dt (exact for
    polynomials h of degree < 2n when β = 0)."""
    u, om = special.roots_jacobi(n, beta, 0.0)  # weight (1 − u)^β on [−1, 1]
    t = (1 + u) / 2
    return t, om * 2.0 ** (-beta - 1) * (1 + t) ** beta


def sphere_rule(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[h(t)], t ~ p_k, split at 0: 2n nodes."""
    beta = (k - 3) / 2
    t, w = half_rule(beta, n)
    c = coordinate_density_constant(k)
    return np.concatenate([-t[::-1], t]), c * np.concatenate([w[::-1], w])


def phi(s: np.ndarray, tau: np.ndarray, d: int) -> np.ndarray:
    """Φ(s, τ) = E_w[σ(sτ + √((1−s²)(1−τ²)) w)] with w ~ p_{d−1} (d ≥ 3), elementwise."""
    s, tau = np.broadcast_arrays(np.asarray(s, float), np.asarray(tau, float))
    A = s * tau
    Bc = np.sqrt(np.clip((1 - s * s) * (1 - tau * tau), 0.0, None))
    alpha = (d - 2) / 2  # w = 2u − 1 with u ~ Beta(α, α)
    C = coordinate_density_constant(d - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(Bc > 0, np.clip(-A / np.where(Bc > 0, Bc, 1.0), -1.0, 1.0), 0.0)
    tail = special.betaincc(alpha, alpha, (1 + c) / 2)  # P(w > c)
    first = C * (1 - c * c) ** alpha / (2 * alpha)  # E[w 1{w > c}]
    out = A * tail + Bc * first
    return np.where(Bc > 0, out, np.maximum(A, 0.0))


# ------------------------------------------------------------------------------- zonal terms
@dataclass(frozen=True)
class Term:
    family: str
    weight: float
    direction: np.ndarray  # unit vector
    omega: float = 1.0  # cos(ω t)
    degree: int = 1  # Gegenbauer degree

    def g(self, t: np.ndarray, d: int) -> np.ndarray:
        t = np.asarray(t, float)
        if self.family == "linear":
            return t
        if self.family == "cos":
            return np.cos(self.omega * t)
        if self.family == "sign":
            return np.sign(t)
        if self.family == "gegenbauer":  # normalised to 1 at t = 1
            lam = (d - 2) / 2
            return special.eval_gegenbauer(self.degree, lam, t) / special.eval_gegenbauer(self.degree, lam, 1.0)
        raise ValueError(self.family)

    def sup_abs_g(self, d: int) -> float:
        """sup over t ∈ [−1, 1] of |g(t)| (exact for these families)."""
        if self.family in ("linear", "sign"):
            return 1.0
        if self.family == "cos":
            return 1.0 if self.omega >= math.pi else max(1.0, abs(math.cos(self.omega)))
        return 1.0  # normalised Gegenbauer polynomials are bounded by their value at 1


class Target:
    """f* for a sum of zonal terms in dimension d, with accurate evaluation."""

    def __init__(self, terms: list[Term], d: int, nodes: int = 48, interpolation_degree: int = 96):
        if d < 3:
            raise UserError(f"random-feature targets need d ≥ 3 (got d = {d}).")
        self.terms = terms
        self.d = d
        self.nodes = nodes
        self.interpolation_degree = interpolation_degree

    # -- a*, γ -----------------------------------------------------------------------------
    def a_star(self, B: np.ndarray) -> np.ndarray:
        """a*(b_k) for the rows of B."""
        out = np.zeros(B.shape[0])
        for tm in self.terms:
            out += tm.weight * tm.g(B @ tm.direction, self.d)
        return out

    @cached_property
    def gamma(self) -> float:
        """γ(f*) = max(1, sup_b |a*(b)|), the sup over the sphere computed, not assumed.

        a* depends on b only through t = Vb (V the term directions); t ranges over the
        ellipsoid {Vb : ‖b‖ = 1}. The sup is found by a dense sample of the sphere's
        image and a local refinement (exact for one term)."""
        if not self.terms:
            return 1.0
        if len(self.terms) == 1:
            return max(1.0, abs(self.terms[0].weight) * self.terms[0].sup_abs_g(self.d))
        if all(t.family == "sign" for t in self.terms):
            return max(1.0, self._sign_sup())
        V = np.stack([t.direction for t in self.terms])  # J × d
        Q, _ = np.linalg.qr(V.T)  # orthonormal basis of the span of the directions (d × r)
        r = Q.shape[1]
        on_sphere = r == self.d  # else the projection of b onto the span fills the unit ball

        def to_b(C: np.ndarray) -> np.ndarray:
            nrm = np.linalg.norm(C, axis=-1, keepdims=True)
            C = C / np.maximum(nrm, 1e-300) if on_sphere else C / np.maximum(nrm, 1.0)
            return C @ Q.T

        rng = np.random.default_rng(12345)
        C = rng.standard_normal((200_000, r))
        C /= np.linalg.norm(C, axis=1, keepdims=True)
        if not on_sphere:
            C *= rng.random((C.shape[0], 1)) ** (1 / r)
        vals = np.abs(self.a_star(to_b(C)))
        sup = float(vals.max())
        from scipy import optimize  # here only: importing it costs every run ~0.09 s

        for c0 in C[np.argsort(vals)[-10:]]:
            res = optimize.minimize(lambda c: -abs(float(self.a_star(to_b(c[None, :]))[0])), c0,
                                    method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12})
            sup = max(sup, -float(res.fun))
        return max(1.0, sup)

    def _sign_sup(self) -> float:
        """sup_b |Σ_j w_j sign(b·v_j)| exactly: a* is constant on each open cell of the arrangement
        of the hyperplanes v_j^⊥ (a value on a boundary, with some signs 0, averages those of the
        adjacent cells), so the sup is the largest |Σ_j w_j s_j| over the sign vectors s of
        non-empty cells; a cell {b : s_j v_j·b > 0 ∀j} is non-empty iff the linear program
        s_j v_j·b ≥ 1 ∀j is feasible (the cell is a cone). Thin cells count as much as wide
        ones, which sampling misses (directions 1e-6 apart gave γ = 1 instead of 21)."""
        from scipy import optimize  # here only, as in gamma

        V = np.stack([t.direction for t in self.terms])
        w = np.array([t.weight for t in self.terms])
        best = 0.0
        for signs in itertools.product((-1.0, 1.0), repeat=len(self.terms)):
            s = np.array(signs)
            value = abs(float(w @ s))
            if value <= best:
                continue
            lp = optimize.linprog(np.zeros(self.d), A_ub=-(s[:, None] * V), b_ub=-np.ones(len(s)),
                                  bounds=[(None, None)] * self.d, method="highs")
            if lp.status == 0:
                best = value
        return best

    # -- F_j, R_j as interpolants ---------------------------------------------------------------
    def _F_direct(self, tm: Term, s: np.ndarray, nodes: int) -> np.ndarray:
        t, w = sphere_rule(self.d, nodes)
        G = tm.g(t, self.d) * w  # (T,)
        return phi(np.asarray(s, float)[..., None], t, self.d) @ G

    def _R_direct(self, j: int, tau: np.ndarray, nodes: int, F: cheb.Chebyshev | None = None) -> np.ndarray:
        s, w = sphere_rule(self.d, nodes)
        Fs = (F(s) if F is not None else self._F_direct(self.terms[j], s, nodes)) * w
        return phi(s[None, :], np.asarray(tau, float)[:, None], self.d) @ Fs

    @cached_property
    def _interpolants(self) -> list[tuple[cheb.Chebyshev, cheb.Chebyshev, float, float]]:
        """Per term: (F interpolant, R interpolant, error of F, error of R)."""
        deg = self.interpolation_degree
        grid = np.cos(np.linspace(0, np.pi, 801))
        out = []
        for j, tm in enumerate(self.terms):
            F = cheb.Chebyshev.interpolate(lambda s, tm=tm: self._F_direct(tm, s, self.nodes), deg)
            F_err = float(np.max(np.abs(F(grid) - self._F_direct(tm, grid, self.nodes // 2))))
            R = cheb.Chebyshev.interpolate(lambda t, j=j, F=F: self._R_direct(j, t, self.nodes, F), deg)
            R_err = float(np.max(np.abs(R(grid) - self._R_direct(j, grid, self.nodes // 2))))
            out.append((F, R, F_err, R_err))
        return out

    def F(self, j: int, s: np.ndarray) -> np.ndarray:
        return self._interpolants[j][0](s)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """f*(x) for unit rows x of X."""
        out = np.zeros(X.shape[0])
        for j, tm in enumerate(self.terms):
            out += tm.weight * self.F(j, np.clip(X @ tm.direction, -1.0, 1.0))
        return out

    def sup_abs_bound(self) -> float:
        """An upper bound on sup_x |f*(x)|: Σ_j |w_j| (max |F_j| on a fine grid + F_j's error)."""
        grid = np.linspace(-1.0, 1.0, 4001)
        return sum(abs(tm.weight) * (float(np.max(np.abs(F(grid)))) + F_err)
                   for tm, (F, _, F_err, _) in zip(self.terms, self._interpolants))

    def error_pointwise(self, X: np.ndarray) -> np.ndarray:
        """Error estimate of f*(x) (the same for every x: the sup over the grid)."""
        return np.full(X.shape[0], sum(abs(tm.weight) * it[2] for tm, it in zip(self.terms, self._interpolants)))

    def r(self, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """r_k = E_x[f*(x) σ(b_k·x)] and its error estimate, for the rows of B."""
        out = np.zeros(B.shape[0])
        err = 0.0
        for (F, R, _, R_err), tm in zip(self._interpolants, self.terms):
            out += tm.weight * R(np.clip(B @ tm.direction, -1.0, 1.0))
            err += abs(tm.weight) * R_err
        return out, np.full(B.shape[0], err)

    def _norm2(self, nodes: int, direct: bool) -> float:
        s, w = sphere_rule(self.d, nodes)
        w_in, wi = sphere_rule(self.d - 1, nodes)

        def F(j, x):
            return self._F_direct(self.terms[j], x, nodes) if direct else self.F(j, x)

        total = 0.0
        for j, tj in enumerate(self.terms):
            Fj = F(j, s)
            for l, tl in enumerate(self.terms):
                if l == j:
                    total += tj.weight * tl.weight * float(w @ (Fj * Fj))
                    continue
                c = float(tj.direction @ tl.direction)
                # x·v_l = c (x·v_j) + √(1−c²) √(1−s²) w with w ~ p_{d−1}
                s2 = c * s[:, None] + math.sqrt(max(0.0, 1 - c * c)) * np.sqrt(1 - s * s)[:, None] * w_in[None, :]
                Fl = F(l, np.clip(s2, -1.0, 1.0))
                total += tj.weight * tl.weight * float(w @ (Fj * (Fl @ wi)))
        return total

    @cached_property
    def norm2(self) -> tuple[float, float]:
        """‖f*‖²_ρ for ρ uniform on the sphere, and its error estimate (against a direct
        quadrature with half the nodes)."""
        full = self._norm2(self.nodes, direct=False)
        return full, abs(full - self._norm2(self.nodes // 2, direct=True))


def build_target(spec, d: int) -> Target:
    """A :class:`Target` from the scenario's ``target`` section."""
    terms = []
    for i, t in enumerate(spec.terms):
        if isinstance(t.direction, int):
            if not 0 <= t.direction < d:
                raise UserError(f"scenario key 'target.terms[{i}].direction' is axis {t.direction}, "
                                f"but d = {d} (axes 0 … {d - 1}).")
            v = np.zeros(d)
            v[t.direction] = 1.0
        else:
            v = np.asarray(t.direction, float)
            if v.shape != (d,):
                raise UserError(f"scenario key 'target.terms[{i}].direction' has {v.size} entries; d = {d}.")
            nv = np.linalg.norm(v)
            if not np.isfinite(nv) or nv == 0:
                raise UserError(f"scenario key 'target.terms[{i}].direction' must be a nonzero finite vector.")
            v = v / nv
        terms.append(Term(t.family, float(t.weight), v, float(t.omega), int(t.degree)))
    # linear terms add up to one: Σ_j w_j (b·v_j) = b·u with u = Σ_j w_j v_j, and f* is linear in
    # a*, so its linear part is ‖u‖ F_lin(x·u/‖u‖): bounds on f* and γ see the sum, not the
    # terms (±8 linear terms that cancel give f* ≡ 0, not a bound of 8)
    linear = [tm for tm in terms if tm.family == "linear"]
    if len(linear) > 1:
        u = sum(tm.weight * tm.direction for tm in linear)
        terms = [tm for tm in terms if tm.family != "linear"]
        nu = float(np.linalg.norm(u))
        if nu > 1e-14 * sum(abs(tm.weight) for tm in linear):
            terms.append(Term("linear", nu, u / nu))
    return Target(terms, d, spec.quadrature_nodes)
