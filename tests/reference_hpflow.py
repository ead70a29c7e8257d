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
* *a surface*: a sliding neuron reaches another kink, or slides on several; a neuron dies
  with entries on several kinks.

Every such instant is resolved the same way (:func:`_resolve`): each entry of the surface U
(the kinks the neuron is on) may leave to z > 0, to z < 0 or slide (weights c_B = −G_BB⁻¹ x_B·b
keep x_B·w′ = 0 for the sliding set B, b the sum over the entries leaving to z > 0 and the
active ones off U); the choice whose every entry is strictly consistent (x_j·w′ beyond TINY on
its side, c_j/r_j ∈ (0, 1)) is the continuation when there is exactly one, and with none it is
a death when no entry off U is active and every a_k r_j > 0. While it slides, the neuron's
velocity is −(a_k/√m) P_B b, and each sliding entry's two weights are watched as above.

Events within TINY (1e-20) of one another are one instant, resolved neuron by neuron (two kinks
of one neuron at once are a surface). Anything else — a graze, a repelling kink, no or several
consistent choices, a dead neuron that could revive — raises Unsupported, and the caller skips
that case.

What it is for: its error (about 1e-40) is far below the rounding of a float64 flow (1e-16), so
the difference between ntkcheck's exact flow and this one *is* that flow's true error, which its
carried error budget has to bound. (The RK4 references in reference_ntk are first order across
kinks: their own error, 1e-6 or so, hides a budget of 1e-13.)
"""
from __future__ import annotations

from decimal import Decimal, localcontext
from itertools import product

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


def _solve(A, b):
    """x with A x = b (Gaussian elimination with partial pivoting), or None if a pivot is below
    1e-30: the kinks' normals are (nearly) dependent."""
    n = len(b)
    M = [list(row) + [v] for row, v in zip(A, b)]
    for c in range(n):
        p = max(range(c, n), key=lambda i: abs(M[i][c]))
        if abs(M[p][c]) < Decimal("1e-30"):
            return None
        M[c], M[p] = M[p], M[c]
        for i in range(c + 1, n):
            f = M[i][c] / M[c][c]
            M[i] = [u - f * v for u, v in zip(M[i], M[c])]
    x = [Decimal(0)] * n
    for c in reversed(range(n)):
        x[c] = (M[c][n] - sum(M[c][l] * x[l] for l in range(c + 1, n))) / M[c][c]
    return x


