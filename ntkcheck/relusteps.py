"""Certified steps within one linear mode of the exact ReLU flow (:mod:`ntkcheck.reluflow`):
for every followed entry and sliding weight, a step that provably crosses no kink, from the
closed form of the mode and bounds on its derivatives over [τ, ∞); and the chase of the
leading row alone towards its kink."""
from __future__ import annotations

import math

import numpy as np

from .relumode import Mode, Track

#: steps along the leading row alone before the next pass over all rows
CHASE = 16

_NO_WEIGHTS = np.zeros(0, dtype=bool)  # (an event at which no sliding weight leaves)
_NONE = np.zeros(0, dtype=np.intp)  # (no row)


def _up(vd, b2):
    """v′ ≥ 0 up to rounding (b2 = |e^{−λτ}q|·|F| bounds the size of v′'s terms)."""
    return vd >= -1e-13 * b2


def _away(vd, vdd, up):
    """An entry on its kink leaves it: moving away (v′ > 0), or about to (v′ ≈ 0, v″ > 0).
    (v′ > 0 implies ``up``, v′ ≥ 0 up to rounding, so this is up ∧ (v′ > 0 ∨ v″ > 0).)"""
    return up & (np.maximum(vd, vdd) > 0)


def _floor(b):
    """θ = 10⁻¹²·b + 10⁻³⁰⁰, a sliding weight's 0 when b bounds the size of its terms."""
    th = b * 1e-12
    th += 1e-300
    return th


def _leaves(f, fd, th):
    """A sliding weight reaches 0 (f ≤ θ, θ from :func:`_floor`) and is not rising."""
    return (f <= th) & (fd <= 0)


def _fresh_rows(tr: Track, fresh: set[int]) -> np.ndarray:
    """Which of the track's entries are in ``fresh`` (codes k·n + i; a few at a time)."""
    fc = np.fromiter(fresh, dtype=int, count=len(fresh))
    return (tr.codes[:, None] == fc).any(axis=1) if fc.size <= 8 else np.isin(tr.codes, fc)


def steps(md: Mode, tau: float, tr: Track, fresh: set[int], buf: np.ndarray):
    """For each followed entry, a step that provably keeps it off its kink (v > ζ, or v not
    decreasing), and whether it arrives at its kink now (see :mod:`ntkcheck.reluflow`); for
    each sliding weight, a step that keeps it above the threshold at which it leaves, and
    whether it leaves now. Returns (s, arriving, v′, leaving, lost): s holds the entries'
    steps, then the weights' (the track's columns: one product serves both); ``lost`` says
    whether an entry released tangentially is no longer resolved (degenerate). ``buf`` is a
    (7, n) work array. ``tr.last`` keeps, for :func:`arrival`, which rows are not kept off their
    kink or threshold by their steps: those within twice of it here (and not idle)."""
    q = md.q
    ne = tr.codes.size
    # buf's rows: φq, e^{−λτ}q, −λe^{−λτ}q | |λ|·g, λ²·g, |e^{−λτ}q|, g (g bounds |e^{−λσ}q|, σ ≥ τ)
    if tau == 0.0:  # (at the start of a mode: e^{−λ0} = 1 and φ(0) = 0 exactly, Mode.start)
        buf[:] = md.start
    else:
        E = np.exp(md.neg_lams * tau)  # e^{−λτ}, e^{−λ⁺τ}
        np.multiply(E[0], q, out=buf[1])
        np.multiply(E[1], md.grow_q, out=buf[6])
        np.multiply(md.phi(tau), q, out=buf[0])
        np.abs(buf[1], out=buf[5])
        md.fill_rows(buf)
    vals = buf[:3] @ tr.FvT
    bnds = buf[3:] @ tr.aFT
    vals[0, :ne] += tr.v0
    v, vd, vdd = vals[0, :ne], vals[1, :ne], vals[2, :ne]
    f, fd = vals[1, ne:], vals[2, ne:]
    b2 = bnds[2, :ne]
    near = v <= tr.zeta
    up = _up(vd, b2)
    away = _away(vd, vdd, up)
    idle = b2 == 0  # the entry's velocity is 0 in this mode (e.g. its neuron is off), or it slides
    idle |= tr.sl
    # a sliding weight leaves at f ≤ 1e-12·(|e^{−λτ}q|·|F|) + 1e-300, which is ≤ θ = 1e-12·(g·|F|) + 1e-300
    # from here on (th's rows)
    th = _floor(bnds[2:, ne:])
    leaving = _leaves(f, fd, th[0])
    # one quadratic bound for all: (A + √(A² + 2M·max(B, 0)))/M, the largest s with B + As − Ms²/2 ≥ 0.
    # Row 0 for the entries: B = v − ζ, A = v′, M = M₂ ≥ |v″|; row 1 for the entries: B = v′, A = v″,
    # M = M₃ ≥ |v‴|, and for the sliding weights: B = f − θ, A = f′, M ≥ |f″| (their row 0 is unused).
    # Rows above twice their threshold (v > 2ζ, f > 2θ) are so kept above it, so that arrival need not
    # look at them; the others aim at 0 (B = v, f), below the threshold, so that they reach it in
    # finitely many steps (aiming at ζ itself, v would creep up on ζ in ever smaller steps)
    # (v − ζ·clear and f − θ·high: ζ, θ are finite, and an unmasked ufunc costs a fraction of a masked one)
    clear = v > tr.zeta2
    v -= tr.zeta * clear
    theta = th[1]
    high = f > 2 * theta
    theta *= high
    f -= theta
    A, B, M = vals[1:3], vals[:2], bnds[:2]
    M *= 1 + 1e-12
    M += 1e-300
    # (A + R)/M with R = √(A² + 2M·B⁺) cancels where A < 0 and MB ≪ A² (a row creeping up on its
    # kink): there the same root is 2B⁺/(R − A), without cancellation
    Bp2 = np.maximum(B, 0.0)
    Bp2 *= 2  # 2B⁺ (doubling is exact: 2B⁺·M = 2(B⁺M))
    R = Bp2 * M
    R += A * A
    np.sqrt(R, out=R)
    Q = np.where(A >= 0, (A + R) / M, Bp2 / (R - A + 1e-300))
    # the entries' steps: max(Q₀, Q₁) where up, else Q₀ (Q ≥ 0: √(A² + 2M·B⁺) ≥ |A|)
    Q0, Q1 = Q[0, :ne], Q[1, :ne]
    lost = False
    if fresh:
        # entries that just left a kink through a sliding weight at 0 or 1: v′ is as small as
        # the weight was when it was declared 0 (≈ 10⁻¹²), v″ says where they go
        M3 = M[1, :ne]
        isf = _fresh_rows(tr, fresh)
        fr = isf & near
        Q1[fr] = 2 * np.maximum(vdd[fr], 0.0) / M3[fr]
        up = up | fr
        away |= fr
        grazing = fr & (vdd <= 0)  # released tangentially: where it goes is not resolved
        lost = bool(np.count_nonzero(grazing))
        if lost:
            Q1[grazing] = np.inf
        fresh.difference_update(tr.codes[isf & ~near].tolist())
    np.maximum(Q0, np.where(up, Q1, 0.0), out=Q0)
    Q0[idle] = np.inf
    Q1[:] = Q0
    s = Q[1]  # (the track's columns: the entries', then the sliding weights' Q₁)
    away |= idle
    arriving = near > away  # (booleans: near and not away, not idle)
    # near but not arriving (moving away), or low but not leaving: a step does not keep them
    # off their kink or threshold, so arrival looks at them again (found there, when needed)
    tr.last = (clear, idle, high)
    return s, arriving, vd, leaving, lost


