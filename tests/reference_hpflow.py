"""A high-precision reference for the ReLU gradient flow, independent of ntkcheck.

The flow is W′ = −(a/√m) (S ∘ r) X with r = u(W) − y and u_i = (1/√m) Σ_k a_k σ(w_k·x_i), S_ki =
1{w_k·x_i > 0}. Within one pattern it is linear, and this module solves it in 50-digit decimal
arithmetic by its Taylor series of order 40, on steps h ≤ 1/Σ‖x_i‖² (there the series' terms
fall faster than 1/j!, so the truncation is below 1e-45). Across kinks it goes event by event:
in a step, each entry's signed distance to its kink is a polynomial in s, and a certified
search (lower bounds and monotonicity on sub-intervals, then bisection) finds the first time
at which one reaches its kink. At a kink of neuron k's entry j it follows the one Filippov
continuation there is when it is unique:

* a *crossing*: the flow on both sides carries the entry through;
* a *death*: the entry was the neuron's last active one, whose velocity is then 0. It stays
  dead as the only solution while a_k r_j > 0 (any weight s ∈ (0, 1] of the entry would push z
  further down); a_k r_j is watched like an entry, and where it reaches 0 the neuron could
  revive: Unsupported;
* *sliding*: both sides push the entry towards its kink. Then w_k is projected onto the plane
  x_j·w = 0 and its velocity is −(a_k/√m) P_j b0 (b0 = Σ_{i≠j} S_ki r_i x_i, P_j the projection
  off x_j): the Filippov velocity with the entry's weight s = −x_j·b0/(r_j‖x_j‖²) ∈ (0, 1). The
  weights σs r_j and σ(1 − s) r_j (σ = sign r_j) are watched; where one reaches 0 the entry
  leaves its kink to z < 0 or z > 0, tangentially, and must then move into that side.

Anything else — a kink reached by a neuron that already slides, two kinks at the same instant,
a graze, a repelling kink — raises Unsupported, and the caller skips that case.

What it is for: its error (about 1e-40) is far below the rounding of a float64 flow (1e-16), so
the difference between ntkcheck's exact flow and this one *is* that flow's true error, which its
carried error budget has to bound. (The RK4 references in reference_ntk are first order across
kinks: their own error, 1e-6 or so, hides a budget of 1e-13.)
"""
from __future__ import annotations

from decimal import Decimal, localcontext

DIGITS = 50
ORDER = 40
#: an entry's event is σ z = −η: just past its kink on the far side, so that after a crossing it
#: starts at +η on its new side and is not found again at once (η moves W by ~η/|z′|)
ETA = Decimal("1e-30")
#: a speed below this at a kink is a graze; two events closer in time are simultaneous; a
#: sub-interval this short still undecided is unresolved
TINY = Decimal("1e-20")


class Unsupported(Exception):
    """The flow meets a kink whose continuation this reference does not follow."""


def _dot(u, v):
    return sum(p * q for p, q in zip(u, v))


class _Net:
    """The inputs (Decimal), a_k/√m, the pattern S (sliding entries count as off: σ(0) = 0) and
    the sliding entry of each sliding neuron."""

    def __init__(self, X, y, a, m):
        self.X = [[Decimal(float(v)) for v in row] for row in X]
        self.y = [Decimal(float(v)) for v in y]
        sm = Decimal(m).sqrt()
        self.ad = [Decimal(float(v)) / sm for v in a]
        self.m, self.n, self.d = m, len(self.X), len(self.X[0])
        self.S = None
        self.slide: dict[int, int] = {}

    def outputs(self, V, with_y=True):
        """r = u(V) − y in the pattern (u_i = Σ_k (a_k/√m) S_ki v_k·x_i), or u(V) alone."""
        X, S = self.X, self.S
        rho = [sum((self.ad[k] * _dot(V[k], X[i]) for k in range(self.m) if S[k][i]), Decimal(0))
               for i in range(self.n)]
        return [rho[i] - self.y[i] for i in range(self.n)] if with_y else rho

    def b0(self, k, rho):
        """Σ_i S_ki ρ_i x_i (neuron k's active entries; a sliding one is off)."""
        row = [Decimal(0)] * self.d
        for i in range(self.n):
            if self.S[k][i]:
                row = [row[l] + rho[i] * self.X[i][l] for l in range(self.d)]
        return row

    def velocity(self, V, with_y=True):
        """W′ = −(a_k/√m) b0_k for each row, projected off x_j for a neuron sliding on entry j."""
        rho = self.outputs(V, with_y)
        out = []
        for k in range(self.m):
            row = [-self.ad[k] * v for v in self.b0(k, rho)]
            j = self.slide.get(k)
            if j is not None:
                xj = self.X[j]
                c = _dot(row, xj) / _dot(xj, xj)
                row = [row[l] - c * xj[l] for l in range(self.d)]
            out.append(row)
        return out

    def taylor(self, W):
        """W's derivatives D_0 … D_ORDER (D_{j+1} = the linear part applied to D_j, j ≥ 1)."""
        D = [W, self.velocity(W)]
        for _ in range(ORDER - 1):
            D.append(self.velocity(D[-1], with_y=False))
        return D

    def residuals(self, D):
        """The residual's derivatives r_0 … r_ORDER from W's (r_0 = u(W) − y, r_j = u(D_j))."""
        return [self.outputs(D[0])] + [self.outputs(D[j], with_y=False) for j in range(1, len(D))]

    def weights(self, k, R, sg):
        """Sliding entry j of neuron k: the Taylor coefficients of σc and σ(r_j − c), c = s r_j =
        −x_j·b0/‖x_j‖² (σ = ``sg``): both ≥ 0 while s ∈ [0, 1]."""
        j = self.slide[k]
        xj = self.X[j]
        g = _dot(xj, xj)
        c = [-_dot(xj, self.b0(k, rho)) / g for rho in R]
        return [sg * v for v in c], [sg * (rho[j] - v) for rho, v in zip(R, c)]


