"""Scaling studies: a check's critical value (:mod:`ntkcheck.critical`) at each value of a
scenario key (typically data.n), its fitted log-log exponent with a bootstrap interval, and
the proof's sufficient value on the same points with its exponent.

The proof's exponent is fitted on the same points as the measurement, with the run's own λ0
at each n (λ0 changes with n), so the two numbers compare like with like: Cor 2.2's
n² log(n/δ)/λ0², Theorem 3.2's n⁶/(λ0⁴δ³), Lemma 2.3's radius √(2π)/16·δλ0/n².
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from . import critical as crit
from .errors import UserError
from .report import fmt


@dataclass
class Study:
    check: str
    key: str  # the swept scenario key
    critical_key: str
    measured: str
    proof_label: str
    xs: list[float]
    points: list[crit.Critical]
    values: list[float | None]  # the measured quantity at each x
    intervals: list[tuple[float | None, float | None]]
    proof: list[float | None]
    fit: dict[str, Any] = field(default_factory=dict)
    proof_exponent: float | None = None
    confidence: float = 0.95

    @property
    def complete(self) -> bool:
        return all(v is not None for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        from . import __version__
        return {
            "ntkcheck_version": __version__, "check": self.check, "over": self.key,
            "critical": self.critical_key, "measured": self.measured, "proof_label": self.proof_label,
            "confidence": self.confidence,
            "points": [{self.key: x, "value": v, "interval": list(iv), "proof": pr, "search": p.to_dict()}
                       for x, v, iv, pr, p in zip(self.xs, self.values, self.intervals, self.proof, self.points)],
            "fit": {**self.fit, "proof_exponent": self.proof_exponent},
        }


def parse_over(over: str) -> tuple[str, list[float]]:
    if "=" not in over:
        raise UserError(f"--over needs KEY=V1,V2,..., got '{over}'.")
    key, raw = (s.strip() for s in over.split("=", 1))
    vals = []
    for v in raw.split(","):
        try:
            x = yaml.safe_load(v.strip())
        except yaml.YAMLError:
            x = None
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
            raise UserError(f"--over {key}: '{v.strip()}' is not a positive number (the fit is in log-log).")
        vals.append(x)
    if not key or len(vals) < 2 or len(set(vals)) != len(vals):
        raise UserError(f"--over '{over}' needs a key and at least two different values.")
    return key, vals


def run_study(check: str, scenario, overrides: dict, over: str, critical_key: str | None,
              grid: list[float] | None, run: Callable[[dict], Any] | None = None,
              replicates: int = crit.REPLICATES, row: str | None = None) -> Study:
    from .checks import get_check

    chk = get_check(check)
    specs = getattr(chk, "critical", {})
    if not specs:
        raise UserError(f"{check} has no critical value to study (checks with one: lemma23, cor22, cor24).")
    critical_key = critical_key or next(iter(specs))
    spec = crit.spec_for(chk, critical_key)
    key, xs = parse_over(over)
    if key == critical_key:
        raise UserError(f"--over and --critical both name '{key}'.")
    sets = list(overrides.get("sets", []))
    points, values, intervals, proof = [], [], [], []
    for x in xs:
        val = int(x) if float(x).is_integer() else x
        c = crit.find(check, scenario, {**overrides, "sets": sets + [f"{key}={val}"]}, critical_key, grid, run,
                      replicates, row)
        q = c.quantities
        points.append(c)
        values.append(None if c.value is None else spec.measure(c.value, q))
        intervals.append(tuple(None if v is None else spec.measure(v, q) for v in c.interval))
        proof.append(spec.proof(q) if spec.proof else None)
        c.replicates = [None if r is None else spec.measure(r, q) for r in c.replicates]
        c.brackets = [tuple(None if v is None else spec.measure(v, q) for v in br) for br in c.brackets]
    conf = points[0].confidence
    fit = crit.fit_exponent(xs, values, [c.brackets for c in points], conf)
    pe = None
    if all(p is not None and p > 0 for p in proof):
        pe = crit.log_slope(xs, proof)
    measured = spec.measured or critical_key
    if row is not None and row != spec.row:
        measured = f"critical {critical_key} of the {'table' if row == 'table' else 'row ' + row}"
    return Study(check, key, critical_key, measured, spec.proof_label, [float(x) for x in xs],
                 points, values, intervals, proof, fit, pe, conf)


def render(st: Study, console) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title=f"{st.check}: {st.measured} against {st.key}",
                  box=box.SIMPLE_HEAVY)
    for col in (st.key, "critical", "grid bracket", f"bootstrap {st.confidence:.0%}", "trials", "proof"):
        table.add_column(col, justify="right")
    for x, v, iv, pr, p in zip(st.xs, st.values, st.intervals, st.proof, st.points):
        br = "exact" if p.method == "thresholds" else f"({fmt(p.bracket[0]) if p.bracket[0] else '—'}, {fmt(p.bracket[1])}]" \
            if p.value is not None else f"above {fmt(p.grid[-1])}"
        table.add_row(fmt(x), fmt(v) if v is not None else "not found", br,
                      f"[{fmt(iv[0]) if iv[0] is not None else '—'}, {fmt(iv[1]) if iv[1] is not None else '—'}]",
                      "/".join(str(n) for n in sorted(set(p.trials))), fmt(pr) if pr is not None else "—")
    console.print(table)
    console.print(exponent_line(st))


def exponent_line(st: Study) -> str:
    f = st.fit
    if f.get("exponent") is None:
        meas = "no exponent (fewer than two critical values found)"
    else:
        lo, hi = f["interval"]
        ci = f"[{lo:.3g}, {hi:.3g}]" if lo is not None else "(no interval: too many replicates without a value)"
        meas = f"{f['exponent']:.3g} {ci} ({st.confidence:.0%}: bootstrap over trials and the grid's resolution)"
    proof = f"{st.proof_exponent:.3g}" if st.proof_exponent is not None else "—"
    return (f"exponent of {st.measured} in {st.key}: measured {meas}; {st.proof_label}: {proof} "
            "on the same points")


def to_csv(st: Study) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([st.key, "critical_key", "method", "critical_value", "bracket_low", "bracket_high", "measured",
                "interval_low", "interval_high", "proof", "trials"])
    for x, v, iv, pr, p in zip(st.xs, st.values, st.intervals, st.proof, st.points):
        w.writerow([x, st.critical_key, p.method, "" if p.value is None else p.value,
                    "" if p.bracket[0] is None else p.bracket[0], "" if p.bracket[1] is None else p.bracket[1],
                    "" if v is None else v, "" if iv[0] is None else iv[0], "" if iv[1] is None else iv[1],
                    "" if pr is None else pr, max(p.trials)])
    return buf.getvalue()


def plot(st: Study, path: str) -> None:
    """Log-log: the measured critical quantity with its bootstrap interval, and the proof's
    expression scaled to meet the first measured point (only its slope is compared)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .sweep import save_figure

    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    pts = [(x, v, iv) for x, v, iv in zip(st.xs, st.values, st.intervals) if v is not None]
    if pts:
        xs, vs, ivs = zip(*pts)
        lo = [v - (iv[0] if iv[0] is not None else v) for v, iv in zip(vs, ivs)]
        hi = [(iv[1] if iv[1] is not None else v) - v for v, iv in zip(vs, ivs)]
        f = st.fit
        lab = f"measured: exponent {f['exponent']:.2f}" if f.get("exponent") is not None else "measured"
        ax.errorbar(xs, vs, yerr=[lo, hi], fmt="o-", capsize=3, label=lab)
        if all(p is not None for p in st.proof):
            k = vs[0] / st.proof[st.xs.index(xs[0])]
            ax.plot(st.xs, [k * p for p in st.proof], "k--",
                    label=f"{st.proof_label}: exponent {st.proof_exponent:.2f} (scaled)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(st.key)
    ax.set_ylabel(st.measured)
    ax.set_title(f"ntkcheck scaling {st.check} --critical {st.critical_key}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)
