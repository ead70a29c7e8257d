"""Certified steps within one linear mode of the exact ReLU flow (:mod:`ntkcheck.reluflow`):
for every followed entry and sliding weight, a step that provably crosses no kink, from the
closed form of the mode and bounds on its derivatives over [τ, ∞); and the chase of the
leading row alone towards its kink."""
from __future__ import annotations

import numpy as np

from .relumode import Mode, Track

#: steps along the leading row alone before the next pass over all rows
CHASE = 16


def steps(md: Mode, tau: float, tr: Track, fresh: set[int], buf: np.ndarray):
    """For each followed entry, a step s that provably crosses no kink, and whether it
    arrives at its kink now (see :mod:`ntkcheck.reluflow`); for each sliding weight, the same
    with whether it leaves now (reaches 0). One product serves both: the track's rows are
    the entries' then the sliding weights'. ``buf`` is a (6, n) work array. The last value
    returned says whether an entry released tangentially is no longer resolved (degenerate)."""
    q = md.q
    # buf's rows: φq, e^{−λτ}q, −λe^{−λτ}q | |λ|·g, λ²·g, |e^{−λτ}q| (g bounds |e^{−λσ}q|, σ ≥ τ)
    np.multiply(np.exp(md.neg_lam * tau), q, out=buf[1])
    g = np.exp(md.neg_lam_pos * tau) * md.grow_q
    np.multiply(md.phi(tau), q, out=buf[0])
    np.multiply(md.neg_lam, buf[1], out=buf[2])
    np.multiply(md.abs_lam, g, out=buf[3])
    np.multiply(md.lam2, g, out=buf[4])
    np.abs(buf[1], out=buf[5])
    vals = buf[:3] @ tr.FvT
    bnds = buf[3:] @ tr.aFT
    ne = tr.codes.size
    vals[0, :ne] += tr.v0
    # one quadratic bound for all: (A + √(A² + 2M·max(B, 0)))/M, the largest s with B + As − Ms²/2 ≥ 0.
    # Row 0 for the entries: B = v, A = v′, M = M₂ ≥ |v″|; row 1 for the entries: B = v′, A = v″,
    # M = M₃ ≥ |v‴|, and for the sliding weights: B = f, A = f′, M ≥ |f″| (row 0 of theirs is unused)
    A, B = vals[1:3], vals[:2]
    M = bnds[:2] * (1 + 1e-12) + 1e-300
    Q = (A + np.sqrt(A * A + 2 * M * np.maximum(B, 0.0))) / M
    s_sl = Q[1, ne:]
    leaving = (vals[1, ne:] <= 1e-12 * bnds[2, ne:] + 1e-300) & (vals[2, ne:] <= 0)
    v, vd, vdd = vals[0, :ne], vals[1, :ne], vals[2, :ne]
    M3 = M[1, :ne]
    s2 = Q[0, :ne]
    up = vd >= -1e-13 * bnds[2, :ne]
    sd = np.where(up, Q[1, :ne], 0.0)
    away = (vd > 0) | (up & (vdd > 0))
    near = v <= tr.zeta
    lost = False
    if fresh:
        # entries that just left a kink through a sliding weight at 0 or 1: v′ is as small as
        # the weight was when it was declared 0 (≈ 10⁻¹²), v″ says where they go
        fc = np.fromiter(fresh, dtype=int, count=len(fresh))
        isf = (tr.codes[:, None] == fc).any(axis=1) if fc.size <= 8 else np.isin(tr.codes, fc)
        fr = isf & near
        sd = np.where(fr, 2 * np.maximum(vdd, 0.0) / M3, sd)
        away |= fr
        grazing = fr & (vdd <= 0)  # released tangentially: where it goes is not resolved
        lost = bool(grazing.any())
        if lost:
            sd = np.where(grazing, np.inf, sd)
        fresh.difference_update(tr.codes[isf & ~near].tolist())
    static = bnds[2, :ne] == 0  # the entry's velocity is 0 in this mode (e.g. its neuron is off)
    s = np.where(tr.sl | static, np.inf, np.maximum(s2, np.maximum(sd, 0.0)))
    arriving = ~tr.sl & ~static & near & ~away
    return s, arriving, vd, s_sl, leaving, lost


def chase(md: Mode, tau: float, tr: Track, s: np.ndarray, s_sl: np.ndarray, step: float, limit: float,
          fresh: set[int]) -> float:
    """How far to advance from τ: at least ``step`` (certified for every row by
    :func:`steps`), and further along the leading row alone while it approaches its kink,
    up to where the next row's certified step ends, and short of ``limit`` (the next sample
    time or refresh, which the main loop reaches itself). The leader's own step
    at each point is the same quadratic bound as in :func:`steps`, valid from there on,
    so every advance stays certified; the pass at the point reached then finds the event.
    This saves the all-rows passes of the quadratic convergence towards a kink."""
    both = np.concatenate([s, s_sl])  # the track's columns: the entries, then the sliding weights
    if both.size < 2:
        return step
    lead = int(np.argmin(both))
    other = float(np.partition(both, 1)[1])
    ne = tr.codes.size
    entry = lead < ne
    if min(limit, other) <= step or (entry and (tr.sl[lead] or int(tr.codes[lead]) in fresh)):
        return step
    F, aF, q = tr.FvT[:, lead], tr.aFT[:, lead], md.q
    acc = step
    for _ in range(CHASE):
        x = tau + acc
        eq = np.exp(md.neg_lam * x) * q
        g = np.exp(md.neg_lam_pos * x) * md.grow_q
        if entry:
            v, vd = float(tr.v0[lead] + (md.phi(x) * q) @ F), float(eq @ F)
            M = float((md.abs_lam * g) @ aF) * (1 + 1e-12) + 1e-300
            done = v <= tr.zeta[lead]
        else:
            v, vd = float(eq @ F), float((md.neg_lam * eq) @ F)
            M = float((md.lam2 * g) @ aF) * (1 + 1e-12) + 1e-300
            done = v <= 1e-12 * float(np.abs(eq) @ aF) + 1e-300
        if done or vd >= 0:  # there (the pass decides the event), or not approaching
            break
        acc += (vd + np.sqrt(vd * vd + 2 * M * max(v, 0.0))) / M
        if acc >= min(limit, other):
            return other if other < limit else step
    return acc