def _fact(N):
    f = [Decimal(1)]
    for j in range(1, N + 1):
        f.append(f[-1] * j)
    return f


def _at(D, s, fact):
    """Σ_j D_j s^j / j! for a list of matrices (rows of Decimals)."""
    pw = [s ** j / fact[j] for j in range(len(D))]
    return [[sum(D[j][k][l] * pw[j] for j in range(len(D))) for l in range(len(D[0][0]))]
            for k in range(len(D[0]))]


def _poly(c, s, fact):
    return sum(c[j] * s ** j / fact[j] for j in range(len(c)))


def _shift(c, s, fact):
    """The derivatives at s of the polynomial whose derivatives at 0 are c."""
    N = len(c) - 1
    return [sum(c[l] * s ** (l - j) / fact[l - j] for l in range(j, N + 1)) for j in range(N + 1)]


def _first_root(c, h, fact):
    """The smallest s in (0, h] with g(s) = 0, g(s) = Σ c_j s^j/j! and g(0) = c_0 > 0; None if
    g > 0 on all of it. Sub-intervals [lo, lo + r] are examined left to right (g(lo) > 0):
    excluded when the lower bound g(lo) + min(0, g′(lo)) r + min(0, g″(lo)/2 − Σ_{j≥3} |d_j|
    r^(j−2)/j!) r² is positive; decided when g′ keeps its sign on them (then g has at most one
    root there, found by bisection); else halved."""
    todo = [(Decimal(0), h)]
    while todo:
        lo, hi = todo.pop()
        r = hi - lo
        d = _shift(c, lo, fact) if lo else c
        rest = sum(abs(d[j]) * r ** (j - 2) / fact[j] for j in range(3, len(d)))
        if d[0] + min(0, d[1]) * r + min(0, d[2] / 2 - rest) * r * r > 0:
            continue
        var = sum(abs(d[j]) * r ** (j - 1) / fact[j - 1] for j in range(2, len(d)))  # |g′ − g′(lo)|
        if abs(d[1]) > var:
            if d[1] > 0 or _poly(d, r, fact) > 0:
                continue  # increasing from g(lo) > 0, or decreasing and still positive at hi
            a, b = Decimal(0), r  # exactly one root, in (0, r] from lo
            while b - a > Decimal("1e-45"):
                mid = (a + b) / 2
                a, b = (mid, b) if _poly(d, mid, fact) > 0 else (a, mid)
            return lo + b
        if r < TINY:
            raise Unsupported("an entry's distance to its kink is not resolved (a graze)")
        mid = lo + r / 2
        todo.extend([(mid, hi), (lo, mid)])  # (the left half first)
    return None


