"""Lemma 2.3's attack: an explicit W in the ball whose H(W) is evaluated exactly.

For a test vector v, vᵀ ΔH v = Σ_k (‖z'_k‖² − ‖z_k‖²)/m with z_k = Σ_i v_i s_ik x_i, so the
best move is separable over neurons: each neuron takes the best of a few pushes of length R
(no move; towards the single most profitable sign flip; along a gain-weighted combination of
its flippable rows). v is then replaced by the extreme eigenvector of the new ΔH (or H) and
the step repeats, like a power iteration. Every W tried is inside the ball, so whatever it
reaches is a valid lower bound on the supremum (and upper bound on the infimum of λ_min).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..memory import chunk_rows, neuron_slices
from ..parallel import single_blas, work_threads
from .certificate import Certificate, require_radius
from .eig import bordered_extremes, eigenvalue_at, may_lie_below
from .flippable import csr_rows, run_starts
from .gram import InputGrams, _max_norm, exact_entries, float32_error_bound, require_safe_rows, sign_pass

_EPS = np.finfo(np.float64).eps


#: below this density of the pairs asked for, their dot products are gathered one by one;
#: above it, one dense float32 product and a gather are cheaper: gathering costs d flops per
#: pair without BLAS, the dense product m·n·d flops at BLAS speed, and the two meet near 1%
#: (benchmarks/bench_gram.py times both sides)
_GATHER_FRACTION = 1 / 100
#: above this density of a rows × n coefficient matrix its products are dense BLAS products
_DENSE_ROWS = 1 / 16
#: above this fraction of near entries in a chunk, the attack treats every entry as near
#: (contiguous arrays instead of gathers)
_ALL_NEAR = 1 / 4


class _Near:
    """The entries (k, i) of a chunk (rows × n) whose sign a push can change, as sorted flat
    indices k·n + i, with |w_k·x_i| for each. When most entries are near, every entry is
    taken (the far ones with |w·x| = ∞, which no push reaches) and gathers become reshapes."""

    def __init__(self, flat: np.ndarray, absval: np.ndarray, rows: int, n: int):
        self.rows, self.n = rows, n
        self.all = flat.size > _ALL_NEAR * rows * n
        if self.all:
            self.a = np.full(rows * n, np.inf)
            self.a[flat] = absval
            self.flat = self.k = self.i = None
        else:
            self.a, self.flat = absval, flat
            self.k, self.i = np.divmod(flat, n)

    @property
    def size(self) -> int:
        return self.a.size

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in (self.a, self.flat, self.k, self.i) if x is not None)

    def index(self, sub: np.ndarray) -> np.ndarray:
        """The flat indices k·n + i of the entries ``sub``."""
        return sub if self.all else self.flat[sub]

    def row(self, vec: np.ndarray) -> np.ndarray:
        """vec[k] for each entry (vec of length rows)."""
        return np.repeat(vec, self.n) if self.all else vec[self.k]

    def col(self, vec: np.ndarray) -> np.ndarray:
        """vec[i] for each entry (vec of length n)."""
        return np.tile(vec, self.rows) if self.all else vec[self.i]

    def of(self, M: np.ndarray, by_row: np.ndarray | None = None) -> np.ndarray:
        """M[k, i] for each entry of a rows × n array M; with ``by_row``, M[by_row[k], i]."""
        if self.all:
            return (M if by_row is None else M[by_row]).ravel()
        return M.ravel()[self.flat] if by_row is None else M[by_row[self.k], self.i]

    def best(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the largest g over its entries (−∞ if none) and the flat index of the
        first entry reaching it (0 for rows without entries)."""
        if self.all:
            g2 = g.reshape(self.rows, self.n)
            j = np.argmax(g2, axis=1)
            return g2[np.arange(self.rows), j], np.arange(self.rows) * self.n + j
        top = np.full(self.rows, -np.inf)
        flat = np.zeros(self.rows, dtype=np.int64)
        start = np.flatnonzero(run_starts(self.k))  # entries are sorted by row
        top[self.k[start]] = np.maximum.reduceat(g, start)
        at = np.flatnonzero(g == top[self.k])
        at = at[run_starts(self.k[at])]  # the first per row
        flat[self.k[at]] = self.flat[at]
        return top, flat

    def dots(self, A: np.ndarray, B32: np.ndarray) -> np.ndarray:
        """A[k]·B[i] (float32 accuracy, float64 result) for each entry (B of n rows)."""
        A32 = A.astype(np.float32)
        if self.size > _GATHER_FRACTION * self.rows * self.n:
            return self.of(A32 @ B32.T).astype(np.float64)
        return exact_entries(A32, B32, self.flat, self.n)  # float32 dot products, gathered

    def matrix(self, vals: np.ndarray, subset: np.ndarray | None = None):
        """The rows × n matrix with ``vals`` at the entries (or at those of ``subset``): CSR,
        or a dense array when it is not sparse enough for sparse products to pay."""
        rows, n = self.rows, self.n
        if subset is None and self.all:
            return vals.reshape(rows, n)
        flat = self.flat if subset is None else self.index(subset)
        if flat.size > _DENSE_ROWS * rows * n:
            A = np.zeros(rows * n, dtype=vals.dtype)
            A[flat] = vals
            return A.reshape(rows, n)
        return csr_rows(flat, vals, rows, n)


