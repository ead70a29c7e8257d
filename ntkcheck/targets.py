"""Target functions f*(x) = E_{b~π0}[a*(b) σ(b·x)] with rigorous error bounds.

a* is a sum of zonal terms a*(b) = Σ_j w_j g_j(b·v_j) (linear, cos(ω t), a Gegenbauer
polynomial, sign), π0 and the data measure ρ are uniform on S^{d−1} (d ≥ 2), σ = ReLU.
Everything is computed in the basis of zonal spherical harmonics. With P_ℓ the
Gegenbauer polynomials of index (d−2)/2 normalised to P_ℓ(1) = 1 (Chebyshev T_ℓ at
d = 2), N_ℓ = 1/E[P_ℓ(t)²] the dimension of the degree-ℓ harmonics, t ~ p_d (one
coordinate of a uniform point of S^{d−1}) and ĥ_ℓ = E[h(t) P_ℓ(t)], the Funk–Hecke
formula E_b[g(b·v) h(b·x)] = Σ_ℓ N_ℓ ĝ_ℓ ĥ_ℓ P_ℓ(v·x) gives

* f*(x) = Σ_j w_j Σ_ℓ N_ℓ ĝ_jℓ σ̂_ℓ P_ℓ(x·v_j),
* r(b) = E_x[f*(x) σ(b·x)] = Σ_j w_j Σ_ℓ N_ℓ ĝ_jℓ σ̂_ℓ² P_ℓ(b·v_j),
* ‖f*‖² = Σ_{j,l} w_j w_l Σ_ℓ N_ℓ ĝ_jℓ ĝ_lℓ σ̂_ℓ² P_ℓ(v_j·v_l).

The coefficients ĝ_ℓ, σ̂_ℓ (ℓ ≤ L) are 1-D integrals of a polynomial times a function
that is analytic on each half of [−1, 1] (sign and σ jump or kink only at 0), against
(1 − t²)^{(d−3)/2}: Gauss–Jacobi quadrature on each half converges exponentially, and
two rules of different sizes bound its error. The sums stop at ℓ = L, and what is left
is bounded, not estimated, by Parseval: with τ_g = E[g²] − Σ_{ℓ≤L} N_ℓ ĝ_ℓ² and
τ_σ = E[σ²] − Σ_{ℓ≤L} N_ℓ σ̂_ℓ² (E[σ(t)²] = 1/(2d)), and since N_ℓ does not decrease,
σ̂_ℓ² ≤ τ_σ/N_{L+1} for every ℓ > L; Cauchy–Schwarz then gives

* |f* tail(x)| ≤ Σ_j |w_j| √(τ_gj τ_σ),
* |r tail(b)| ≤ Σ_j |w_j| √τ_gj · τ_σ/√N_{L+1},
* ‖f*‖² tail ≤ (τ_σ/N_{L+1}) (Σ_j |w_j| √τ_gj)²  (|P_ℓ| ≤ 1, Minkowski).

A sign term's coefficients decay slowly (τ_g ~ 1/L), but r and ‖f*‖² carry σ̂² ~ ℓ^{−(d+2)}
twice over: at the default L their bounds are below 10⁻¹², which is what lets a
certified lower bound on the risk resolve values of 10⁻⁹ (Theorem 4.1 at m = 4096).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special

from .errors import UserError

FAMILIES = ("linear", "cos", "gegenbauer", "sign")
DEFAULT_DEGREE = 256  # L: harmonics kept in the sums (the tails are bounded, see above)
_EPS = np.finfo(float).eps


def coordinate_density_constant(k: int) -> float:
    """C_k with p_k(t) = C_k (1 − t²)^{(k−3)/2} on [−1, 1] (k ≥ 2)."""
    return math.exp(special.gammaln(k / 2) - 0.5 * math.log(math.pi) - special.gammaln((k - 1) / 2))


def half_rule(beta: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes t ∈ [0, 1] and weights with Σ w h(t) ≈ ∫_0^1 h(t) (1 − t²)^β dt (exact for
    polynomials h of degree < 2n when β is an integer; (1 + t)^β is analytic on [0, 1])."""
    u, om = special.roots_jacobi(n, beta, 0.0)  # weight (1 − u)^β on [−1, 1]
    t = (1 + u) / 2
    return t, om * 2.0 ** (-beta - 1) * (1 + t) ** beta