class _Net:
    """The inputs (Decimal), a_k/√m, the pattern S (sliding entries count as off: σ(0) = 0) and
    the sliding entries B of each sliding neuron (a sorted tuple)."""

    def __init__(self, X, y, a, m):
        self.X = [[Decimal(float(v)) for v in row] for row in X]
        self.y = [Decimal(float(v)) for v in y]
        sm = Decimal(m).sqrt()
        self.ad = [Decimal(float(v)) / sm for v in a]
        self.m, self.n, self.d = m, len(self.X), len(self.X[0])
        self.S = None
        self.slide: dict[int, tuple[int, ...]] = {}

    def gram(self, B):
        return [[_dot(self.X[i], self.X[j]) for j in B] for i in B]

    def project(self, row, B):
        """row − X_Bᵀ G_BB⁻¹ X_B row: the part of ``row`` along the planes x_j·w = 0, j ∈ B."""
        if not B:
            return row
        c = _solve(self.gram(B), [_dot(self.X[j], row) for j in B])
        if c is None:
            raise Unsupported("a sliding neuron's kinks have dependent normals")
        return [row[l] - sum(cj * self.X[j][l] for cj, j in zip(c, B)) for l in range(self.d)]

    def outputs(self, V, with_y=True):
        """r = u(V) − y in the pattern (u_i = Σ_k (a_k/√m) S_ki v_k·x_i), or u(V) alone."""
        X, S = self.X, self.S
        rho = [sum((self.ad[k] * _dot(V[k], X[i]) for k in range(self.m) if S[k][i]), Decimal(0))
               for i in range(self.n)]
        return [rho[i] - self.y[i] for i in range(self.n)] if with_y else rho

    def b0(self, k, rho, skip=()):
        """Σ_i S_ki ρ_i x_i over neuron k's active entries not in ``skip`` (a sliding one is off)."""
        row = [Decimal(0)] * self.d
        for i in range(self.n):
            if self.S[k][i] and i not in skip:
                row = [row[l] + rho[i] * self.X[i][l] for l in range(self.d)]
        return row

    def row_velocity(self, k, rho):
        """w_k′ = −(a_k/√m) b0_k at residual ρ, projected off x_j, j ∈ B, if neuron k slides on B."""
        return self.project([-self.ad[k] * v for v in self.b0(k, rho)], self.slide.get(k, ()))

    def velocity(self, V, with_y=True):
        """W′, row by row (:meth:`row_velocity`)."""
        rho = self.outputs(V, with_y)
        return [self.row_velocity(k, rho) for k in range(self.m)]

    def taylor(self, W, order=ORDER):
        """W's derivatives D_0 … D_order (D_{j+1} = the linear part applied to D_j, j ≥ 1)."""
        D = [W, self.velocity(W)]
        for _ in range(order - 1):
            D.append(self.velocity(D[-1], with_y=False))
        return D

    def residuals(self, D):
        """The residual's derivatives r_0 … r_ORDER from W's (r_0 = u(W) − y, r_j = u(D_j))."""
        return [self.outputs(D[0])] + [self.outputs(D[j], with_y=False) for j in range(1, len(D))]

    def weights(self, k, R, sides):
        """Neuron k's sliding entries j ∈ B: (j, the Taylor coefficients of σ_j c_j and of
        σ_j (r_j − c_j)), c = s ∘ r_B = −G_BB⁻¹ X_B b0 (σ_j = ``sides[j]``): both ≥ 0 while
        s_j ∈ [0, 1]."""
        B = self.slide[k]
        G = self.gram(B)
        cs = [_solve(G, [-_dot(self.X[j], self.b0(k, rho)) for j in B]) for rho in R]
        return [(j, [sides[j] * c[p] for c in cs], [sides[j] * (rho[j] - c[p]) for rho, c in zip(R, cs)])
                for p, j in enumerate(B)]

    def choose(self, rho, k, U, fixed, arriving):
        """Neuron k on the kinks U: the one strictly consistent choice (P, B) — the entries leaving
        to z > 0 and those sliding — with the entries ``fixed`` (j: 1 to z > 0, 0 to z < 0)
        leaving to their side; each entry ``arriving`` must cross or slide, not return.
        None if there is none; raises Unsupported if there are several. ``rho``: the residual."""
        X = self.X
        base = self.b0(k, rho, U)
        found = []
        for choice in product(*[(fixed[j],) if j in fixed else (0, 1, 2) for j in U]):
            P = [j for j, c in zip(U, choice) if c == 1]
            B = tuple(j for j, c in zip(U, choice) if c == 2)
            b = base
            for j in P:
                b = [b[l] + rho[j] * X[j][l] for l in range(self.d)]
            c = _solve(self.gram(B), [-_dot(X[j], b) for j in B]) if B else []
            if c is None:
                continue
            v = [b[l] + sum(cj * X[j][l] for cj, j in zip(c, B)) for l in range(self.d)]
            wd = [-self.ad[k] * x for x in v]
            ok = all(abs(rho[j]) > TINY and TINY < cj / rho[j] < 1 - TINY for cj, j in zip(c, B))
            for j, ch in zip(U, choice):
                if ch != 2 and j not in fixed:
                    ok = ok and (1 if ch == 1 else -1) * _dot(X[j], wd) > TINY
            if ok:
                found.append((P, B, choice))
        if not found:
            return None
        if len(found) > 1:
            raise Unsupported(f"{len(found)} consistent choices on a surface of {len(U)} kinks")
        P, B, choice = found[0]
        if any(choice[U.index(i)] == (1 if self.S[k][i] else 0) for i in arriving):
            raise Unsupported("an arriving entry is sent back to its side (a repelling kink)")
        return P, B


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