class AttackPasses:
    """The attack's passes over the neurons ``W0`` that can change a sign, for radius R.

    A call ``(v, sign)`` chooses per-neuron pushes for the objective sign·vᵀΔHv and returns
    S'ᵀS' − SᵀS over these neurons, so H(W) = G ∘ (SᵀS of W(0) + returned change)/m; if
    ``moves`` (m × d) is given, the chosen pushes are written there (W = W0 + moves is the
    point of the ball tried).

    A push u (‖u‖ ≤ R) changes the sign of w·x_i only where |w·x_i| ≤ R‖x_i‖: the near
    entries, a small sparse set that :func:`ntkcheck.kernels.gram.sign_pass` returns with the signs.
    The sign pass depends on W0 and R only, so while its results fit the working-memory budget
    it is done once and shared by every call (an attack makes 3 × iterations calls). Everything after it
    works on the near set: the objective of neuron k is ‖z_k‖² with z_k = Σ_i v_i s_ik x_i, one
    dense product (rows × n × d) for all z_k, and a push changes it by 2 z_k·δz_k + ‖δz_k‖²,
    δz_k summed over the signs it changes. Two pushes are tried per neuron, towards the most
    profitable single flip (its effect on every near entry read off X Xᵀ) and along the
    gain-weighted combination of the profitable flips (one product). Choosing the pushes is a
    heuristic and runs in float32; what is returned is exact: the new values of the near
    entries are known within the float32 rounding bound, and those within it of 0 are
    recomputed in float64 (as ``sign_pass`` does), so the signs are those of the float64
    product for the W tried, and S'ᵀS' − SᵀS = DᵀS + SᵀD + DᵀD (D = S' − S) is an integer
    matrix formed from the few signs that changed.
    """

    def __init__(self, X: np.ndarray, G: np.ndarray, W0: np.ndarray, R: float, working_memory_mb: float,
                 keep: bool = True):
        self.X, self.G, self.W0, self.R = X, G, W0, R
        require_safe_rows(X, "X")
        require_safe_rows(W0, "W0")
        n = X.shape[0]
        m, d = W0.shape
        self.X32 = X.astype(np.float32)
        self.gdiag = np.diag(G).copy()
        self.xmax = float(np.sqrt(self.gdiag.max()))
        # z_k lives in the span of the inputs: any F with F Fᵀ = X Xᵀ gives the same objective,
        # and for d > n one with n columns is cheaper
        self.F = X if d <= n else np.linalg.qr(X.T, mode="r").T
        self.F32 = self.F.astype(np.float32)
        self.Rm = R * (1.0 - 8 * _EPS)  # push length: ‖u‖ ≤ R after rounding
        self.reach = self.Rm * np.sqrt(self.gdiag)  # how far a push can move w·x_i
        # per entry of a chunk a call holds S and, for each near entry, its index, value, gain
        # and push terms: the chunk is sized for a sparse near set, so a wide ball (most entries
        # near) can exceed the budget in that pass
        chunk = max(1, min(m, chunk_rows(n, working_memory_mb, bytes_per_entry=64), 1 << 23))
        self.threads = work_threads(n, chunk)
        self.slices = list(neuron_slices(m, chunk))
        # with ``keep``, the sign passes are kept for every call while they fit the budget
        self.cached: list | None = [] if keep else None
        held = 0
        for sl in self.slices if keep else ():
            state = self._signs(sl, np.empty((sl.stop - sl.start, n), dtype=np.float32))
            if state is not None:  # what it holds: every array but Wc (a view of W0)
                held += sum(x.nbytes for key, x in state.items() if key != "Wc" and hasattr(x, "nbytes"))
            if held > working_memory_mb * 2**20:
                self.cached = None
                break
            self.cached.append(state)
        self.S = np.empty((min(m, chunk), n), dtype=np.float32) if self.cached is None else None

    def _signs(self, sl: slice, Sc: np.ndarray) -> dict | None:
        """The sign pass of a chunk into ``Sc`` and what the calls need of it (None: nothing
        is near)."""
        Wc = self.W0[sl]
        rows, d = Wc.shape
        n = self.X.shape[0]
        wmax = _max_norm(Wc)
        # beyond R‖x‖ plus the float64 rounding of w·x before and after the push, no sign moves
        slack = 4 * (d + 2) * _EPS * (wmax + self.R) * self.xmax
        tau0 = float32_error_bound(Wc, self.X, wmax)  # (the sign pass's bound: it is given it)
        with single_blas(self.threads):
            flat, a0 = sign_pass(Wc, self.X, self.X32, Sc, radius=self.R * self.xmax + slack,
                                 threads=self.threads, values=True, tau=tau0)
        if flat.size == 0:
            return None
        near = _Near(flat, a0, rows, n)
        s0 = near.of(Sc).astype(np.float64)  # (arithmetic, not np.where: the signs are random)
        dsg = 1.0 - 2.0 * s0  # +1: the sign is off, a push along x_i turns it on; −1: on
        return dict(Wc=Wc, Sc=Sc, near=near, on=s0 > 0, dsg=dsg,
                    p0=-dsg * near.a,  # w·x (±∞ for entries no push reaches)
                    # a push of length R cannot flip these (nor anything of an input x = 0)
                    far=(near.a > near.col(self.reach)) | near.col(self.reach == 0),
                    tau0=float(tau0), slack=slack)

    def __call__(self, v: np.ndarray, sign: float, moves: np.ndarray | None = None) -> np.ndarray:
        n = self.X.shape[0]
        vF32 = (v[:, None] * self.F).astype(np.float32)
        acc, dd, inputs = None, [], []
        for j, sl in enumerate(self.slices):
            c = self.cached[j] if self.cached is not None else self._signs(sl, self.S[: sl.stop - sl.start])
            if c is None:
                if moves is not None:
                    moves[sl] = 0.0
                continue
            best_U, DS, DD, changed = self._chunk(v, vF32, sign, **c)
            if moves is not None:
                moves[sl] = best_U
            if DS is not None:
                acc = DS if acc is None else np.add(acc, DS, dtype=np.float64)  # float64 across chunks
                dd.append(DD)
                inputs.append(changed)
        # the change has rows and columns only at these inputs (see eig.bordered_extremes)
        self.inputs = np.unique(np.concatenate(inputs)) if inputs else np.zeros(0, dtype=np.intp)
        out = np.zeros((n, n))
        if acc is not None:
            np.add(acc, acc.T, out=out)
        for DD in dd:
            if isinstance(DD, np.ndarray):
                out += DD
            else:
                out[DD.row, DD.col] += DD.data  # (row, col) pairs are distinct
        return out

    def _chunk(self, v, vF32, sign, Wc, Sc, near, on, dsg, p0, far, tau0, slack):
        """One chunk: (pushes, DᵀS, DᵀD, the inputs of the changed signs) with D = S' − S
        (None, None, None if no sign changed)."""
        X, X32, G, F, Rm, gdiag = self.X, self.X32, self.G, self.F, self.Rm, self.gdiag
        rows, d = Wc.shape
        n = X.shape[0]
        Z = Sc @ vF32  # z_k, rows × (d or n)
        Z64 = Z.astype(np.float64)
        vi = near.col(v)
        # gain of flipping sign (k, i) alone: sign·(2 d_i v_i z_k·x_i + v_i² ‖x_i‖²)
        g = near.dots(Z, self.F32)
        g *= 2 * dsg * vi
        g += vi * vi * near.col(gdiag)
        g *= sign
        g[far] = -np.inf
        top, b = near.best(g)
        has = np.isfinite(top)
        # push 1: u_k = Rm d_j x_j/‖x_j‖ towards the best single flip j; u_k·x_i = coef_k G_ji
        jb = b % n
        coef1 = np.where(has, np.where(Sc.ravel()[b] > 0, -Rm, Rm) / np.sqrt(np.where(has, gdiag[jb], 1.0)), 0.0)
        U1 = coef1[:, None] * X[jb]
        du1 = near.row(coef1) * near.of(G, by_row=jb)
        # push 2: along Σ_i max(gain_i, 0) d_i x_i, normalised to length Rm
        U2 = np.asarray(near.matrix(np.maximum(g, 0) * dsg) @ X)
        nu2 = np.linalg.norm(U2, axis=1)
        ok2 = has & (nu2 > 0)
        U2 *= np.where(ok2, Rm / np.where(nu2 > 0, nu2, 1.0), 0.0)[:, None]
        du2 = near.dots(U2, X32)
        tau2 = float(float32_error_bound(U2, X))
        best_gain = np.zeros(rows)
        choice = np.zeros(rows, dtype=np.int8)
        for c, (ok, du) in enumerate(((has, du1), (ok2, du2)), start=1):
            flips = ((p0 + du) >= 0) != on
            flips &= near.row(ok)
            e = np.flatnonzero(flips)
            dz = np.asarray(near.matrix(vi[e] * dsg[e], subset=e) @ F)
            val = sign * (2 * np.einsum("kj,kj->k", Z64, dz) + np.einsum("kj,kj->k", dz, dz))
            better = ok & (val > best_gain)
            best_gain[better] = val[better]
            choice[better] = c
        best_U = np.zeros((rows, d))
        for c, U in ((1, U1), (2, U2)):
            best_U[choice == c] = U[choice == c]
        ce = near.row(choice)
        moved = np.flatnonzero(ce > 0)
        if moved.size == 0:
            return best_U, None, None, None
        # the W tried: new values of its near entries, exact signs (float64 within the bound)
        c1 = ce[moved] == 1
        q = p0[moved] + (du1[moved] * c1 + du2[moved] * ~c1)  # x·1 + y·0 = x exactly
        pos = q >= 0
        unsure = np.abs(q) <= 2 * (tau0 + tau2) + slack
        if unsure.any():
            pos[unsure] = exact_entries(Wc + best_U, X, near.index(moved[unsure]), n) >= 0
        ch = moved[pos != on[moved]]
        if ch.size == 0:
            return best_U, None, None, None
        # S' = S + D with D = ±1 on the changed signs: S'ᵀS' − SᵀS = DᵀS + SᵀD + DᵀD, integers
        # (|entries| ≤ 2·chunk ≤ 2^24, exact in float32)
        D = near.matrix(dsg[ch].astype(np.float32), subset=ch)
        DS = np.asarray(D.T @ Sc)  # n × n: DᵀS, a row of S per changed sign
        DD = D.T @ D
        return best_U, DS, (DD.tocoo() if hasattr(DD, "tocoo") else DD), near.index(ch) % n  # (sparse: as COO)


