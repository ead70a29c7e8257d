"""Critical values: where a check's verdict turns, for a parameter the claim is monotone in.

One result (:class:`Critical`) from one of two searches:

* **thresholds** (exact): when every trial's outcome is monotone in the parameter under
  common random numbers, each trial has a threshold (Lemma 2.3: a trial's joint event is
  certified exactly while c is below the smaller of its two critical radii, in units of
  δλ0/n²), and the critical value follows from the thresholds of one run
  (:func:`ntkcheck.planning.critical_value`).
* **grid**: otherwise (a width m: trial i draws the same first m rows at every width — the
  draws are nested — but its outcome is not monotone in m) the check runs at each value of a
  grid with the same seed, and the critical value is the smallest grid value from which the
  table, or the row asked for, PASSes at every larger grid value. The true value lies
  between it and the grid value below.

The uncertainty over the trials is a bootstrap: the trials are resampled with replacement
(the same resampled trial numbers at every grid value, which keeps the common random numbers)
and the critical value recomputed from the resampled outcomes with the same verdict rules;
the interval is the central ``confidence`` range of those values. A replicate in which no
grid value passes counts as above the grid (the interval is then open above). Each replicate
also keeps its grid bracket, so that a fitted exponent's interval covers the grid's
resolution as well as the trials' spread (:func:`fit_exponent`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from .checks.base import OUTCOME_FIELD
from .errors import UserError
from .planning import critical_value
from .stats import PASS, SCALING, ClaimRow, decide

#: bootstrap replicates of a critical value
REPLICATES = 400
_CODES = {o: i for i, o in enumerate(OUTCOME_FIELD)}  # outcome → its column in the count vector
_FIELDS = tuple(OUTCOME_FIELD.values())


@dataclass(frozen=True)
class CriticalSpec:
    """What a check's critical value is along one scenario key.

    ``sense``: "smallest" (the claim PASSes from the value up: a width) or "largest" (up to
    it: a radius constant). ``row``: the row whose critical value is reported first (None: the
    table). ``thresholds``: per-trial thresholds per primary row for the exact search, from the
    trials' values (None: the grid search). ``measure`` turns the value into the quantity fitted
    against n (Lemma 2.3: c* into the critical radius c*·δλ0/n²); ``proof`` gives the proof's
    sufficient value of that quantity from the run's quantities (up to its constant)."""

    key: str
    sense: str
    grid: tuple[float, ...] = ()
    row: str | None = None
    thresholds: Callable[[list], dict[str, np.ndarray]] | None = None
    measure: Callable[[float, dict], float] = lambda v, q: v
    measured: str = ""
    proof: Callable[[dict], float] | None = None
    proof_label: str = ""


@dataclass
class Critical:
    check: str
    key: str
    sense: str
    method: str
    value: float | None
    bracket: tuple[float | None, float | None]
    interval: tuple[float | None, float | None]
    confidence: float
    row: str | None
    per_row: dict[str, float | None]
    grid: list[float] = field(default_factory=list)
    verdicts: dict[str, list[str]] = field(default_factory=dict)
    replicates: list[float | None] = field(default_factory=list)
    #: per replicate, the range the critical value lies in given the grid (None: unbounded)
    brackets: list[tuple[float | None, float | None]] = field(default_factory=list)
    trials: list[int] = field(default_factory=list)
    quantities: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("replicates", "brackets")}
        d["bracket"], d["interval"] = list(self.bracket), list(self.interval)
        return d


def spec_for(check, key: str) -> CriticalSpec:
    specs = getattr(check, "critical", {})
    if key not in specs:
        have = ", ".join(specs) or "none"
        raise UserError(f"{check.name} has no critical value along '{key}' (it has: {have}).")
    return specs[key]


def find(name: str, scenario, overrides: dict, key: str, grid: list[float] | None = None,
         run: Callable[[dict], Any] | None = None, replicates: int = REPLICATES,
         row: str | None = None) -> Critical:
    """The critical value of check ``name`` along ``key`` (see the module docstring). ``run``
    runs the check with overrides and an ``on_trial`` callback (default: api.run_check).
    ``row``: the row whose critical value is the result ("table": the table's; default: the
    check's choice)."""
    from .api import run_check
    from .checks import get_check

    check = get_check(name)
    spec = spec_for(check, key)
    if row is not None:
        if spec.thresholds is not None and row != "table":
            raise UserError(f"the critical {key} of {name} is the table's; --row does not apply.")
        spec = replace(spec, row=None if row == "table" else row)
    run = run or (lambda ov: run_check(name, scenario, **ov))
    if spec.thresholds is not None:
        if grid:
            raise UserError(f"the critical {key} of {name} is exact from one run's trials; it takes no grid.")
        return _exact(check, spec, overrides, run, replicates)
    grid = sorted(float(g) for g in (grid or spec.grid))
    if len(grid) < 2:
        raise UserError(f"the critical {key} needs a grid of at least two values.")
    return _grid(check, spec, overrides, run, grid, replicates)