def hp_flow(W0, X, y, a, times):
    """(W, r) at each of the increasing ``times`` > 0, as nested lists of Decimals, and the counts
    of crossings, deaths, arrivals on a kink (to slide there) and releases from one. Raises
    Unsupported (see the module docstring)."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        m = len(W0)
        net = _Net(X, y, a, m)
        Xd, n = net.X, net.n
        W = [[Decimal(float(v)) for v in row] for row in W0]
        if any(_dot(W[k], Xd[i]) == 0 for k in range(m) for i in range(n)):
            raise Unsupported("an entry starts on its kink")
        net.S = S = [[_dot(W[k], Xd[i]) > 0 for i in range(n)] for k in range(m)]
        hmax = 1 / sum(_dot(x, x) for x in Xd)
        fact = _fact(ORDER)
        t, out = Decimal(0), []
        counts = {"crossings": 0, "deaths": 0, "arrivals": 0, "releases": 0}
        dead: list[tuple[int, int]] = []  # (k, j): neuron k died at entry j; dead while a_k r_j > 0
        side: dict[int, int] = {}  # a sliding neuron's σ = sign r_j when it started to slide
        for target in times:
            T = Decimal(float(target))
            while t < T:
                h = min(hmax, T - t)
                D = net.taylor(W)
                R = net.residuals(D) if dead or net.slide else None  # (for the watched weights)
                hits = []
                for k in range(m):
                    for i in range(n):
                        if net.slide.get(k) == i:
                            continue
                        sg = 1 if S[k][i] else -1
                        c = [sg * _dot(D[j][k], Xd[i]) for j in range(ORDER + 1)]
                        c[0] += ETA
                        s = _first_root(c, h, fact)
                        if s is not None:
                            hits.append((s, "entry", k, i))
                for k, i in dead:
                    sa = 1 if net.ad[k] > 0 else -1
                    c = [sa * rho[i] for rho in R]
                    if c[0] <= TINY or _first_root(c, h, fact) is not None:
                        raise Unsupported("a dead neuron could revive (a_k r_j = 0)")
                for k in net.slide:
                    for leave, c in zip((0, 1), net.weights(k, R, side[k])):
                        if c[0] <= TINY:
                            raise Unsupported("a sliding weight at 0 or 1")
                        s = _first_root(c, h, fact)
                        if s is not None:
                            hits.append((s, "leave", k, leave))
                if not hits:  # (t = T itself at the last step: t + h may round below T)
                    W, t = _at(D, h, fact), (T if h == T - t else t + h)
                    continue
                hits.sort()
                if len(hits) > 1 and hits[1][0] - hits[0][0] < TINY:
                    raise Unsupported("two events at the same instant")
                s, what, k, i = hits[0]
                W, t = _at(D, s, fact), t + s
                if k in net.slide and what == "entry":
                    raise Unsupported("a kink reached by a sliding neuron")
                if what == "leave":  # the weight s reached 0 (i = 0: off, z < 0) or 1 (on, z > 0)
                    j = net.slide.pop(k)
                    S[k][j] = i == 1
                    counts["releases"] += 1
                    # tangential release: z′ = 0 here, so z″ must carry it into its side
                    D2 = net.taylor(W)
                    if not (1 if i == 1 else -1) * _dot(D2[2][k], Xd[j]) > TINY:
                        raise Unsupported("a released entry does not move into its side (a graze)")
                    continue
                sg = 1 if S[k][i] else -1  # (the side it leaves)
                before = sg * _dot(net.velocity(W)[k], Xd[i])
                S[k][i] = not S[k][i]
                after = sg * _dot(net.velocity(W)[k], Xd[i])
                if not before < -TINY:
                    raise Unsupported("a kink reached without speed (a graze)")
                if after < -TINY:
                    counts["crossings"] += 1
                elif after == 0 and not any(S[k]):  # (before = −(a_k/√m) r_i ‖x_i‖² < 0: a_k r_i > 0)
                    dead.append((k, i))
                    counts["deaths"] += 1
                elif after > TINY:  # both sides push it onto its kink: it slides there
                    S[k][i] = False  # (σ(0) = 0: a sliding entry adds nothing to u)
                    net.slide[k] = i
                    counts["arrivals"] += 1
                    xi = Xd[i]
                    c = _dot(W[k], xi) / _dot(xi, xi)
                    W[k] = [W[k][l] - c * xi[l] for l in range(net.d)]  # onto x_i·w = 0 (moves η/‖x_i‖)
                    rj = net.outputs(W)[i]
                    if abs(rj) <= TINY:
                        raise Unsupported("a slide with r_j = 0")
                    side[k] = 1 if rj > 0 else -1
                else:
                    raise Unsupported("a kink with no unique continuation")
            u = [sum(net.ad[k] * max(_dot(W[k], Xd[i]), Decimal(0)) for k in range(m)) for i in range(n)]
            out.append(([row[:] for row in W], [u[i] - net.y[i] for i in range(n)]))
        return out, counts
