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
    s_sl, leaving = slide_steps(vals[:, ne:], bnds[:, ne:])
    v, vd, vdd = tr.v0 + vals[0, :ne], vals[1, :ne], vals[2, :ne]
    M2, M3 = bnds[0, :ne] * (1 + 1e-12) + 1e-300, bnds[1, :ne] * (1 + 1e-12) + 1e-300
    tiny = 1e-13 * bnds[2, :ne]
    s2 = (vd + np.sqrt(vd * vd + 2 * M2 * np.maximum(v, 0.0))) / M2
    up = vd >= -tiny
    sd = np.where(up, (vdd + np.sqrt(np.maximum(vdd * vdd + 2 * M3 * np.maximum(vd, 0.0), 0.0))) / M3, 0.0)
    away = (vd > 0) | (up & (vdd > 0))
    near = v <= tr.zeta
    lost = False
    if fresh:
        # entries that just left a kink through a sliding weight at 0 or 1: v′ is as small as
        # the weight was when it was declared 0 (≈ 10⁻¹²), v″ says where they go
        isf = np.isin(tr.codes, np.fromiter(fresh, dtype=int))
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


def slide_steps(vals: np.ndarray, bnds: np.ndarray):
    """Sliding weights f ≥ 0 (rows 1, 2 of vals: f, f′; 1, 2 of bnds: |f″| ≤ M, scale)."""
    f, fd = vals[1], vals[2]
    M = bnds[1] * (1 + 1e-12) + 1e-300
    s = (fd + np.sqrt(fd * fd + 2 * M * np.maximum(f, 0.0))) / M
    leaving = (f <= 1e-12 * bnds[2] + 1e-300) & (fd <= 0)
    return s, leaving