def attack_pass(X: np.ndarray, G: np.ndarray, W0: np.ndarray, R: float, v: np.ndarray,
                 sign: float, working_memory_mb: float, moves: np.ndarray | None = None) -> np.ndarray:
    """One pass of the attack (see :class:`AttackPasses`), its sign pass included."""
    return AttackPasses(X, G, W0, R, working_memory_mb, keep=False)(v, sign, moves)


def _repeats(change: np.ndarray, inputs: np.ndarray, last: tuple | None) -> bool:
    """Whether a pass chose the same count change S'ᵀS' − SᵀS, at the same inputs, as the pass
    before it in the same search: then H(W) is the same matrix and the eigensolves see the same
    arguments, so they return what was already found and recorded, the next pass starts from
    the same vector, and every later iteration of the search repeats too (a pass is a function
    of its vector and sign). The search has reached a fixed point and stops: what it reports
    is what iterating on would report, bit for bit (the pushes may differ where two change the
    same signs, but a point is kept only when it improves a figure strictly, which a repeat
    cannot). Where few signs can change, the first pass usually finds the change that every
    later one repeats."""
    return last is not None and np.array_equal(inputs, last[1]) and np.array_equal(change, last[0])


@dataclass
class Attack:
    norm_dH: float  # largest ‖H(W) − H(W(0))‖₂ found
    lam_min: float  # smallest λ_min(H(W)) found
    #: with keep_points: the W of the ball reaching each figure (W(0) itself when nothing beat it)
    W_norm: np.ndarray | None = None
    W_lam_min: np.ndarray | None = None