def chase(md: Mode, tau: float, tr: Track, s: np.ndarray, lead: int, step: float, limit: float,
          fresh: set[int], buf: np.ndarray) -> tuple[float, int]:
    """How far to advance from τ: at least ``step`` (certified for every row by
    :func:`steps`), and further along the leading row alone while it approaches its kink,
    up to where the next row's certified step ends, and short of ``limit`` (the next sample
    time or refresh, which the main loop reaches itself). The leader's own step
    at each point is the same quadratic bound as in :func:`steps`, valid from there on,
    so every advance stays certified; at the point reached the event is found by
    :func:`arrival` or by the next pass. This saves the all-rows passes of the quadratic
    convergence towards a kink. Returns the advance, and the leader's column when it has
    reached its kink (an entry) or threshold (a sliding weight) there (else −1); then buf's
    rows 0 and 1 hold φ(x) and e^{−λx} there."""
    if s.size < 2:  # (s: the track's columns, the entries then the sliding weights)
        return step, -1
    first = s[lead]  # (lead: s's smallest, the caller's argmin)
    s[lead] = np.inf  # (the second smallest step: the smallest of the others; s is restored)
    other = float(s[s.argmin()])
    s[lead] = first
    ne = tr.codes.size
    entry = lead < ne
    if min(limit, other) <= step or (entry and (tr.sl[lead] or int(tr.codes[lead]) in fresh)):
        return step, -1
    F, aF, q = tr.FvT[:, lead], tr.aFT[:, lead], md.q
    # per point x only e^{−λx} and e^{−λ⁺x} change: qF = q ∘ F, and the bound's weights
    # (|λ| or λ²) ∘ (grow·|q|) ∘ |F| (see steps) are formed once
    qF = q * F
    wM = md.start[3 if entry else 4] * aF  # (|λ|·g or λ²·g, formed with the mode)
    v0, zeta = (float(tr.v0[lead]), float(tr.zeta[lead])) if entry else (0.0, 0.0)
    Y = np.empty((2, q.size))  # −λx, −λ⁺x (φ(x) from its first row, as Mode.phi forms it)
    acc = step
    for _ in range(CHASE):
        x = tau + acc
        np.multiply(md.neg_lams, x, out=Y)
        E = np.exp(Y)  # e^{−λx}, e^{−λ⁺x}
        M = float(E[1] @ wM) * (1 + 1e-12) + 1e-300
        if entry:
            ph = md.phi(x, Y[0])
            v, vd = v0 + float(ph @ qF), float(E[0] @ qF)
            done = v <= zeta
        else:
            v, vd = float(E[0] @ qF), float((md.neg_lam * E[0]) @ qF)
            done = v <= 1e-12 * float(np.abs(E[0] * q) @ aF) + 1e-300
        if done or vd >= 0:  # there (arrival or the next pass decides the event), or not approaching
            if done:
                buf[0], buf[1] = (ph if entry else md.phi(x, Y[0])), E[0]
                return acc, lead
            return acc, -1
        R = math.sqrt(vd * vd + 2 * M * max(v, 0.0))
        acc += (vd + R) / M if vd >= 0 else 2 * max(v, 0.0) / (R - vd)  # (as in steps)
        if acc >= min(limit, other):
            return (other if other < limit else step), -1
    return acc, -1


