"""Gradient flow of the two-layer ReLU network u = (1/√m) Σ_k a_k σ(w_k·x) (a_k = ±1 fixed), solved
exactly between kinks and event by event across them.

Why not a Runge–Kutta integrator: the vector field −∇L jumps where a pre-activation
z_ki = w_k·x_i changes sign. A step straddling such a kink has a first-order error that
an embedded estimate does not bound, and at small widths a step straddles many; the flow
can also *slide* along a kink (both sides push towards it), where an explicit method
chatters. This module uses the structure instead.

* **Between kinks the flow is linear.** With the sign pattern S (S_ki = 1{z_ki > 0}) fixed,
  u = J_S θ (σ(z) = S z), so r = u − y obeys r′ = −H r with H = J Jᵀ constant, and
  θ(t) = θ_s − Jᵀ g(t), g(t) = ∫ r = V φ(Λ, t) Vᵀ r_s with φ(λ, t) = (1 − e^{−λt})/λ — in
  closed form from one eigendecomposition of the n × n matrix H (a *mode*).
* **Kinks are located, not stepped over.** In a mode each z_ki(τ) = z_ki(0) + F (φ(τ) ∘ q)
  is an explicit sum of exponentials (q = Vᵀ r_s), with exact derivatives and bounds
  |z″| ≤ M₂, |z‴| ≤ M₃ on [τ, ∞). The engine advances by the largest step s for which
  v + v′s − M₂s²/2 (v = the distance of z from its kink on its own side) stays positive,
  or for which v′ + v″s − M₃s²/2 stays positive when v′ ≥ 0 (z moves away): a step that
  provably crosses no kink. Near a root the steps converge quadratically; the event is
  taken when an entry is within ζ = 10⁻¹² ‖w_k(0)‖‖x_i‖ of its kink and moving towards it.
* **Only the entries that can move are followed.** Whatever the mode, ‖r‖ does not
  grow (d‖r‖²/dt = −2rᵀHr ≤ 0) and |z_ki′| = |x_i·P_k Xᵀ(S_k ∘ r)|/√m ≤ ‖x_i‖ ‖X‖₂ ‖r‖/√m,
  so an entry cannot reach its kink before |z_ki|√m/(‖x_i‖‖X‖₂‖r‖), nor, while neuron k keeps
  its pattern, before |z_ki|√m/(‖S_k ∘ G_i‖‖r‖). At a refresh all m·n entries get these
  certified times; only those that could cross before the next refresh are followed
  (a few hundred at m = 1024), and every entry that slides; the others are certified not to
  (:meth:`ReluFlow._refresh`).
* **Sliding (Filippov) modes.** At a kink the Filippov velocity of neuron k is
  −(a_k/√m) Σ_j s_kj r_j x_j with s_kj ∈ [0, 1] for the entries on their kink (the convex
  hull of the one-sided gradients). At an event the engine enumerates, for the neuron,
  each entry on a kink leaving to the positive side, to the negative side or sliding
  (s_kj ∈ (0, 1), x_j·w_k′ = 0), and takes the unique consistent choice. While sliding,
  w_k′ is projected onto the kinks' planes, which keeps the flow linear: H = (J P)(J P)ᵀ
  with P the projections — the Gram matrix of the actual velocity, the one with
  du/dt = −H(u − y). The sliding weights s are linear in r and are followed like the z's;
  when one reaches 0 or 1 the entry leaves its kink on that side (the velocity is
  continuous there). A choice that is not unique, or no consistent choice (the flow is
  then not well-posed), is *degenerate*: the flow goes on with the choice of the largest
  margin, and every later point is untrusted.
* **Error budget.** Within a mode the flow is the gradient flow of a convex quadratic, so
  errors in θ do not grow (‖δθ‖ is non-increasing) — provided the mode starts from
  r = u(W) − y in its own pattern, which each event restores (:meth:`ReluFlow._event`). The
  budget adds the local errors the engine makes: rounding of the closed form (8n·u·‖W‖_F
  per evaluation), the snap that puts a sliding entry exactly on its kink, and, at a
  crossing, the timing error δt = (‖x_j‖ 8n·u‖w_k‖ + ζ)/|z′| times the jump of the velocity
  (|r_j|‖x_j‖/√m). That it bounds
  the error assumes the kinks do not amplify earlier errors (a saltation factor): not
  proven (a norm bound of it cannot hold: the factors' product over a default flow is
  10³³–10⁴⁰), which is why crossings with |z′| too small for the budget to cover are
  degenerate, and why tests compare the trajectory with fine RK4 references at m = 16 to 1024
  and, for its true error, with a 50-digit reference on small networks.
"""
from __future__ import annotations

import itertools
import math
import threading
import time

import numpy as np

from .dynamics import Run
from .relumode import Followed, FlowPoint, Mode, Monitor, Track
from .relusteps import arrival, chase, steps

_EPS = float(np.finfo(float).eps)  # (a Python float: scalar arithmetic without numpy dispatch)
ZETA = 1e-12  # an entry within ζ = ZETA·‖w_k(0)‖‖x_i‖ of its kink and moving towards it is on it
# entries of one neuron on kinks at once; more is degenerate. The choice enumerates 3^k cases
# (6561 at 8: about 0.1 s, for an event that is rare). With 4, neurons sliding on
# 4 kinks met a fifth often at small widths and d = 10 (m = 64, n = 20: 4 of 20 trials
# undecided); surfaces of 6 were seen there, none larger
MAX_SURFACE = 8
ACTIVE = 256  # entries followed between refreshes (about)
SAMPLE_ROWS = 128  # neurons whose entries set the refresh window (at least; all if m is smaller)


