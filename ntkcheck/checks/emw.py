"""What the checks of the neural-network-against-random-features family ([EMW]; the notes'
Lemmas 4.4, 4.5 and Theorems 4.2, 4.6) share: Lemma 4.3's model and data, a grid over the
width m (at the largest n) and over the number of points n (at the largest m), the draw of
one trial, and the scaling rows' slopes in m and in n.

A trial draws its own data set x_i ~ ρ (uniform on S^{d−1}), y_i = f*(x_i), a_k(0) = ±c/m with
random signs and b_k(0) ~ π0, all from the trial's stream: the statements hold with
probability over data and initialisation together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
from pydantic import Field

from .. import data as data_mod
from ..dynamics import FlowOptions, Spectrum, integrate_flow
from ..errors import UserError
from ..models import NetworkWithTwin, TwoLayerNetwork
from ..rftwin import RFTwin
from ..scenario import Strict
from ..slopes import SlopeSample
from ..stats import SCALING, UNIVERSAL, ClaimRow
from ..targets import Target, build_target
from .base import DIVERGED, Check, Context, TrialResult, decided
from .thm41 import DEFAULT_TARGET, TargetSpec

_EPS = np.finfo(float).eps

__all__ = ["DEFAULT_TARGET", "FLOW_DEFAULT", "Draw", "EMWCheck", "EMWClaim", "EMWDynamics", "EMWGrid", "EMWNetwork",
           "EMWState", "FlowTrace", "TargetSpec", "draw", "emw_default", "fill_slopes", "finish_trial", "landed",
           "landing_index", "point_table", "prepare_state", "split_outcomes", "summarize_window", "train",
           "train_pair", "twin_risk_bound", "window", "window_control_rows", "window_flow"]


#: geometric times in the early-stopping window: √n/m · 2^(k/4), k = −80 … 0
WINDOW_STEPS = 80


def landed(times: np.ndarray, t: float) -> bool:
    """Whether the integrator's time t is one of ``times`` (it lands on checkpoints up to rounding)."""
    return bool(times.size) and float(np.min(np.abs(times - t))) <= 1e-9 * t