def _collect(run, overrides: dict):
    trials: list = []
    res = run({**overrides, "on_trial": trials.append})
    if res.interrupted:
        raise KeyboardInterrupt
    trials.sort(key=lambda t: t.index)
    return res, trials


def _exact(check, spec: CriticalSpec, overrides: dict, run, replicates: int) -> Critical:
    res, trials = _collect(run, overrides)
    ok = [t for t in trials if t.error is None]
    th = spec.thresholds(ok)
    names = list(th)
    rows = {r.name: r for r in res.rows}
    targets = [rows[k].target for k in names]
    conf = _confidence(res)
    table, per = critical_value([th[k] for k in names], targets, conf)
    rng = np.random.default_rng(_boot_seed(res))
    reps: list[float | None] = []
    n = len(ok)
    for _ in range(replicates):
        idx = rng.integers(0, n, n)
        reps.append(critical_value([th[k][idx] for k in names], targets, conf)[0])
    return Critical(check.name, spec.key, spec.sense, "thresholds", table, (table, table),
                    _interval(reps, conf, spec.sense), conf, spec.row or None,
                    dict(zip(names, per)), replicates=reps, brackets=[(r, r) for r in reps], trials=[n],
                    quantities=res.quantities)


def _grid(check, spec: CriticalSpec, overrides: dict, run, grid: list[float], replicates: int) -> Critical:
    sets = list(overrides.get("sets", []))
    runs = []
    for g in grid:
        val = int(g) if float(g).is_integer() else g
        res, trials = _collect(run, {**overrides, "sets": sets + [f"{spec.key}={val}"]})
        if any(r.kind == SCALING for r in res.rows if r.primary):
            raise UserError(f"{check.name}'s table has scaling rows; its critical {spec.key} is not defined.")
        runs.append((res, trials))
    conf = _confidence(runs[0][0])
    names = [r.name for r in runs[0][0].rows]
    if spec.row is not None and spec.row not in names:
        raise UserError(f"{check.name} has no row '{spec.row}' (its rows: {', '.join(names)}, or 'table').")
    verdicts = {k: [next(r for r in res.rows if r.name == k).verdict for res, _ in runs] for k in names}
    verdicts["table"] = [res.verdict for res, _ in runs]
    per_row = {k: _first_of_tail(grid, verdicts[k]) for k in names}
    value = _first_of_tail(grid, verdicts["table"] if spec.row is None else verdicts[spec.row])
    below = None
    if value is not None and grid.index(value) > 0:
        below = grid[grid.index(value) - 1]
    # the bootstrap: outcomes as codes, one matrix (trials × rows) per grid value
    codes = [np.array([[_CODES[t.outcomes[k]] for k in names] for t in trials], dtype=np.int8).reshape(-1, len(names))
             for _, trials in runs]
    templates = [res.rows for res, _ in runs]
    rng = np.random.default_rng(_boot_seed(runs[0][0]))
    nmax = max(c.shape[0] for c in codes)
    reps: list[float | None] = []
    for _ in range(replicates):
        u = rng.random(nmax)
        passes = []
        for c, tmpl in zip(codes, templates):
            idx = (u[: c.shape[0]] * c.shape[0]).astype(int)
            passes.append(_passes(tmpl, c[idx], spec.row, conf))
        reps.append(_first_of_tail(grid, [PASS if p else "no" for p in passes]))
    return Critical(check.name, spec.key, spec.sense, "grid", value, (below, value),
                    _interval(reps, conf, spec.sense), conf, spec.row, per_row, grid=grid,
                    verdicts={k: [str(v) for v in vs] for k, vs in verdicts.items()}, replicates=reps,
                    brackets=[_bracket(grid, r) for r in reps], trials=[len(t) for _, t in runs], quantities=runs[0][0].quantities)