#: kink geometry kept for the inputs of the last few runs, and how large one may grow before it
#: is started afresh (X Q Xᵀ is n × n per kink set A)
_KINKS: dict[tuple, "Kinks"] = {}
_KINKS_LOCK = threading.Lock()
KINKS_BYTES = 64 << 20


def kinks_of(X: np.ndarray) -> "Kinks":
    """The :class:`Kinks` of the inputs X, shared by every flow on the same X (a run's trials):
    each plane and solve is a function of X alone, so sharing changes no number, and each is
    formed once per process and data set instead of once per trial."""
    key = (X.shape, X.tobytes())
    with _KINKS_LOCK:  # (a Dask worker runs trials in threads)
        kin = _KINKS.get(key)
        if kin is None or kin.nbytes > KINKS_BYTES:
            if len(_KINKS) >= 2:
                _KINKS.pop(next(iter(_KINKS)))
            kin = _KINKS[key] = Kinks(X)
    return kin


class Kinks:
    """The geometry of the kinks z_ki = 0 for the inputs X (n × d): G = X Xᵀ, the norms, ‖X‖₂,
    and, cached by kink set, the planes' projections and solves."""

    def __init__(self, X: np.ndarray):
        self.X = X.copy()  # (the caller's array may change after)
        self.d = X.shape[1]
        self.G = self.X @ self.X.T
        self.G2 = self.G * self.G  # (‖S_k ∘ G_i‖² = (S_k @ G2)_i: ReluFlow._refresh)
        self.xnorm = np.sqrt(np.diag(self.G))
        self.X2 = float(np.linalg.norm(self.X, 2))
        self.xmax = float(self.xnorm.max())
        self.planes: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # every projection Q formed so far, in one array (row plane_id[A]): the sliding neurons'
        # Q_k are then one gather, not an array built from a list of d × d arrays
        self.plane_id: dict[tuple[int, ...], int] = {}
        self.bank = np.empty((8, self.d, self.d))
        self.solves: dict[tuple[int, ...], np.ndarray | None] = {}
        self.inverses: dict[tuple[int, ...], list[list[float]] | None] = {}
        self._indep: dict[tuple[int, ...], bool] = {}
        self.nbytes = 0  # of the planes
        self._lock = threading.Lock()

    def plane(self, A: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For kinks A: the projection Q onto span{x_j : j ∈ A}, X Q Xᵀ and G_AA⁻¹ X_A Xᵀ (cached)."""
        got = self.planes.get(A)
        if got is None:
            with self._lock:  # (flows in several threads may share these: :func:`kinks_of`)
                got = self.planes.get(A)
                if got is None:
                    XA = self.X[list(A)]
                    M = self.kink_solve(A)
                    Q = XA.T @ M
                    got = (Q, self.X @ Q @ self.X.T, M @ self.X.T)
                    self.nbytes += sum(x.nbytes for x in got)
                    at = len(self.plane_id)
                    if at == len(self.bank):
                        self.bank = np.concatenate([self.bank, np.empty_like(self.bank)])
                    self.bank[at] = Q
                    self.plane_id[A] = at
                    self.planes[A] = got
        return got

    def projections(self, planes) -> np.ndarray:
        """The projections Q of the kink sets ``planes`` (an iterable of tuples), stacked."""
        planes = list(planes)
        ids = list(map(self.plane_id.get, planes))  # (a refresh: one per sliding neuron)
        if None in ids:
            for A in planes:
                self.plane(A)
            ids = list(map(self.plane_id.get, planes))
        return self.bank[ids]

    def independent(self, B: tuple[int, ...]) -> bool:
        """Whether the kinks' normals x_j, j ∈ B, are linearly independent (cached): the one
        test behind :meth:`kink_solve` and :meth:`kink_inverse`."""
        got = self._indep.get(B)
        if got is None:
            got = self._indep[B] = bool(np.linalg.matrix_rank(self.X[list(B)]) == len(B))
        return got

    def kink_solve(self, B: tuple[int, ...]) -> np.ndarray | None:
        """G_BB⁻¹ X_B for the kinks B (cached); None when their normals x_j are dependent."""
        if B not in self.solves:
            XB = self.X[list(B)]
            self.solves[B] = np.linalg.solve(XB @ XB.T, XB) if self.independent(B) else None
        return self.solves[B]

    def kink_inverse(self, B: tuple[int, ...]) -> list[list[float]] | None:
        """G_BB⁻¹ as nested lists (cached); None when the normals x_j, j ∈ B, are dependent."""
        if B not in self.inverses:
            idx = list(B)
            self.inverses[B] = np.linalg.inv(self.G[idx][:, idx]).tolist() if self.independent(B) else None
        return self.inverses[B]


class ReluFlow:
    """Event-driven exact gradient flow; see the module docstring."""

    def __init__(self, X: np.ndarray, y: np.ndarray, a: np.ndarray, T: float):
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        a = np.asarray(a, dtype=np.float64)
        if not np.all(np.abs(a) == 1.0):
            # H = G ∘ (SᵀS)/m (add_neuron_gram, Mode) and the refresh's speed bound take a_k² = 1
            raise ValueError("ReluFlow needs output weights a_k = ±1 (the [DZPS] network): its H and "
                             "speed bounds take a_k² = 1")
        self.a_m = a / np.sqrt(a.size)
        self.neg_a_m = -self.a_m[:, None]
        self._a_m = self.a_m.tolist()
        self.m, self.n, self.d = a.size, self.X.shape[0], self.X.shape[1]
        kin = kinks_of(self.X)
        self.G, self.G2, self.xnorm, self.X2, self.xmax = kin.G, kin.G2, kin.xnorm, kin.X2, kin.xmax
        self._xnorm = self.xnorm.tolist()
        self.plane, self.projections, self.kink_solve, self.kink_inverse = (
            kin.plane, kin.projections, kin.kink_solve, kin.kink_inverse)
        self.T = float(T)
        self._buf = np.empty((7, self.n))

    def residual(self, W: np.ndarray) -> np.ndarray:
        return np.maximum(W @ self.X.T, 0.0).T @ self.a_m - self.y

    def add_neuron_gram(self, H: np.ndarray, S_k: np.ndarray, A: tuple[int, ...], old_S: np.ndarray,
                        old_A: tuple[int, ...]) -> None:
        """H += the change of neuron k's term of H, (s sᵀ) ∘ (X P Xᵀ)/m with P the projection off
        its kinks' planes, from (old_S, old_A) to (S_k, A)."""
        if not A and not old_A:
            ch = (S_k != old_S).nonzero()[0]
            if ch.size == 1:  # (most events) s sᵀ − o oᵀ is row and column j alone, s = o off j:
                # there s if s_j = 1, −o if o_j = 1, the same numbers as the full form below
                j = int(ch[0])
                row = self.G[j] * S_k if S_k[j] else self.G[j] * old_S
                row /= self.m
                if not S_k[j]:
                    np.negative(row, out=row)
                H[j] += row
                row[j] = 0.0  # (H_jj once)
                H[:, j] += row
                return
        H += self._neuron_gram(S_k, A, old_S, old_A)

    def _neuron_gram(self, S_k: np.ndarray, A: tuple[int, ...], old_S: np.ndarray, old_A: tuple[int, ...]) -> np.ndarray:
        """The change of neuron k's term of H (:meth:`add_neuron_gram`) as an n × n array."""
        s, o = S_k.astype(np.float64), old_S.astype(np.float64)
        if not A and not old_A:
            D = s[:, None] * s
            D -= o[:, None] * o
            D *= self.G
        else:
            D = (s[:, None] * s) * (self.G if not A else self.G - self.plane(A)[1])
            D -= (o[:, None] * o) * (self.G if not old_A else self.G - self.plane(old_A)[1])
        D /= self.m
        return D

    def slide_rows(self, k: int, S_k: np.ndarray, A: tuple[int, ...], r: np.ndarray) -> np.ndarray:
        """f1 = σc and f2 = σ(r_j − c) for each sliding entry j of neuron k, as rows acting on r
        (shape |A| × 2 × n): c = s ∘ r_A = −G_AA⁻¹ X_A Xᵀ (S_k ∘ r) (x_j·w_k′ = 0), σ = sign r_j
        now. s ∈ [0, 1] while both are ≥ 0 (if r_j changes sign, one of them reaches 0 first)."""
        Ck = -(self.plane(A)[2] * S_k)
        out = np.empty((len(A), 2, self.n))
        for p, j in enumerate(A):  # (|A| ≤ MAX_SURFACE: a loop of scalar signs beats fancy indexing)
            sg = 1.0 if r[j] >= 0 else -1.0
            np.multiply(Ck[p], sg, out=out[p, 0])
            np.multiply(Ck[p], -sg, out=out[p, 1])
            out[p, 1, j] += sg
        return out

    # -- the choice at a kink ------------------------------------------------------------
    def _margin_scale(self, a: float, r: np.ndarray) -> float:
        """What a choice's margins x_j·w′ are measured against (the 10⁻⁹ of :meth:`choose`):
        |a_k|·(|r|·‖x‖)·max‖x‖, a bound on the size of every |x_j·w′| for neuron k."""
        return abs(a) * float(np.abs(r) @ self.xnorm) * self.xmax + 1e-300

    def choose(self, k: int, r: np.ndarray, S_k: np.ndarray, surface: list[int],
               fixed: dict[int, int] | None = None) -> tuple[np.ndarray, tuple[int, ...], bool]:
        """Neuron k with ``surface`` entries on their kinks: each leaves to z > 0 (1), to z < 0
        (0) or slides (2), consistently with the Filippov velocity at residual r. ``fixed``
        entries leave to a given side (a sliding weight that reached 0 or 1: the velocity on
        that side is tangent at this instant, so the side is the one it left through).
        Returns (new S_k row, sliding entries, degenerate)."""
        fixed = fixed or {}
        if len(surface) == 1 and surface[0] in fixed:  # one choice, no margin to check
            out = S_k.copy()
            out[surface[0]] = fixed[surface[0]] == 1
            return out, (), False
        # Everything a choice needs is in the span of the surface's inputs x_U: with b0 the sum
        # over the entries off the surface, x_j·b = x_j·b0 + Σ_{i ∈ P} G_ji r_i (P: the entries
        # leaving to z > 0), the sliding weights c_B = −G_BB⁻¹ x_B·b keep x_B·w′ = 0, and
        # x_j·w′ = −a (x_j·b + Σ_{l ∈ B} G_jl c_l): scalars on at most MAX_SURFACE entries
        a = float(self.a_m[k])
        scale = self._margin_scale(a, r)
        base = r * S_k
        base[surface] = 0.0
        p0 = (self.G[surface] @ base).tolist()  # x_j·b0
        GU = self.G[surface][:, surface].tolist()
        rU = r[surface].tolist()
        u = range(len(surface))
        GR = [[g * ri for g, ri in zip(row, rU)] for row in GU]  # G_ji r_i
        xbs: dict[tuple[int, ...], list[float]] = {}  # x_U·b for each set P (shared by the choices with it)
        best, best_margin, valid = None, -np.inf, 0
        for choice in itertools.product(*[(fixed[j],) if j in fixed else (0, 1, 2) for j in surface]):
            P = tuple(i for i in u if choice[i] == 1)
            xb = xbs.get(P)
            if xb is None:
                xb = xbs[P] = [p0[j] + sum([GR[j][i] for i in P]) for j in u]
            B = tuple(i for i in u if choice[i] == 2)
            margins = []
            if B:
                Ginv = self.kink_inverse(tuple(surface[i] for i in B))
                if Ginv is None:
                    continue  # its kinks' normals are dependent: no velocity keeps all of them at 0
                cB = [-sum([g * xb[i] for g, i in zip(row, B)]) for row in Ginv]
                xv = [-a * (xb[j] + sum([GU[j][i] * c for i, c in zip(B, cB)])) for j in u]
                for i, c in zip(B, cB):
                    sj = c / rU[i] if rU[i] != 0 else math.nan
                    margins.append(min(sj, 1 - sj) if math.isfinite(sj) else -np.inf)
            else:
                xv = [-a * v for v in xb]
            for i, j in enumerate(surface):
                if choice[i] != 2 and j not in fixed:
                    dj = xv[i] / scale
                    margins.append(dj if choice[i] == 1 else -dj)
            mg = min(margins) if margins else np.inf
            valid += mg > 1e-9
            if mg > best_margin:
                best, best_margin = (P, B), mg
        if best is None:  # no choice at all can be formed: keep the signs, untrusted from here
            return S_k.copy(), (), True
        out = S_k.copy()
        out[surface] = False
        out[[surface[i] for i in best[0]]] = True
        return out, tuple(surface[i] for i in best[1]), valid != 1

    def choose_one(self, k: int, r: np.ndarray, S_k: np.ndarray, j: int) -> tuple[np.ndarray, tuple[int, ...], bool]:
        """:meth:`choose` for one entry j on its kink and no fixed side (most events), in closed
        form: with b0 = Σ_{i≠j} S_ki r_i x_i, the velocity off the kink is −a b0, on it
        −a(b0 + r_j x_j), and sliding keeps x_j·w′ = 0 with weight s = −(x_j·b0)/(G_jj r_j).
        The same margins as :meth:`choose` up to rounding, so the same choice (tested)."""
        # (Python floats: the same arithmetic as numpy's scalars, faster; a non-finite s is no choice)
        a, Gjj, rj = self._a_m[k], float(self.G[j, j]), float(r[j])
        scale = self._margin_scale(a, r)
        rk = r * S_k
        rk[j] = 0.0
        xb0 = float(self.G[j] @ rk)  # x_j·b0
        margins = [a * xb0 / scale, -a * (xb0 + rj * Gjj) / scale]
        if Gjj > 0:
            den = Gjj * rj
            sj = -xb0 / den if den != 0 else math.nan
            margins.append(min(sj, 1 - sj) if math.isfinite(sj) else -math.inf)
        best, best_margin, valid = None, -math.inf, 0
        for c, mg in enumerate(margins):
            valid += mg > 1e-9
            if mg > best_margin:
                best, best_margin = c, mg
        if best is None:
            return S_k.copy(), (), True
        out = S_k.copy()
        out[j] = best == 1
        return out, ((j,) if best == 2 else ()), valid != 1

    def dies(self, k: int, r: np.ndarray, old_S: np.ndarray, surface: list[int], w: np.ndarray,
             tol: float) -> bool:
        """Whether neuron k (row ``w``) dies here as the flow's only continuation: its active
        entries are all on the surface U (b0 = 0); every other entry is off its kink by more
        than w's error (z_i < −tol·‖x_i‖), and U's kinks do not meet only at the origin (where
        every entry is on its kink: two kinks in d = 2); and a_k r_j > 0 (beyond the choice's
        margin 10⁻⁹) for each j ∈ U.
        Then every choice has velocity 0 or is inconsistent: with sliding weights s_i ∈ [0, 1]
        (s_i = 1 on the entries leaving to z > 0, P) the velocity is −a b with b = Σ s_i r_i x_i,
        so Σ_{j∈P} (a r_j)(x_j·w′) = a·b·w′ = −a²‖b‖² < 0 if b ≠ 0 and some entry of P
        cannot leave to z > 0. :meth:`choose` then takes all entries off (margin 0, no choice
        above 10⁻⁹: degenerate by its rule); this is the unique Filippov solution for as long as
        each a_k r_j stays > 0 (the Mode's watches)."""
        rest = old_S.copy()
        rest[surface] = False
        if rest.any():
            return False
        off = self.X @ w < -tol * self.xnorm
        off[surface] = True
        if not off.all() or len(surface) >= self.d and np.linalg.matrix_rank(self.X[surface]) >= self.d:
            return False
        a = self._a_m[k]
        scale = self._margin_scale(a, r)
        return all(a * float(r[j]) * float(self.G[j, j]) / scale > 1e-9 for j in surface)

    def watch_cols(self, watch: tuple[tuple[int, int], ...]) -> np.ndarray | None:
        """The watches' rows sign(a_k)·e_j as the columns of an n × |watch| array (None: none)."""
        if not watch:
            return None
        cols = np.zeros((self.n, len(watch)))
        for c, (k, j) in enumerate(watch):
            cols[j, c] = 1.0 if self._a_m[k] > 0 else -1.0
        return cols

    # -- following entries ---------------------------------------------------------------
    def coefficients(self, md: Mode, ke: np.ndarray | int, ie: np.ndarray, sig: np.ndarray,
                     XP: np.ndarray | None = None) -> np.ndarray:
        """c_e with z_e′ = c_e · r for the entries e = (k_e, i_e) on their side σ_e = ``sig``
        (:meth:`Mode.sides`): c_e = −σ_e (a_k/√m) S_k ∘ (X P_k x_i), P_k = I unless k slides. They
        change only when neuron k does (its signs or its sliding set). ``ke`` may be one neuron k
        for all entries (then ``XP``, the rows X P_k x_i, must be given); ``XP``: those rows if
        known (not changed)."""
        c = XP if XP is not None else self._projected(md, ke, ie)
        c = c * (sig * -self.a_m[ke])[:, None]  # (a new array: XP may be a view of G; −a_k exact)
        c *= md.Sf[ke]
        return c

    def _projected(self, md: Mode, ke: np.ndarray, ie: np.ndarray) -> np.ndarray:
        """The rows X P_k x_i (a new array), P_k the projection off neuron k's kinks' planes."""
        X = self.X
        c = self.G[ie]
        if md.slide:
            _, Qs, slot = md.sliding_neurons()
            pos = slot[ke]
            hit = pos >= 0
            if np.count_nonzero(hit):
                xi = X[ie[hit]]
                xp = xi - np.einsum("kde,ke->kd", Qs[pos[hit]], xi)
                c[hit] = xp @ X.T
        return c

    def _track(self, md: Mode, fo: "Followed") -> "Track":
        """Per mode: v_e(τ) = σ_e z_e(τ) = v0_e + F_e (φ(τ) ∘ q) for the followed entries,
        F_e = Vᵀc_e (:meth:`coefficients`), v0_e = fo.base_e + c_e·Γ_s (:class:`Followed`)."""
        # the entries' columns, then the sliding weights', then the watches': one product into
        # FvT, which is contiguous (a product into a column range of it is not, and takes numpy's
        # slow path)
        C = fo.columns(md)
        FA = np.empty((2 * self.n, C.shape[1]))  # FvT over |FvT| (Track.FA)
        FvT, aFT = FA[:self.n], FA[self.n:]
        np.matmul(md.V.T, C, out=FvT)
        np.abs(FvT, out=aFT)
        return Track(fo.codes, fo.base + md.Gs @ fo.CT, FvT, aFT, FA, fo.sl, fo.zeta, fo.zeta2)

    def run(self, W0: np.ndarray, monitor: Monitor, times=(), max_events: int = 1_000_000,
            max_iterations: int = 10_000_000) -> Run:
        """The flow from W0 to T, each event and each time in ``times`` shown to ``monitor`` (which
        returns whether to go on). Numpy's floating-point checks are off inside (after every
        ufunc they cost about 1.5% of a default cor24 trial): the engine guards its own
        divisions, and a residual that is not finite stops the run, saying so (:meth:`_lost`)."""
        with np.errstate(all="ignore"):
            return self._run(W0, monitor, times, max_events, max_iterations)

    @staticmethod
    def _lost(run: Run, rr: float, t: float) -> bool:
        """Whether ‖r‖² = ``rr`` at t is not finite (a numerical failure): then the run stops,
        untrusted from there, with the reason in ``divergence``."""
        if math.isfinite(rr):
            return False
        run.stopped_early = True
        run.divergence = f"the residual is not finite at t = {t:.6g}"
        return True

    def _run(self, W0: np.ndarray, monitor: Monitor, times, max_events: int, max_iterations: int) -> Run:
        t_start = time.perf_counter()
        W = np.array(W0, dtype=np.float64, copy=True)
        T, X, n = self.T, self.X, self.n
        run = Run("exact", 0.0, 0)
        ex = run.extra
        ex.update(dict.fromkeys(("events", "crossings", "arrivals", "releases", "degenerate", "iterations",
                                 "refreshes", "arrivals_chased", "leaves_chased", "deaths", "revivable"), 0))
        ex["sliding_time"] = 0.0
        zeta_row = ZETA * np.sqrt((W * W).sum(axis=1))  # × ‖x_i‖
        Z = W @ X.T
        S = Z > 0
        r = self.residual(W)
        trusted = True
        slide: dict[int, tuple[int, ...]] = {}
        on = np.abs(Z) <= zeta_row[:, None] * self.xnorm[None, :]
        for k in np.nonzero(on.any(axis=1))[0]:  # on a kink at t = 0 (measure zero): an event
            S[k], B, deg = self.choose(int(k), r, S[k], np.nonzero(on[k])[0].tolist())
            trusted &= not deg
            if B:
                slide[int(k)] = B
        self.Wa, self.Ga = W.copy(), np.zeros((self.m, n))
        md = Mode(self, 0.0, np.zeros(n), r, S, slide)
        err_theta = 0.0
        self.wscale = float(np.sqrt(np.einsum("kd,kd->", W, W)))
        go = not self._lost(run, float(r @ r), 0.0) and monitor(
            FlowPoint(0.0, 0.0, 0, r, float(np.linalg.norm(r)), md.lam, md.V,
                      self._err_u(0.0, float(np.linalg.norm(r))), 0.0, trusted, False, _theta=W.ravel()))
        if not go:
            run.stopped_early = True
            run.seconds = time.perf_counter() - t_start
            return run
        stops = sorted({float(x) for x in times if 0 < x < T} | {T})
        si = 0
        t_prev, r_prev = 0.0, float(np.linalg.norm(r))
        t_refresh = -1.0
        tau = 0.0
        fo = tr = None
        same, t_last = 0, -1.0
        fresh: set[int] = set()  # entries (k·n + i) just released from a kink, until they move off it
        lead = -1
        stalled = 0
        # (s, τ) of the last pass, kept over a sample point: every row stays certified for its
        # step from that τ, so the point needs no pass of its own (None: a pass is due)
        kept = None
        while True:
            t = md.t_s + tau
            if t >= t_refresh:
                ke, ie, t_refresh, r_now, Z = self._refresh(md, tau)
                ex["refreshes"] += 1
                if md.slide:  # (the refreshed mode starts at t)
                    ex["sliding_time"] += t - md.t_s
                md = Mode(self, t, np.zeros(n), r_now, md.S, md.slide, prev=md)
                tau = 0.0
                fo = Followed(self, md, ke, ie, Z[ke, ie], zeta_row)
                tr = self._track(md, fo)
                lead, kept = -1, None
            ex["iterations"] += 1
            if ex["iterations"] > max_iterations:
                run.stopped_early = True
                run.divergence = f"stopped after {max_iterations} iterations at t = {t:.4g}"
                break
            one = arrival(md, tr, lead, self._buf, fresh) if lead >= 0 else None
            if one is not None:  # the chase's leader arrives or leaves, and nothing else happens here
                ex["arrivals_chased" if one[0] else "leaves_chased"] += 1
                hit = one
            elif kept is not None:  # just past a sample point, within every row's step
                s = kept[0] - (tau - kept[1])
                hit = None
            else:
                s, arriving, vd, leaving, lost = steps(md, tau, tr, fresh, self._buf)
                if lost:
                    trusted = False
                    ex["degenerate"] += 1
                hit = None
                if np.count_nonzero(arriving) or np.count_nonzero(leaving):  # (cheaper calls than .any())
                    hit = list(zip(fo.ke[arriving].tolist(), fo.ie[arriving].tolist(), vd[arriving].tolist())), leaving
            lead, kept = -1, None
            if hit is not None:
                # the pass at τ left φ(τ) ∘ q and e^{−λτ} ∘ q in buf: Γ(τ) and r(τ) (Mode.gamma, .residual)
                rt, Gt = md.V @ self._buf[1], md.Gs + md.V @ self._buf[0]
                old = md
                md, deg, err_theta, tangent = self._event(md, t, rt, Gt, *hit, zeta_row, err_theta, run)
                tau = 0.0  # (the new mode starts at t: a stop from here ends the run at t)
                fresh.update(k * n + j for k, j in tangent)
                fo.update(self, md)
                trusted &= not deg
                ex["events"] += 1
                if old.slide:
                    ex["sliding_time"] += t - old.t_s
                same = same + 1 if t == t_last else 0
                t_last = t
                if same > 50:  # events without time passing: the flow is not resolved here
                    run.stopped_early = True
                    run.divergence = f"the flow is not resolved at t = {t:.6g} (events without progress)"
                    trusted = False
                    break
                run.steps += 1
                rr = float(rt @ rt)
                if self._lost(run, rr, t):
                    trusted = False
                    break
                rn = math.sqrt(rr)
                p = FlowPoint(t, t_prev, run.steps, rt, r_prev, old.lam, old.V, self._err_u(err_theta, rn),
                              err_theta, trusted, True, theta_fn=lambda md=md: md.state(0.0)[0].ravel(), loss=rr)
                go = monitor(p)
                p.theta_fn = None
                t_prev, r_prev = t, rn
                tr = self._track(md, fo)
                if not go:
                    run.stopped_early = True
                    break
                if ex["events"] >= max_events:
                    run.stopped_early = True
                    run.divergence = f"stopped after max_events = {max_events} kink events at t = {t:.4g}"
                    break
                continue
            low = int(s.argmin()) if s.size else -1  # (the chase's leader; not ``lead``, the arrival's)
            step = float(min(s[low] if s.size else np.inf, t_refresh - t))
            while si < len(stops) and stops[si] <= t:
                si += 1
            target = stops[si] if si < len(stops) else T
            if t + step >= target:
                kept = (s, tau)
                tau = target - md.t_s
                Gt = md.gamma(tau)
                Wt, rt = md.state(tau, Gt)
                err_theta += 8 * n * _EPS * (self.wscale + self.X2 * float(np.linalg.norm(Gt)))
                run.steps += 1
                rr = float(rt @ rt)
                if self._lost(run, rr, target):
                    trusted = False
                    break
                rn = math.sqrt(rr)
                go = monitor(FlowPoint(target, t_prev, run.steps, rt, r_prev, md.lam, md.V, self._err_u(err_theta, rn),
                                       err_theta, trusted, False, _theta=Wt.ravel(), loss=rr))
                t_prev, r_prev = target, rn
                si += 1  # (t_s + (target − t_s) may round below target)
                if not go:
                    run.stopped_early = True
                    break
                if target >= T:
                    break
                continue
            adv, lead = chase(md, tau, tr, s, low, max(step, 0.0), min(target, t_refresh) - t, fresh, self._buf)
            stalled = stalled + 1 if tau + adv == tau else 0
            if stalled > 1000:  # steps too small to move t: the flow is not resolved here
                run.stopped_early = True
                run.divergence = f"the flow is not resolved at t = {t:.6g} (steps without progress)"
                trusted = False
                break
            tau += adv
        run.t_end = md.t_s + tau
        if md.slide:
            ex["sliding_time"] += run.t_end - md.t_s
        run.kink_steps = ex["events"]
        run.error_theta = err_theta
        run.error_u = self._err_u(err_theta, float(np.linalg.norm(md.residual(tau))))
        run.seconds = time.perf_counter() - t_start
        return run

    def _err_u(self, err_theta: float, r_norm: float) -> float:
        """‖δu‖ ≤ ‖X‖₂ ‖δW‖_F (σ is 1-Lipschitz; Cauchy–Schwarz over the m neurons), plus the
        rounding of r = V e^{−Λτ} Vᵀ r_s (‖r‖ = ``r_norm``)."""
        return self.X2 * err_theta + 8 * self.n * _EPS * r_norm

    def _refresh(self, md: Mode, tau: float):
        """All entries at time t: each one's certified earliest crossing; follow those before
        the next refresh. Every neuron is anchored at t, with Γ counted from t (it stays small).

        Two speed bounds certify an entry (k, i), both from ‖r‖ not growing (module docstring):
        * while neuron k keeps its pattern S_k (and slides on no kink), z_ki′ = −(a_k/√m)
          (S_k ∘ G_i)·r, so |z_ki′| ≤ ‖S_k ∘ G_i‖‖r‖/√m (the *tight* bound: about half of
          ‖x_i‖‖X‖₂‖r‖/√m at the default, so the window is about 1.5× longer for as many
          entries followed);
        * whatever neuron k's pattern and sliding set, |z_ki′| ≤ ‖x_i‖‖X‖₂‖r‖/√m (the *crude* one).
        A neuron none of whose entries is followed keeps its pattern until the next refresh: its
        pattern changes only at an event of one of its entries, and the first such entry would
        have to cross before its tight time, which is beyond the window. So its entries are
        certified by the tight bound. A neuron with a followed entry (which every sliding neuron
        has: its sliding entries are always followed) may change, and each of its other entries
        is followed unless the crude bound certifies it."""
        W, r = md.state(tau)
        self.Wa = W
        self.Ga[:] = 0.0
        self.wscale = float(np.sqrt(np.einsum("kd,kd->", W, W)))
        Z = W @ self.X.T
        # (1 + 1e-9) covers ‖X‖₂'s error (an SVD, relative error of order n·u) and the rounding
        # of ‖r‖, ‖S_k ∘ G_i‖² (a sum of n non-negative terms) and of the squares compared below
        scale = float(np.linalg.norm(r)) / np.sqrt(self.m) * (1 + 1e-9)
        sliding = md.sliding_mask
        count = min(Z.size, max(ACTIVE, Z.size // 128))
        if count < Z.size and scale > 0:
            # any window > 0 is sound (an entry left out is certified not to cross before the next
            # refresh), so it need not select exactly ``count``: the tight times' quantile among
            # every stride-th neuron (i.i.d. rows: the same distribution) selects about as many, and
            # partitioning all m rows took nearly half of a refresh. The other entries of the
            # neurons with a followed one add some (by the crude bound). A sliding entry is followed
            # whatever the window: idle while it slides, its row is formed anew with its neuron's at
            # the event that releases it. So it does not count towards the window (it is on its
            # kink: its time would be 0). (At the default, m·n = 20 480: with the crude bound alone
            # 256 followed entries took fewer instructions than 128, 192, 320 or 427 (callgrind);
            # with both bounds, a count of 192, 256, 320 or 512 changed the engine's time by
            # +1%, −2%, −2% and +5%.)
            # ‖S_k ∘ G_i‖², m × n (not a bound for a sliding neuron, whose velocity is projected: but
            # its sliding entries are followed, so its other entries are left out by the crude bound)
            nc2 = md.Sf @ self.G2
            Z2 = Z * Z
            stride = max(1, min(self.m // SAMPLE_ROWS, Z.size // count))
            sub = Z2[::stride] / (nc2[::stride] + 1e-300)  # (squared times, × scale²)
            sub[sliding[::stride]] = np.inf
            sub = sub.ravel()
            kth = count * sub.size // Z.size
            window = max(math.sqrt(float(np.partition(sub, kth)[kth])) / scale, 1e-9 * self.T)
            # followed: the entries whose tight time is within the window,
            # Z² < (window·scale)²·‖S_k ∘ G_i‖², and the sliding ones
            follow = Z2 < (window * scale) ** 2 * nc2
            follow |= sliding
            rows = follow.any(axis=1).nonzero()[0]
            # (then the others of the neurons that may change, by their crude times)
            follow[rows] |= np.abs(Z[rows]) < (window * scale) * (self.xnorm * self.X2)  # (‖x_i‖‖X‖₂)
        else:  # (few entries: all are followed; or r = 0: nothing moves, ever)
            window = np.inf
            follow = sliding if scale == 0 else np.ones(Z.shape, dtype=bool)
        sel = np.flatnonzero(follow)
        ke, ie = np.divmod(sel, self.n)
        return ke, ie, md.t_s + tau + window, r, Z

    def _event(self, md: Mode, t, rt, Gt, arriving, leaving, zeta_row, err_theta: float, run: Run):
        """Resolve each neuron with an entry arriving at or leaving its kink (``arriving``: (k, i,
        z′) triples; ``leaving``: the sliding weights that reach 0 or 1). Returns the new mode, with
        those neurons anchored at t (:class:`Mode`), whether the choice was degenerate, the error
        budget, and the entries (k, j) that leave a kink they slid on because their sliding weight
        reached 0 or 1 (tangentially: z′ ≈ 0)."""
        ex = run.extra
        arr: dict[int, list[tuple[int, float]]] = {}
        for k, i, v in arriving:
            arr.setdefault(k, []).append((i, v))
        fixed: dict[int, dict[int, int]] = {}
        watch, degenerate = md.watch, False
        if leaving.size and np.count_nonzero(leaving):
            ns = 2 * md.ent_k.size
            fired = set()
            for p in leaving.nonzero()[0]:  # row 2i: s → 0 (leaves to z < 0); 2i + 1: s → 1 (to z > 0)
                if p >= ns:  # a dead neuron's a_k r_j reaches 0: it could revive, or not
                    fired.add(int(p) - ns)
                    continue
                k, j = int(md.ent_k[p // 2]), int(md.ent_j[p // 2])
                fixed.setdefault(k, {})[j] = int(p % 2)
            if fired:  # (the neuron stays dead, one of the solutions: untrusted from here)
                degenerate = True
                ex["revivable"] += len(fired)
                watch = tuple(w for c, w in enumerate(watch) if c not in fired)
        S, slide = md.S, dict(md.slide)  # (S in place: see Mode)
        changed = []
        ks = sorted(arr.keys() | fixed.keys()) if fixed else sorted(arr)
        Wk = [md.row(k, Gt) for k in ks]  # (before any neuron changes)
        # the rows' rounding, and Γ's: δΓ moves W by at most ‖X‖₂‖δΓ‖ (Frobenius, all neurons)
        err_theta += 8 * self.n * _EPS * (self.wscale + self.X2 * math.sqrt(float(Gt @ Gt)))
        # the new mode starts from r = u(W) − y in its own pattern: the resolved neurons' terms
        # a_k S_k ∘ (X w_k)/√m change (an entry taken within ζ of its kink flips with its z ≠ 0,
        # a sliding row is moved onto its kinks). Started from the old mode's r instead, the
        # difference δ stays constant (δ′ = −Hr + JJᵀr = 0) and drives W by −Jᵀδ ever after,
        # an error growing with time that no budget term covers
        du = np.zeros(self.n)
        for row, k in enumerate(ks):
            before = set(slide.get(k, ()))
            speeds = dict(arr.get(k, ()))
            surf = sorted(before | set(speeds))
            if len(surf) > MAX_SURFACE:
                degenerate = True
                surf = surf[:MAX_SURFACE]
            changed.append((k, S[k].copy(), slide.get(k, ())))
            if len(surf) == 1 and k not in fixed:
                S_k, B, deg = self.choose_one(k, rt, S[k], surf[0])
            else:
                S_k, B, deg = self.choose(k, rt, S[k], surf, fixed.get(k))
            # all off, by choose's rule degenerate: a death, unique while the watches hold (w_k's
            # error: ζ and the budget)
            if (deg and k not in fixed and not B and not S_k.any()
                    and self.dies(k, rt, S[k], surf, Wk[row], float(zeta_row[k]) + err_theta)):
                deg = False
                ex["deaths"] += 1
                watch += tuple((k, j) for j in surf)
            degenerate |= deg
            for j in surf:
                if j in before:
                    ex["releases"] += j not in B
                    continue
                ex["crossings" if j not in B else "arrivals"] += 1
                # the true kink is reached within δt = (‖x_j‖·δw_k + ζ)/|z′| of the computed one;
                # meanwhile the velocities differ by at most the jump |a_k/√m||r_j|‖x_j‖
                wk = math.sqrt(float(Wk[row] @ Wk[row]))
                xj = self._xnorm[j]  # (Python floats: the same arithmetic as numpy's scalars, faster)
                dt = min((xj * 8 * self.n * _EPS * wk + float(zeta_row[k]) * xj)
                         / max(abs(speeds[j]), 1e-300), self.T)
                err_theta += dt * abs(self._a_m[k] * float(rt[j])) * xj
            z_old = self.X @ Wk[row]
            S[k] = S_k
            if B:
                slide[k] = B
                shift = self.plane(B)[0] @ Wk[row]  # onto the kinks exactly
                err_theta += float(np.sqrt(shift @ shift))
                Wk[row] -= shift
            else:
                slide.pop(k, None)
            du += self._a_m[k] * (S_k * (self.X @ Wk[row] if B else z_old) - changed[-1][1] * z_old)
        for k, w in zip(ks, Wk):
            self.Wa[k] = w
        if len(ks) == 1:  # (most events: a row, not a fancy-indexed assignment)
            self.Ga[ks[0]] = Gt
        else:
            self.Ga[ks] = Gt
        ex["degenerate"] += degenerate
        tangent = [(k, j) for k, sides in fixed.items() for j in sides]  # released with z′ ≈ 0
        md = Mode(self, t, Gt, rt + du, S, slide, prev=md, changed=changed, watch=None if watch is md.watch else watch)
        return md, degenerate, err_theta, tangent