def landing_index(flow_t: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The indices of ``times`` (0 or checkpoints) among a flow's increasing times."""
    return np.searchsorted(flow_t, times * (1 - 1e-9))


def constant_row(axis: str, ratio: str, state: "EMWState", tol: float, more: str = "", **kw) -> ClaimRow:
    """The scaling row C_m or C_n: "``ratio`` does not grow with m (at n = the largest n)", or
    with n at the largest m; ``more`` continues the statement, ``kw`` go to the row."""
    at = f"n = {state.n_max}" if axis == "m" else f"m = {state.m_max}"
    return ClaimRow(f"C_{axis}", SCALING, f"{ratio} does not grow with {axis} (at {at}){more}", tolerance=tol, **kw)


def window(n: int, m: int) -> np.ndarray:
    """The times of Theorems 4.2 and 4.6's window (0, √n/m] on which the flow lands."""
    return math.sqrt(n) / m * 2.0 ** (np.arange(-WINDOW_STEPS, 1) / 4)


def emw_default(n: int, m: int, dynamics: dict, claim: dict) -> dict:
    """A default scenario of this family: sphere data in d = 5, the grids automatic, the
    default target; ``dynamics`` and ``claim`` are the check's own."""
    return {"seed": 0, "trials": "auto", "confidence": 0.95, "data": {"source": "sphere", "n": n, "d": 5},
            "network": {"m": m}, "grid": {"widths": "auto", "sizes": "auto"}, "target": DEFAULT_TARGET,
            "dynamics": dynamics, "claim": claim}


#: the flow options of the checks that integrate the joint flow
FLOW_DEFAULT = {"rtol": 1e-4, "min_step_fraction": 0.1, "max_steps": 200_000}


class EMWClaim(Strict):
    """The claim keys every check of this family has."""

    c: float = Field(0.01, gt=0.0, le=1e6, description="a_k(0) = ±c/m")
    slope_tolerance: float = Field(0.2, gt=0.0, le=10.0,
                                   description="scaling claims: slope of log Ĉ against log m (log n) at most this")
    permutations: int = Field(2000, ge=100, le=100_000,
                              description="random permutations of the slopes' exact permutation test")


class EMWNetwork(Strict):
    m: int = Field(2048, gt=1, le=1 << 16, description="largest width: the n-grid runs at this m")


class EMWGrid(Strict):
    widths: Union[Literal["auto"], list[int]] = Field(
        "auto", description="widths of the m-grid (at n = data.n); auto = 5 widths halving down from network.m "
                            "(not below data.n where the statement needs m ≥ n)")
    sizes: Union[Literal["auto"], list[int]] = Field(
        "auto", description="numbers of points of the n-grid (at m = network.m); auto = 5 halving down from data.n")


class EMWDynamics(Strict):
    rtol: float = Field(1e-4, gt=0.0, lt=1.0, description="local error tolerance, relative to ‖y − u‖")
    min_step_fraction: float = Field(0.1, gt=0.0, le=1.0, description="smallest step / stability cap")
    max_steps: int = Field(200_000, gt=0, le=10**8, description="most steps per trial")


@dataclass
class EMWState:
    """The target, the grid points (m, n) and the trials per point."""

    target: Target
    points: list[tuple[int, int]]
    widths: list[int]  # the m-grid, at n = n_max
    sizes: list[int]  # the n-grid, at m = m_max
    per: int

    @property
    def m_max(self) -> int:
        return max(self.widths)

    @property
    def n_max(self) -> int:
        return max(self.sizes)

    def point(self, index: int) -> tuple[int, int]:
        return self.points[(index // self.per) % len(self.points)]


@dataclass
class Draw:
    """One trial's data and initialisation."""

    X: np.ndarray
    y: np.ndarray
    a0: np.ndarray
    B0: np.ndarray
    Phi: np.ndarray  # σ(X B_0ᵀ), n × m


def _grid(key: str, given, top: int, low: int, auto_low: int | None = None) -> list[int]:
    if given == "auto":
        values = sorted({max(auto_low or low, top >> k) for k in range(5)})
        if len(values) < 2:
            raise UserError(f"the automatic '{key}' has one value ({values[0]}): give two or more, or a larger "
                            "largest value.")
        return values
    values = sorted(set(given))
    if any(v < low for v in values):
        raise UserError(f"scenario key '{key}' must hold values ≥ {low} (got {values}).")
    if len(values) < 2:
        raise UserError(f"scenario key '{key}' needs at least two values to fit a slope (got {values}).")
    if max(values) != top:
        raise UserError(f"scenario key '{key}' must end at {top} (its largest value is the other grid's "
                        f"fixed value; got {values}).")
    return values


def prepare_state(sc, name: str, per_auto: int, need_m_ge_n: bool = False) -> tuple[EMWState, dict]:
    """The grid and target of the scenario, refusing what the statements exclude."""
    if sc.data.source != "sphere":
        raise UserError(f"{name} draws a fresh data set uniform on the sphere in every trial (ρ of the "
                        f"statement); data.source must be sphere (got {sc.data.source}).")
    d = sc.data.d
    tg = build_target(sc.target, d)
    sup_f = tg.sup_abs_bound()
    if sup_f > 1:
        raise UserError(f"the target may exceed 1 in absolute value (sup|f*| ≤ {sup_f:.3g}), but the "
                        "statement assumes ‖f*‖∞ ≤ 1; scale the target's weights down.")
    sizes = _grid("grid.sizes", sc.grid.sizes, sc.data.n, 2)
    widths = _grid("grid.widths", sc.grid.widths, sc.network.m, 2, auto_low=sizes[-1] if need_m_ge_n else None)
    points = [(m, sizes[-1]) for m in widths] + [(widths[-1], n) for n in sizes[:-1]]
    if need_m_ge_n:
        bad = [(m, n) for m, n in points if m < n]
        if bad:
            m, n = bad[0]
            raise UserError(f"{name} needs m ≥ n (the theorem's condition), but the grid has m = {m} with "
                            f"n = {n}; raise network.m or grid.widths, or lower data.n.")
    per = per_auto if sc.trials == "auto" else sc.trials
    q = {"d": d, "widths": widths, "sizes": sizes, "trials_per_point": per, "gamma": tg.gamma,
         "sup_f_star_bound": sup_f}
    return EMWState(tg, points, widths, sizes, per), q


def draw(state: EMWState, m: int, n: int, c: float, rng: np.random.Generator) -> Draw:
    d = state.target.d
    X = data_mod.sample("sphere", n, d, rng)
    y = state.target(X)
    a0 = rng.choice(np.array([-1.0, 1.0]), size=m) * (c / m)
    B0 = data_mod.sample("sphere", m, d, rng)
    return Draw(X, y, a0, B0, np.maximum(X @ B0.T, 0.0))


def fill_slopes(row, state: EMWState, trials: list[TrialResult], key: str, axis: str, permutations: int,
                rng: np.random.Generator) -> None:
    """A scaling row's slope of the trials' ``key`` against m (axis "m", at n = n_max) or n
    (axis "n", at m = m_max). No slope when a grid point lost trials."""
    if axis == "m":
        grid, pts = state.widths, [(m, state.n_max) for m in state.widths]
    else:
        grid, pts = state.sizes, [(state.m_max, n) for n in state.sizes]
    groups = [[t.values[key] for t in trials if (t.values["m"], t.values["n"]) == p] for p in pts]
    row.measured = sum(len(g) for g in groups)
    if any(len(g) != state.per for g in groups):
        return
    vals = np.array(groups)
    if np.any(vals <= 0) or not np.all(np.isfinite(vals)):
        return
    row.slopes = SlopeSample.from_groups(np.array(grid, float), vals, permutations, rng)
    row.estimate = row.slopes.estimate
    row.figures.update({"slope": row.estimate, f"C_hat_per_{axis}": [float(f"{v:.6g}") for v in vals.max(axis=1)],
                        axis: list(grid)})


@dataclass
class FlowTrace:
    """The joint (a, B) gradient flow of one trial, sampled at every accepted step (t = 0
    first), beside its random-feature twin at the same times."""

    t: np.ndarray
    risk: np.ndarray  # R̂_n(a_t, B_t)
    a_gap: np.ndarray  # ‖a_t − ã_t‖
    a_twin: np.ndarray  # ‖ã_t‖
    B_norm: np.ndarray  # ‖B_t‖_F
    B_move: np.ndarray  # ‖B_t − B_0‖_F
    twin_risk: np.ndarray  # R̂_n(ã_t, B_0)
    error_theta: np.ndarray  # the integrator's error estimate for θ = (a, B)
    error_u: np.ndarray  # … and for the outputs u
    trusted: np.ndarray  # before any kink or floor step
    run: object
    kept: dict  # index into t → θ = (a, vec B), at the times train was asked to keep


def train(dr: Draw, twin, T: float, checkpoints, dyn, keep=()) -> FlowTrace:
    """Gradient flow on (a, B) jointly from (a_0, B_0) to T with the shared integrator
    (its step cap follows λ_max(JJᵀ/n), which grows like m), landing on ``checkpoints``; θ is
    kept at the times in ``keep`` (0, checkpoints or T: the integrator lands on them up to
    rounding)."""
    m = dr.a0.size
    net = TwoLayerNetwork(dr.X, dr.y, m)
    n = dr.X.shape[0]
    rec: dict[str, list] = {k: [] for k in ("t", "risk", "a_gap", "a_twin", "B_norm", "B_move", "twin_risk",
                                             "error_theta", "error_u", "trusted")}
    keep = np.asarray(sorted(keep), dtype=float)
    kept: dict[int, np.ndarray] = {}

    def monitor(p):
        a, B = net.split(p.theta)
        at = twin.a(p.t)
        # (‖B_t − B_0‖ and a_t − ã_t from the integrator's summed steps: at the window's first
        # checkpoints the one is ~10⁻¹⁴ beside entries of size 1, the other ~10⁻²⁰ beside entries
        # of size c/m, and formed from the states they carried the states' rounding: ~10⁻³ of the
        # one, up to 4× the other)
        if p.displacement is None:
            move, gap = 0.0, 0.0
        else:
            da, dB = net.split(p.displacement)
            move, gap = float(np.linalg.norm(dB)), float(np.linalg.norm(da + twin.move(p.t)))
        for k, v in (("t", p.t), ("risk", float(p.residual @ p.residual) / (2 * n)),
                     ("a_gap", gap), ("a_twin", float(np.linalg.norm(at))),
                     ("B_norm", float(np.linalg.norm(B))), ("B_move", move),
                     ("twin_risk", float(twin.risk(np.array([p.t]))[0])), ("error_theta", p.error_theta),
                     ("error_u", p.error_u), ("trusted", p.trusted)):
            rec[k].append(v)
        if landed(keep, p.t):
            kept[len(rec["t"]) - 1] = np.array(p.theta)
        w = np.linalg.eigvalsh(net.gram(p.theta))
        return Spectrum(float(w[-1]), max(float(w[0]), 0.0))

    opts = FlowOptions(rtol=dyn.rtol, min_step_fraction=dyn.min_step_fraction, max_steps=dyn.max_steps,
                       checkpoints=tuple(checkpoints))
    run = integrate_flow(net, net.join(dr.a0, dr.B0), T, monitor, opts)
    arrays = {k: np.array(v, dtype=bool if k == "trusted" else float) for k, v in rec.items()}
    return FlowTrace(**arrays, run=run, kept=kept)


def point_table(state: EMWState, trials: list[TrialResult], maxima=(), medians=()) -> list[dict]:
    """Per grid point: the trials, the maximum of each key in ``maxima`` and the median of each in
    ``medians``."""
    table = []
    for m, n in state.points:
        sel = [t for t in trials if (t.values["m"], t.values["n"]) == (m, n)]
        if sel:
            row = {"m": m, "n": n, "trials": len(sel)}
            row.update({k: max(t.values[k] for t in sel) for k in maxima})
            row.update({f"{k}_median": float(np.median([t.values[k] for t in sel])) for k in medians})
            table.append(row)
    return table


def finish_trial(index: int, out: dict[str, str], values: dict[str, float], run) -> TrialResult:
    """A trial's result from its outcomes and figures: every outcome DIVERGED when the flow
    diverged, and the run's divergence (or early stop) as its note."""
    if run.diverged:
        out = {k: DIVERGED for k in out}
    note = run.divergence if (run.diverged or run.stopped_early) and run.divergence else None
    return TrialResult(index, out, values, note=note)


class EMWCheck(Check):
    """A check of this family: fresh sphere data per trial (so no data file or labels), a
    fixed number of trials per grid point, the scaling rows' slopes and a per-point table."""

    unused_keys = ("data.labels.", "data.path")
    sequential = False  # the primary rows are slopes over a fixed grid of trials
    #: trials per grid point when trials = auto
    AUTO_TRIALS = 8

    def fixed_trials(self, sc, ctx: Context) -> int:
        return len(ctx.state.points) * ctx.state.per

    @staticmethod
    def summarize_grid(sc, ctx: Context, rows, trials: list[TrialResult], slopes, maxima=(), medians=()) -> dict:
        """Fill each (row, trial key, axis) of ``slopes`` and the per-point table; the rows by name."""
        by = {r.name: r for r in rows}
        rng = np.random.default_rng(np.random.SeedSequence(sc.seed, spawn_key=(2,)))
        for name, key, axis in slopes:
            fill_slopes(by[name], ctx.state, trials, key, axis, sc.claim.permutations, rng)
        ctx.quantities["per_point"] = point_table(ctx.state, trials, maxima=maxima, medians=medians)
        return by


def twin_risk_bound(tw: RFTwin, grid: np.ndarray, r_star: float, dist2: float, values: dict) -> dict[str, str]:
    """The twin's risk bound over the whole window (exact twin: its risk does not increase in t
    and the bound decreases, so [t_j, t_{j+1}] holds when the risk at t_j is below the bound at
    t_{j+1}), and its control e^{−3λt}R̂_n(a_0), false at every t > 0."""
    tt = np.concatenate([[0.0], grid])
    risk = tw.risk(tt)
    bound = r_star + dist2 / (2 * tt[1:])
    slack = tw.rel_error * float(risk[0] + bound[-1])
    values["ratio_twin_risk"] = float(np.max(risk[1:] / bound))
    fast = np.exp(-3 * float(tw.rate.max(initial=0.0)) * tt[1:]) * risk[0]
    return {"twin_risk": decided(np.any(risk[1:] > bound + slack), np.all(risk[:-1] <= bound - slack)),
            "control_twin_fast": decided(np.any(risk[1:] > fast + slack), np.all(risk[1:] <= fast - slack))}


def split_outcomes(tr: FlowTrace, at, lhs: np.ndarray, lhs_err: np.ndarray, twin_term: np.ndarray,
                   values: dict) -> dict[str, str]:
    """The proof's split lhs ≤ 3(‖a − ã‖²‖B‖² + ‖ã‖²‖B − B_0‖² + twin_term) at the flow's points
    ``at`` (an index), and its control with ½ for 3. lhs is a risk of the network known within
    lhs_err and twin_term the same risk of the twin (exact); the integrator's error estimate δθ
    moves each norm by at most δθ."""
    e, gap, Bn, tw, mv = (v[at] for v in (tr.error_theta, tr.a_gap, tr.B_norm, tr.a_twin, tr.B_move))
    rhs = 3 * (gap ** 2 * Bn ** 2 + tw ** 2 * mv ** 2 + twin_term)
    rhs_hi = 3 * ((gap + e) ** 2 * (Bn + e) ** 2 + tw ** 2 * (mv + e) ** 2 + twin_term)
    rhs_lo = 3 * (np.maximum(gap - e, 0) ** 2 * np.maximum(Bn - e, 0) ** 2 + tw ** 2 * np.maximum(mv - e, 0) ** 2
                  + twin_term)
    values["ratio_split"] = float(np.max(lhs / np.maximum(rhs, 1e-300)))
    trusted = tr.trusted[at]
    out = {}
    for name, k in (("split", 1.0), ("control_split_half", 1 / 6)):  # (½ of the bracket is rhs/6)
        out[name] = decided(np.any((lhs - lhs_err > k * rhs_hi) & trusted), np.all(lhs + lhs_err <= k * rhs_lo))
    return out


def window_flow(sc, state: EMWState, index: int, rng: np.random.Generator, keep_every: int = 0):
    """Theorems 4.2 and 4.6's trial: data and initialisation at the trial's grid point, the joint
    flow over the window (0, √n/m] landing on its checkpoints (θ kept at t = 0 and at every
    ``keep_every``-th checkpoint back from the window's end, if set), the exact twin. Returns
    (m, n, draw, twin, window times, flow)."""
    m, n = state.point(index)
    dr = draw(state, m, n, sc.claim.c, rng)
    tw = RFTwin(dr.Phi, dr.a0, dr.y)
    grid = window(n, m)
    keep = np.append(0.0, grid[::-keep_every]) if keep_every else ()
    return m, n, dr, tw, grid, train(dr, tw, float(grid[-1]), grid[:-1], sc.dynamics, keep=keep)


def summarize_window(check: "EMWCheck", sc, ctx: Context, rows, trials: list[TrialResult], medians) -> dict:
    """Theorems 4.2 and 4.6's summary: the slopes of Ĉ (in m, in n), of the proof's bound (in n)
    and of the two rate controls, the per-point table, and the split's and the twin bound's
    worst ratios; the rows by name."""
    by = check.summarize_grid(sc, ctx, rows, trials,
                              (("C_m", "C_hat", "m"), ("C_n", "C_hat", "n"), ("C_n_proof", "C_hat_proof", "n"),
                               ("control_no_early_stopping", "C_hat_no_early_stopping", "n"),
                               ("control_m_rate", "C_hat_m_rate", "m")),
                              maxima=("C_hat", "C_hat_proof", "t_window"), medians=medians)
    by["split"].figures["worst_ratio_to_bound"] = max(t.values["ratio_split"] for t in trials)
    by["twin_risk"].figures["worst_ratio_to_bound"] = max(t.values["ratio_twin_risk"] for t in trials)
    return by


def window_control_rows(R: str) -> list[ClaimRow]:
    """The controls of the proof's two explicit steps, for the risk written ``R`` (R̂_n or R)."""
    return [
        ClaimRow("control_split_half", UNIVERSAL,
                 f"control (false by proof): the split with 3 replaced by ½; at t = 0 (a_t = ã_t, B_t = B_0) its "
                 f"right side is {R}(a_0, B_0)/2 < {R}(a_0, B_0)", primary=False),
        ClaimRow("control_twin_fast", UNIVERSAL,
                 "control (false by proof): R̂_n(ã_t, B_0) ≤ e^{−3λt} R̂_n(a_0, B_0), λ = λ_max(ΦΦᵀ/n); the twin's "
                 "residual obeys r′ = −(ΦΦᵀ/n) r, so R̂_n(ã_t) ≥ e^{−2λt} R̂_n(a_0) at every t > 0", primary=False),
    ]


def train_pair(dr: Draw, checkpoints: np.ndarray, dyn, probe=None) -> dict:
    """The pair (a, B, ã) from (a_0, B_0, a_0) to the last checkpoint; per point: t, ‖a − ã‖ and
    its error (the summed local estimates on a − ã, plus rounding), ‖a‖ and ‖B‖, ‖B − B_0‖ with
    the summed local estimates on a and on B (a's is far larger: it lies in directions of small
    singular value, which the outputs barely see), R̂_n's bound, trust; at the checkpoints the
    integrated twin's distance to the exact one, and ``probe(a, B, ã)`` at t = 0 and at each
    checkpoint (its results in out["probe"])."""
    m = dr.a0.size
    n = dr.X.shape[0]
    net = TwoLayerNetwork(dr.X, dr.y, m)
    pair = NetworkWithTwin(net, dr.Phi)
    k = pair.k
    keys = ("t", "gap", "gap_est", "a_norm", "a_est", "B_norm", "B_move", "B_est", "risk_hi", "trusted")
    rec: dict[str, list] = {key: [] for key in keys}
    sums = [0.0, 0.0, 0.0]  # summed local estimates on a − ã, on a and on B

    def monitor(p):
        th = p.theta
        a, at = th[:m], th[k:]
        B = th[m:k].reshape(m, -1)
        if p.local_error is not None:
            le = p.local_error
            sums[0] += float(np.linalg.norm(le[:m] - le[k:]))
            sums[1] += float(np.linalg.norm(le[:m]))
            sums[2] += float(np.linalg.norm(le[m:k]))
        r = p.residual[:n]
        d = p.displacement  # (as in train: both flows start at a_0, so a − ã is the difference of their steps)
        move, gap = (0.0, 0.0) if d is None else (float(np.linalg.norm(d[m:k])), float(np.linalg.norm(d[:m] - d[k:])))
        for key, v in (("t", p.t), ("gap", gap), ("gap_est", sums[0]),
                       ("a_norm", float(np.linalg.norm(a))), ("a_est", sums[1]), ("B_norm", float(np.linalg.norm(B))),
                       ("B_move", move), ("B_est", sums[2]),
                       ("risk_hi", (float(np.linalg.norm(r)) + p.error_u) ** 2 / (2 * n)), ("trusted", p.trusted)):
            rec[key].append(v)
        w = np.linalg.eigvalsh(net.gram(th[:k]))
        return Spectrum(float(w[-1]), max(float(w[0]), 0.0))

    opts = FlowOptions(rtol=dyn.rtol, min_step_fraction=dyn.min_step_fraction, max_steps=dyn.max_steps,
                       checkpoints=tuple(checkpoints[:-1]))
    kept, probed = [], []

    def keep_twin(p):
        at_mark = landed(checkpoints, p.t)
        if at_mark:
            kept.append(p.theta[k:].copy())
        if probe is not None and (at_mark or p.step == 0):
            probed.append(probe(p.theta[:m], p.theta[m:k].reshape(m, -1), p.theta[k:]))
        return monitor(p)

    run = integrate_flow(pair, pair.join(dr.a0, dr.B0, dr.a0), float(checkpoints[-1]), keep_twin, opts)
    out = {key: np.array(v, dtype=bool if key == "trusted" else float) for key, v in rec.items()}
    steps = np.arange(out["t"].size)
    # rounding: every step adds to a and ã separately; an allowance of 4u per step of their size
    out["gap_error"] = out["gap_est"] + 4 * _EPS * (steps + 1) * (out["a_norm"] + np.linalg.norm(dr.a0))
    tw = RFTwin(dr.Phi, dr.a0, dr.y)
    tt = checkpoints[:len(kept)]
    out["twin_error"] = np.linalg.norm(np.array(kept) - tw.a_at(tt), axis=1) if kept else np.zeros(1)
    out["run"], out["probe"] = run, probed
    return out