def arrival(md: Mode, tr: Track, lead: int, buf: np.ndarray, fresh: set[int]):
    """The pass of :func:`steps` at the point x where the chase has brought the row ``lead``
    (an entry or a sliding weight) to its kink or threshold, when nothing else happens there:
    every other row is kept off its kink or threshold by its step from the last pass (the
    chase stops short of those), except the few that were within twice their threshold at the
    last pass (``tr.last``), which are evaluated here with the leader. Returns the event as the
    pass would decide it — (arriving, leaving): [(k, i, v′)] and no leaving weight for an
    entry, [] and the leader's mark for a weight — if the leader arrives or leaves and nothing
    else happens at x; else None, and the full pass decides. Entries just released from a kink
    (``fresh``, see :func:`steps`) are taken as the pass takes them: on their kink at x they do
    not arrive, one that grazes it is left to the pass (which records it), and the others are
    dropped from ``fresh`` when the event is returned. Expects φ(x) and e^{−λx} in buf's rows 0
    and 1 (from the chase); leaves φ(x) ∘ q and e^{−λx} ∘ q there."""
    clear, idle, high = tr.last
    near = (~(clear | idle)).nonzero()[0]  # (none of them arriving at the last pass: no event there)
    low = (~high).nonzero()[0] if np.count_nonzero(high) < high.size else _NONE  # (nearly always none)
    q = md.q
    buf[0] *= q
    buf[1] *= q
    np.multiply(md.neg_lam, buf[1], out=buf[2])
    np.abs(buf[1], out=buf[5])
    ne, n = tr.codes.size, q.size
    weight = lead >= ne
    isf = None
    if fresh:
        isf = _fresh_rows(tr, fresh)
        if np.count_nonzero(isf & idle):  # (not evaluated here: the pass decides)
            return None
    if weight:  # the leader first, then the other weights within 2θ at the last pass
        low = np.concatenate(([lead - ne], low[low != lead - ne]))
    if low.size:  # a weight leader must leave at x, the other weights not
        FA = tr.FA[:, ne + low]
        Fs, aFs = FA[:n], FA[n:]
        leaves = _leaves(buf[1] @ Fs, buf[2] @ Fs, _floor(buf[5] @ aFs))
        if weight and not leaves[0] or np.count_nonzero(leaves[weight:]):
            return None
    # an entry leader must arrive (on its kink, not leaving it, as steps decides), the others not
    cols = near if weight else np.concatenate(([lead], near))
    if cols.size:
        FA = tr.FA[:, cols]
        F, aF = FA[:n], FA[n:]
        v, vd, vdd = buf[0] @ F + tr.v0[cols], buf[1] @ F, buf[2] @ F
        on = v <= tr.zeta[cols]
        away = _away(vd, vdd, _up(vd, buf[5] @ aF))
        if isf is not None:
            fr = isf[cols] & on  # (fresh and on their kink: they leave it, as steps decides)
            if np.count_nonzero(fr & (vdd <= 0)):  # (one grazes: degenerate, which the pass records)
                return None
            away |= fr
        arriving = on & ~away
        if not weight and not arriving[0] or np.count_nonzero(arriving[1 - weight:]):
            return None
    if isf is not None:  # the pass drops from fresh the followed entries off their kink at x
        off = isf.copy()
        if cols.size:
            off[cols[fr]] = False
        fresh.difference_update(tr.codes[off].tolist())
    if weight:
        mark = np.zeros(tr.FA.shape[1] - ne, dtype=bool)
        mark[lead - ne] = True
        return [], mark
    k, i = divmod(int(tr.codes[lead]), n)
    return [(k, i, float(vd[0]))], _NO_WEIGHTS