def sphere_rule(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[h(t)], t ~ p_k, split at 0: 2n nodes."""
    beta = (k - 3) / 2
    t, w = half_rule(beta, n)
    c = coordinate_density_constant(k)
    return np.concatenate([-t[::-1], t]), c * np.concatenate([w[::-1], w])


def harmonic_dimension(d: int, L: int) -> np.ndarray:
    """N_ℓ for ℓ = 0 … L: the dimension of the degree-ℓ spherical harmonics on S^{d−1}."""
    ell = np.arange(L + 1, dtype=float)
    out = np.ones(L + 1)
    if L >= 1:
        e = ell[1:]
        out[1:] = (2 * e + d - 2) / (e + d - 2) * np.exp(
            special.gammaln(e + d - 1) - special.gammaln(e + 1) - special.gammaln(d - 1))
    return out


def gegenbauer_step(ell: int, d: int) -> tuple[float, float]:
    """(α, β) with P_{ℓ+1}(t) = α t P_ℓ(t) − β P_{ℓ−1}(t) for the normalised P_ℓ (ℓ ≥ 1)."""
    return (2 * ell + d - 2) / (ell + d - 2), ell / (ell + d - 2)


def gegenbauer(degree: int, d: int, t: np.ndarray) -> np.ndarray:
    """P_degree(t), normalised to 1 at t = 1 (Chebyshev T at d = 2)."""
    t = np.asarray(t, float)
    p0, p1 = np.ones_like(t), t.copy()
    if degree == 0:
        return p0
    for ell in range(1, degree):
        a, b = gegenbauer_step(ell, d)
        p0, p1 = p1, a * t * p1 - b * p0
    return p1


def coefficients(values: np.ndarray, t: np.ndarray, w: np.ndarray, d: int, L: int) -> tuple[np.ndarray, np.ndarray]:
    """ĥ_ℓ = Σ_i w_i h(t_i) P_ℓ(t_i) for ℓ = 0 … L (rows of ``values`` are functions h), and a
    bound on the rounding of each (the recurrence and the sum: 8(ℓ + n)·u·Σ|w h|)."""
    values = np.atleast_2d(values)
    wv = values * w
    out = np.empty((values.shape[0], L + 1))
    p0, p1 = np.ones_like(t), t.copy()
    out[:, 0] = wv.sum(axis=1)
    if L >= 1:
        out[:, 1] = wv @ p1
    for ell in range(1, L):
        a, b = gegenbauer_step(ell, d)
        p0, p1 = p1, a * t * p1 - b * p0
        out[:, ell + 1] = wv @ p1
    scale = np.abs(wv).sum(axis=1)[:, None]
    rounding = 8 * (np.arange(L + 1) + t.size) * _EPS * scale
    return out, rounding


def series(c: np.ndarray, d: int, t: np.ndarray) -> np.ndarray:
    """Σ_ℓ c_ℓ P_ℓ(t), elementwise in t (forward recurrence; |P_ℓ| ≤ 1 on [−1, 1])."""
    t = np.clip(np.asarray(t, float), -1.0, 1.0)
    out = np.full_like(t, c[0])
    if c.size == 1:
        return out
    p0, p1 = np.ones_like(t), t.copy()
    out += c[1] * p1
    for ell in range(1, c.size - 1):
        a, b = gegenbauer_step(ell, d)
        p0, p1 = p1, a * t * p1 - b * p0
        if c[ell + 1] != 0.0:
            out += c[ell + 1] * p1
    return out


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
            return gegenbauer(self.degree, d, t)
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

    def __init__(self, terms: list[Term], d: int, nodes: int | None = None, degree: int = DEFAULT_DEGREE):
        if d < 2:
            raise UserError(f"random-feature targets need d ≥ 2 (got d = {d}).")
        self.terms = terms
        self.d = d
        self.degree = degree
        # the integrands are polynomials of degree ≤ L + 1 times analytic functions: L/2 + 32
        # nodes per half-interval already reach rounding; the error is the difference with a
        # rule of 24 more
        self.nodes = max(int(nodes or 0), degree // 2 + 32)

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
        from scipy import optimize  # here only: most runs never need it, and its import is slow

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

    # -- coefficients and sums -------------------------------------------------------------
    def _profiles(self, t: np.ndarray) -> np.ndarray:
        """Rows: σ(t), then g_j(t) for each term."""
        return np.vstack([np.maximum(t, 0.0)] + [tm.g(t, self.d) for tm in self.terms])

    @cached_property
    def _spectrum(self):
        """σ̂_ℓ, ĝ_jℓ (ℓ ≤ L) with their errors, the Parseval tails τ_σ, τ_gj and N_ℓ."""
        d, L = self.d, self.degree
        res = []
        for n in (self.nodes, self.nodes + 24):
            t, w = sphere_rule(d, n)
            vals = self._profiles(t)
            c, rnd = coefficients(vals, t, w, d, L)
            res.append((c, rnd, (vals * vals) @ w))
        (c, rnd, sq), (c2, rnd2, sq2) = res
        err = np.abs(c - c2) + rnd + rnd2
        ell = np.arange(L + 1)
        c[0, (ell >= 3) & (ell % 2 == 1)] = 0.0  # σ = t/2 + |t|/2: no odd harmonic beyond ℓ = 1
        err[0, (ell >= 3) & (ell % 2 == 1)] = 0.0
        N = harmonic_dimension(d, L)
        NL1 = float(harmonic_dimension(d, L + 1)[-1])
        sq[0] = 1.0 / (2 * d)  # E[σ(t)²] = E[t²]/2 exactly
        # τ = E[h²] − Σ N ĥ², computed with cancellation: widen by the rounding of the sum and
        # by what the coefficients' errors can change it
        parseval = (N * c * c).sum(axis=1)
        slack = 8 * (L + 2) * _EPS * np.maximum(sq, parseval) + 2 * (N * np.abs(c) * err).sum(axis=1) \
            + np.abs(sq - sq2)
        tails = np.maximum(sq - parseval, 0.0) + slack
        return c[0], err[0], c[1:], err[1:], tails[0], tails[1:], N, NL1

    def _weights(self) -> np.ndarray:
        return np.array([abs(tm.weight) for tm in self.terms])

    def tail_bounds(self) -> dict[str, float]:
        """The truncation bounds of f*(x), r(b) and ‖f*‖² (see the module docstring)."""
        s, _, _, _, ts, tg, _, NL1 = self._spectrum
        aw = self._weights()
        root = float(aw @ np.sqrt(tg))
        return {"f": root * math.sqrt(ts), "r": root * ts / math.sqrt(NL1), "norm2": ts / NL1 * root * root}

    def _term_series(self, power: int) -> list[tuple[np.ndarray, float]]:
        """Per term: the coefficients N_ℓ ĝ_ℓ σ̂_ℓ^power of its sum and their error Σ_ℓ N |δ(ĝ σ̂^p)|
        (|P_ℓ| ≤ 1), rounding of the evaluation included."""
        s, se, g, ge, _, _, N, _ = self._spectrum
        sp = s**power
        spe = se * power * np.abs(s) ** (power - 1) + (se**2 if power == 2 else 0.0)
        out = []
        for j in range(len(self.terms)):
            c = N * g[j] * sp
            err = float(N @ (ge[j] * np.abs(sp) + (np.abs(g[j]) + ge[j]) * spe))
            err += 8 * (self.degree + 2) * _EPS * float(np.abs(c).sum())
            out.append((c, err))
        return out

    @cached_property
    def _f_series(self):
        return self._term_series(1)

    @cached_property
    def _r_series(self):
        return self._term_series(2)

    def F(self, j: int, s: np.ndarray) -> np.ndarray:
        """F_j(s) = E_b[g_j(b·v) σ(b·x)] for x·v = s."""
        return series(self._f_series[j][0], self.d, s)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """f*(x) for unit rows x of X."""
        out = np.zeros(X.shape[0])
        for j, tm in enumerate(self.terms):
            out += tm.weight * self.F(j, X @ tm.direction)
        return out

    def _f_error(self) -> float:
        return self.tail_bounds()["f"] + sum(abs(tm.weight) * e for tm, (_, e) in zip(self.terms, self._f_series))

    def sup_abs_bound(self) -> float:
        """An upper bound on sup_x |f*(x)| ≤ Σ_j |w_j| sup|F_j| + the error: F_j(cos θ) is
        Lipschitz in θ with constant sup|g_j|·E|b₁| ≤ sup|g_j|/√d (|∂σ(b·x)/∂θ| ≤ |b·x′|), so
        on a grid of spacing h in θ sup|F_j| ≤ max over the grid + (h/2)·sup|g_j|/√d."""
        theta = np.linspace(0.0, math.pi, 4001)
        h = theta[1] - theta[0]
        s = np.cos(theta)
        total = self._f_error()
        for j, tm in enumerate(self.terms):
            total += abs(tm.weight) * (float(np.max(np.abs(self.F(j, s)))) + h / 2 * tm.sup_abs_g(self.d) / math.sqrt(self.d))
        return total

    def error_pointwise(self, X: np.ndarray) -> np.ndarray:
        """A bound on the error of f*(x) (the same for every x)."""
        return np.full(X.shape[0], self._f_error())

    def r(self, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """r_k = E_x[f*(x) σ(b_k·x)] and a bound on its error, for the rows of B."""
        out = np.zeros(B.shape[0])
        err = self.tail_bounds()["r"]
        for (c, e), tm in zip(self._r_series, self.terms):
            out += tm.weight * series(c, self.d, B @ tm.direction)
            err += abs(tm.weight) * e
        return out, np.full(B.shape[0], err + 4 * _EPS * float(np.abs(out).max(initial=0.0)))

    @cached_property
    def norm2(self) -> tuple[float, float]:
        """‖f*‖²_ρ for ρ uniform on the sphere, and a bound on its error."""
        s, se, g, ge, _, _, N, _ = self._spectrum
        J = len(self.terms)
        w = np.array([tm.weight for tm in self.terms])
        total, err = 0.0, self.tail_bounds()["norm2"]
        s2, s2e = s * s, 2 * np.abs(s) * se + se * se
        for j in range(J):
            for l in range(J):
                coef = N * g[j] * g[l] * s2
                if j == l:  # P_ℓ(1) = 1
                    val = float(coef.sum())
                else:
                    c = float(self.terms[j].direction @ self.terms[l].direction)
                    val = float(series(coef, self.d, np.array([c]))[0])
                total += w[j] * w[l] * val
                ce = N @ ((ge[j] * np.abs(g[l]) + np.abs(g[j]) * ge[l] + ge[j] * ge[l]) * s2
                          + np.abs(g[j] * g[l]) * s2e)
                err += abs(w[j] * w[l]) * (float(ce) + 8 * (self.degree + 2) * _EPS * float(np.abs(coef).sum()))
        return total, err


def build_target(spec, d: int) -> Target:
    """A :class:`Target` from the scenario's ``target`` section."""
    if d < 2:
        raise UserError(f"random-feature targets need d ≥ 2 (got d = {d}): S^0 has no zonal structure.")
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
    return Target(terms, d, spec.quadrature_nodes, spec.degree)