def attack(X: np.ndarray, W0: np.ndarray, R: float, cert: Certificate, iterations: int,
           working_memory_mb: float, keep_points: bool = False, grams: InputGrams | None = None) -> Attack:
    """Search the ball for large ‖ΔH‖₂ and small λ_min(H(W)) (lower/upper bounds). With
    ``keep_points`` the W reaching each value is kept too (a replay's evidence: H(W) can be
    recomputed from it by any independent code). ``grams``: X's Gram matrices for m = len(W0)
    if a run formed them (:class:`~ntkcheck.kernels.gram.InputGrams`)."""
    require_radius(R, "attack")
    m = W0.shape[0]
    grams = InputGrams.given(grams, X, m)
    G = grams.G
    Gs = grams.Gs  # as certificate_matrices forms H0 = Gs ∘ SᵀS: ΔH is exactly 0 unmoved
    H0 = cert.H0
    best_norm = 0.0
    best_min = cert.lam_min_H0  # W = W(0) is in the ball
    kept = {"norm": W0, "min": W0} if keep_points else None
    if iterations <= 0 or R <= 0 or cert.active.size == 0:
        return Attack(best_norm, best_min, *(kept.values() if kept else (None, None)))
    push = AttackPasses(X, G, W0[cert.active], R, working_memory_mb)
    moves = np.zeros((cert.active.size, W0.shape[1])) if keep_points else None

    def point() -> np.ndarray:  # W(0) with the pushes of the last pass on the neurons that can move
        W = W0.copy()
        W[cert.active] += moves
        return W

    # λ_min first: its own search sets best_min, below which the norm searches' points rarely
    # reach, so that most of their λ_min need only a test (see below), not an eigensolve
    v = cert.v_min_H0
    last = None
    for it in range(iterations):
        change = push(v, -1.0, moves)
        if _repeats(change, push.inputs, last):
            break
        last = change, push.inputs
        H = Gs * (cert.SS + change)
        if it + 1 < iterations:
            w0, v = eigenvalue_at(H, 0, vector=True)
        else:  # (the last vector would steer no further pass)
            w0 = eigenvalue_at(H, 0)
        lo, hi, _ = bordered_extremes(H - H0, push.inputs)  # symmetric: its 2-norm is its largest |eigenvalue|
        if kept is not None and w0 < best_min:
            kept["min"] = point()
        if kept is not None and max(-lo, hi) > best_norm:
            kept["norm"] = point()
        best_min = min(best_min, w0)
        best_norm = max(best_norm, -lo, hi)
    for sign in (1.0, -1.0):  # raise, then lower, vᵀΔHv
        v = cert.v_perron
        last = None
        for _ in range(iterations):
            change = push(v, sign, moves)
            if _repeats(change, push.inputs, last):
                break
            last = change, push.inputs
            dH = Gs * change
            lo, hi, v = bordered_extremes(dH, push.inputs, vector_at_top=sign > 0)
            if kept is not None and max(abs(lo), abs(hi)) > best_norm:
                kept["norm"] = point()
            best_norm = max(best_norm, abs(lo), abs(hi))
            H = H0 + dH
            if not may_lie_below(H, best_min + cert.tol):  # (cert.tol: the allowance on H0's and E's eigenvalues)
                continue
            lmin = eigenvalue_at(H, 0)
            if kept is not None and lmin < best_min:
                kept["min"] = point()
            best_min = min(best_min, lmin)
    return Attack(best_norm, best_min, *(kept.values() if kept else (None, None)))