def _resolve(net, W, k, entries, fixed, counts, dead, side):
    """Neuron k at an instant where its ``entries`` reach their kinks and its sliding entries
    ``fixed`` (j: 0 or 1) have a weight at 0 or 1: the continuation on its surface U (its sliding
    entries and ``entries``; the module docstring), with W[k], the pattern, the counts, the dead
    neurons' watches and the sliding sides updated. One entry of a neuron that does not slide is
    the commonest surface: it crosses (the choice to the far side), slides, or the neuron dies."""
    S, Xd, n = net.S, net.X, net.n
    rho = net.outputs(W)
    vel = net.row_velocity(k, rho)
    for i in entries:  # (σ: the side the entry leaves)
        if not (1 if S[k][i] else -1) * _dot(vel, Xd[i]) < -TINY:
            raise Unsupported("a kink reached without speed (a graze)")
    B = net.slide.get(k, ())
    U = sorted(set(B) | set(entries))
    got = net.choose(rho, k, U, fixed, entries)
    if got is None:
        # no consistent choice: a death if no entry off U is active and each a_k r_j, j ∈ U,
        # is > 0 — then any velocity −a_k Σ_{j∈U} s_j r_j x_j =: −a_k b with an entry leaving
        # to z > 0 (s_j = 1, x_j·w′ > 0) would give a_k b·w′ > 0, yet a_k b·w′ = −a_k²‖b‖² ≤ 0:
        # w_k′ = 0 is the only continuation
        if (fixed or any(S[k][l] for l in range(n) if l not in U) or len(U) >= net.d
                or not all(net.ad[k] * rho[j] > TINY for j in U)):
            raise Unsupported(f"no consistent choice on a surface of {len(U)} kinks")
        counts["deaths"] += 1
        counts["releases"] += len(B)
        for j in U:
            S[k][j] = False
        net.slide.pop(k, None)
        dead.extend((k, j) for j in U)
        return
    P, Bn = got
    for j in U:
        if j in B:
            counts["releases"] += j not in Bn
        else:
            counts["crossings" if j not in Bn else "arrivals"] += 1
        S[k][j] = j in P  # (σ(0) = 0: a sliding entry adds nothing to u)
    if Bn:
        net.slide[k] = Bn
        W[k] = net.project(W[k], Bn)  # onto its kinks exactly (moves ~η)
        rho = net.outputs(W)
        if any(abs(rho[j]) <= TINY for j in Bn):
            raise Unsupported("a slide with r_j = 0")
        side[k] = {j: 1 if rho[j] > 0 else -1 for j in Bn}
    else:
        net.slide.pop(k, None)
    if fixed:  # a tangential release: z′ = 0 here, so z″ must carry it into its side
        D2 = net.taylor(W, 2)
        for j, leave in fixed.items():
            if not (1 if leave == 1 else -1) * _dot(D2[2][k], Xd[j]) > TINY:
                raise Unsupported("a released entry does not move into its side (a graze)")


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
        side: dict[int, dict[int, int]] = {}  # a sliding neuron's σ_j = sign r_j when j started to slide
        for target in times:
            T = Decimal(float(target))
            while t < T:
                h = min(hmax, T - t)
                D = net.taylor(W)
                R = net.residuals(D) if dead or net.slide else None  # (for the watched weights)
                hits = []
                for k in range(m):
                    for i in range(n):
                        if i in net.slide.get(k, ()):
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
                    for j, f1, f2 in net.weights(k, R, side[k]):
                        for leave, c in ((0, f1), (1, f2)):
                            if c[0] <= TINY:
                                raise Unsupported("a sliding weight at 0 or 1")
                            s = _first_root(c, h, fact)
                            if s is not None:
                                hits.append((s, "leave", k, (j, leave)))
                if not hits:  # (t = T itself at the last step: t + h may round below T)
                    W, t = _at(D, h, fact), (T if h == T - t else t + h)
                    continue
                hits.sort()
                # events within TINY of the first are one instant (two neurons with the same pattern
                # sliding on the same kink are released together, exactly): taken at the last of
                # their times, where each hit entry is just past its kink (an error of order
                # TINY·|z′| ≈ 1e-20, far below a float64 flow's budget), one neuron after another
                now = [hit for hit in hits if hit[0] - hits[0][0] < TINY]
                s = now[-1][0]
                W, t = _at(D, s, fact), t + s
                at: dict[int, tuple[list, dict]] = {}
                for _, what, k, i in now:
                    entries, fixed = at.setdefault(k, ([], {}))
                    if what == "entry":
                        entries.append(i)
                    else:
                        fixed.update([i])
                for k in sorted(at):
                    _resolve(net, W, k, *at[k], counts, dead, side)
            u = [sum(net.ad[k] * max(_dot(W[k], Xd[i]), Decimal(0)) for k in range(m)) for i in range(n)]
            out.append(([row[:] for row in W], [u[i] - net.y[i] for i in range(n)]))
        return out, counts