def _passes(template: list[ClaimRow], codes: np.ndarray, row: str | None, confidence: float) -> bool:
    """Whether the table (or ``row``) PASSes with these per-trial outcome codes (trials × rows)."""
    rows = [replace(r, decision=None, **dict(zip(_FIELDS, map(int, np.bincount(codes[:, j], minlength=len(_FIELDS))))))
            for j, r in enumerate(template)]
    dec = decide(rows, confidence)
    return (dec.verdict if row is None else dec.rows[row].verdict) == PASS


def _bracket(grid: list[float], value: float | None) -> tuple[float | None, float | None]:
    """Where the smallest passing value lies given the grid: (the grid value below, value];
    unbounded below at the first grid value, above the grid when none passes."""
    if value is None:
        return (grid[-1], None)
    i = grid.index(value)
    return (grid[i - 1] if i > 0 else None, value)


def _first_of_tail(grid: list[float], verdicts: list) -> float | None:
    """The smallest grid value from which every verdict is PASS (None: the last is not)."""
    value = None
    for g, v in zip(reversed(grid), reversed(verdicts)):
        if v != PASS:
            break
        value = g
    return value


def _interval(reps: list[float | None], confidence: float, sense: str) -> tuple[float | None, float | None]:
    """Central ``confidence`` range of the replicates; None for a value beyond the search (above
    the grid for "smallest", no passing value for "largest")."""
    if not reps:
        return (None, None)
    missing = math.inf if sense == "smallest" else -math.inf
    v = np.sort(np.array([missing if r is None else r for r in reps], dtype=float))
    a = (1 - confidence) / 2
    lo, hi = float(np.quantile(v, a, method="lower")), float(np.quantile(v, 1 - a, method="higher"))
    return (None if math.isinf(lo) else lo, None if math.isinf(hi) else hi)


def _confidence(res) -> float:
    return float(res.scenario.get("confidence", 0.95))


def _boot_seed(res) -> list[int]:
    # the bootstrap's own stream, from the run's seed (same seed → same interval)
    return [int(res.scenario.get("seed", 0)), 0xC417]


def fit_exponent(ns: list[float], values: list[float | None],
                 brackets: list[list[tuple[float | None, float | None]]], confidence: float) -> dict[str, Any]:
    """Least-squares slope of log(value) against log(n), and its interval.

    The slope is Σ w_i log v_i with w_i = (log n_i − mean)/Σ(log n_j − mean)². For bootstrap
    replicate b every point's value lies in its bracket [lo_ib, hi_ib] (a grid's resolution;
    lo = hi for an exact search), so the replicate's slope lies between Σ w_i log(lo or hi)
    with the ends chosen by the sign of w_i. The interval runs from the (1 − confidence)/2
    quantile of the lower slopes to the (1 + confidence)/2 quantile of the upper ones; an end
    is None (open) when too many replicates leave it unbounded."""
    pts = [(n, v) for n, v in zip(ns, values) if v is not None and v > 0]
    if len(pts) < 2 or len(pts) < len(ns):
        return {"exponent": log_slope(*zip(*pts)) if len(pts) >= 2 else None, "interval": [None, None],
                "points": len(pts)}
    x = np.log(np.asarray(ns, dtype=float))
    w = (x - x.mean()) / ((x - x.mean()) @ (x - x.mean()))
    lows, highs = [], []
    for b in range(min(len(r) for r in brackets)):
        lo_s = hi_s = 0.0
        for wi, br in zip(w, (r[b] for r in brackets)):
            lo, hi = br
            for end, sign in ((lo if wi > 0 else hi, -1), (hi if wi > 0 else lo, 1)):
                term = math.inf * sign if end is None or not end > 0 else wi * math.log(end)
                if sign < 0:
                    lo_s += term
                else:
                    hi_s += term
        lows.append(lo_s)
        highs.append(hi_s)
    a = (1 - confidence) / 2
    lo = float(np.quantile(lows, a, method="lower")) if lows else -math.inf
    hi = float(np.quantile(highs, 1 - a, method="higher")) if highs else math.inf
    return {"exponent": log_slope(ns, values), "interval": [None if math.isinf(lo) else lo,
                                                         None if math.isinf(hi) else hi],
            "points": len(pts)}


def log_slope(xs, ys) -> float:
    """Least-squares slope of log ys against log xs."""
    x, y = np.log(np.asarray(xs, dtype=float)), np.log(np.asarray(ys, dtype=float))
    x = x - x.mean()
    return float((x @ (y - y.mean())) / (x @ x))
