"""Sweeps: one check over a grid of scenario values, with a table, CSV and a plot.

The plot (optional extra ``ntkcheck[plot]``, matplotlib) has one panel per claim: the
observed quantity against the swept value on log-log axes (linear where a value can be
≤ 0), a band over the trials (median to worst, or the slope's confidence interval for
scaling claims) and the bound as a dashed line.
"""
from __future__ import annotations

import csv
import io
import itertools
import textwrap
from typing import Any, Callable

import yaml

from .errors import UserError
from .report import fmt

#: per check and claim: [(label, centre, low, high)] figure keys, the bound's key or constant,
#: the bound's label and the y-axis label
SERIES: dict[str, dict[str, tuple[list[tuple[str, str, str, str]], str | float | None, str, str]]] = {
    "lemma21": {"positive": ([("λ0 (median, min over trials)", "lambda0_median", "lambda0_min", "lambda0_median")],
                             None, "λ0", "λ0 = λ_min(H∞)")},
    "cor22": {"distance": ([("‖H(0) − H∞‖₂", "median", "median", "worst")], "threshold", "λ0/4", "‖H(0) − H∞‖₂"),
              "lambda_min": ([("λ_min(H(0))", "median", "worst", "median")], "threshold", "¾λ0", "λ_min(H(0))")},
    "lemma23": {"norm": ([("certified", "certified_median", "certified_median", "certified_worst"),
                          ("attack", "attack_median", "attack_median", "attack_worst")], "threshold", "λ0/4",
                         "sup over the ball of ‖H(W) − H(W(0))‖₂ (bracket)"),
                "lambda_min": ([("certified", "certified_median", "certified_worst", "certified_median"),
                                ("attack", "attack_median", "attack_worst", "attack_median")],
                               "threshold", "λ0/2", "inf over the ball of λ_min(H(W)) (bracket)")},
    "cor24": {"flow_loss": ([("worst loss / bound", "worst_ratio_to_bound", "worst_ratio_to_bound",
                              "worst_ratio_to_bound")], 1.0, "bound (ratio 1)",
                            "max over t ≤ t_h of ‖y − u(t)‖² / (e^{−λ0 t}‖y − u(0)‖²)"),
              "flow_weights": ([("worst max_k‖Δw_k‖ / R′", "worst_ratio_to_R_prime", "worst_ratio_to_R_prime",
                                 "worst_ratio_to_R_prime")], 1.0, "R′ (ratio 1)",
                               "max over t, k of ‖w_k(t) − w_k(0)‖ / R′"),
              "gd_loss": ([("worst loss / bound", "worst_ratio_to_bound", "worst_ratio_to_bound",
                            "worst_ratio_to_bound")], 1.0, "bound (ratio 1)",
                          "max over k ≤ k_h of ‖y − u(k)‖² / ((1 − ηλ0/2)^k ‖y − u(0)‖²)")},
    "thm41": {"theorem": ([("R·m (median, range)", "R_times_m_median", "R_times_m_range[0]",
                            "R_times_m_range[1]")], "bound_times_m", "bound·m",
                          "R(a, B)·m of the proof's witness")},
    "lemma43": {k: ([("slope of log Ĉ(m)", "slope", "ci_low", "ci_high")], "tolerance", "tolerance",
                     "slope of log Ĉ(m) against log m")
                for k in ("a_norm", "B_norm", "B_move")},
}


#: the verdict at a grid point, drawn as its marker
VERDICT_MARKERS = {"PASS": ("o", "#1a7f37"), "FAIL": ("X", "#cf222e"), "INCONCLUSIVE": ("s", "#bf8700"),
                   "XFAIL": ("o", "#0969da"), "XPASS": ("X", "#bf8700")}


def parse_grid(over: tuple[str, ...]) -> list[tuple[str, list[Any]]]:
    grid = []
    for item in over:
        if "=" not in item:
            raise UserError(f"--over needs KEY=V1,V2,..., got '{item}'.")
        key, raw = item.split("=", 1)
        key = key.strip()
        vals = [v.strip() for v in raw.split(",")]
        if not key or not raw.strip() or any(v == "" for v in vals):
            raise UserError(f"--over '{item}' needs a key and a comma-separated list of values.")
        if key in (k for k, _ in grid):
            raise UserError(f"--over names '{key}' twice.")
        parsed = []
        for v in vals:
            try:
                x = yaml.safe_load(v)
            except yaml.YAMLError:
                raise UserError(f"--over value '{v}' for '{key}' is not a valid value.") from None
            if isinstance(x, str):
                try:
                    x = float(x)
                except ValueError:
                    pass
            parsed.append(x)
        grid.append((key, parsed))
    return grid


def run_grid(check: str, scenario, grid, overrides: dict, run: Callable[[dict], Any]) -> list[dict]:
    points = []
    for values in itertools.product(*[v for _, v in grid]):
        sets = list(overrides.get("sets", [])) + [
            f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for (k, _), v in zip(grid, values)]
        res = run({**overrides, "sets": sets})
        points.append({"values": dict(zip([k for k, _ in grid], values)), "result": res})
        if res.interrupted:
            break
    return points


def render_grid(points: list[dict], grid, console) -> None:
    from rich import box
    from rich.table import Table

    from .report import shown_verdict

    keys = [k for k, _ in grid]
    table = Table(title="sweep", box=box.SIMPLE_HEAVY)
    for k in keys:
        table.add_column(k, justify="right")
    table.add_column("verdict")
    table.add_column("claims (verdict: key figures)", overflow="fold")
    for p in points:
        res = p["result"]
        series = SERIES.get(res.check, {})
        parts = []
        for r in res.rows:
            spec = series.get(r.name)
            figs = ""
            if spec:
                centre = _figure(r, spec[0][0][1])
                bound = spec[1] if isinstance(spec[1], float) else _figure(r, spec[1]) if spec[1] else None
                figs = f" {spec[0][0][0]} = {fmt(centre)}" + (f", bound {fmt(bound)}" if bound is not None else "")
            parts.append(f"{r.label}: {shown_verdict(r, res.interrupted)[0]}{figs}")
        verdict = res.verdict.upper() + (" (interrupted)" if res.interrupted else "")
        table.add_row(*[fmt(p["values"][k]) for k in keys], verdict, "\n".join(parts or ["(no trial ran)"]))
    console.print(table)


def _figure(row, key: str):
    if key in ("ci_low", "ci_high"):
        return getattr(row, key)
    if key in ("slope",):
        return row.estimate
    if key == "tolerance":
        return row.tolerance
    if key.endswith("]"):
        name, idx = key[:-1].split("[")
        v = row.figures.get(name)
        return v[int(idx)] if isinstance(v, (list, tuple)) else None
    return row.figures.get(key)


def csv_verdict(row, interrupted: bool) -> str:
    """The row's verdict; a PASS of an interrupted run is only "pass (interrupted)"."""
    return f"{row.verdict} (interrupted)" if interrupted and row.verdict == "pass" else str(row.verdict)


def to_csv(points: list[dict], grid) -> str:
    keys = [k for k, _ in grid]
    fig_keys: list[str] = []
    for p in points:
        for r in p["result"].rows:
            for k, v in r.figures.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in fig_keys:
                    fig_keys.append(k)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(keys + ["check", "claim", "primary", "kind", "verdict", "trials", "holds", "violations",
                       "undecided", "errors", "ci_low", "ci_high", "confidence", "interrupted", "expected"] + fig_keys)
    for p in points:
        res = p["result"]
        for r in res.rows:
            figs = [r.figures.get(k) if isinstance(r.figures.get(k), (int, float)) else "" for k in fig_keys]
            w.writerow([p["values"][k] for k in keys]
                       + [res.check, r.name, r.primary, r.kind, csv_verdict(r, res.interrupted), r.trials, r.holds,
                          r.violations, r.undecided, r.errors, "" if r.ci_low is None else r.ci_low,
                          "" if r.ci_high is None else r.ci_high, 1 - r.level, res.interrupted,
                          "fail" if r.expected_fail else ""]
                       + ["" if v is None else v for v in figs])
        if not res.rows:  # interrupted before any trial: one line says so
            w.writerow([p["values"][k] for k in keys] + [res.check, "", "", "", res.verdict, 0, 0, 0, 0, 0, "", "",
                                                          "", res.interrupted, ""] + [""] * len(fig_keys))
    return buf.getvalue()


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot needs matplotlib, the optional extra: pip install 'ntkcheck[plot]'.") from None


def plot(points: list[dict], grid, check: str, path: str) -> None:
    """One panel per claim with a figure to show; x = the first swept key, one line per value of
    the other swept keys (with a legend), the verdict at each point as its marker, log axes only
    for positive data, and lemma23's c* marked when c is swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = grid[0][0]
    xs_all = [p["values"][key] for p in points]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all):
        raise UserError(f"--plot needs numeric values for the first --over key '{key}'.")
    series = SERIES.get(check, {})
    rows = [r for r in points[0]["result"].rows if r.name in series]
    if not rows:
        raise UserError(f"--plot has no figure to draw for {check}.")
    res0 = points[0]["result"]
    others = [k for k, _ in grid[1:]]
    groups: dict[tuple, list[dict]] = {}  # one line per value of the other swept keys
    for p in points:
        groups.setdefault(tuple(p["values"][k] for k in others), []).append(p)
    from .report import shown_verdict

    fig, axes = plt.subplots(1, len(rows), figsize=(5.2 * len(rows), 4.2), squeeze=False)
    for ax, row in zip(axes[0], rows):
        lines, bound_key, bound_label, ylabel = series[row.name]
        positive = True
        seen_verdicts: set[str] = set()
        for gi, (gvals, gpts) in enumerate(groups.items()):
            suffix = (" (" + ", ".join(f"{k}={fmt(v)}" for k, v in zip(others, gvals)) + ")") if others else ""
            for li, (label, c, lo, hi) in enumerate(lines):
                pts = [(p["values"][key], _figure(_row(p, row.name), c), _figure(_row(p, row.name), lo),
                        _figure(_row(p, row.name), hi), shown_verdict(_row(p, row.name))[0]) for p in gpts]
                pts = [t for t in pts if None not in t[:4]]
                if not pts:
                    continue
                x, y, l, h, v = map(list, zip(*sorted(pts)))
                positive &= min(y + l + h) > 0
                colour = f"C{(gi * len(lines) + li) % 10}"
                ax.plot(x, y, "-", color=colour, label=label + suffix)
                ax.fill_between(x, l, h, alpha=0.2, color=colour)
                for xi, yi, vi in zip(x, y, v):  # the verdict at each grid point, as the marker
                    shape, mcol = VERDICT_MARKERS.get(vi, ("s", "goldenrod"))
                    ax.plot(xi, yi, shape, color=mcol, ms=7, mec="k", mew=0.5)
                    seen_verdicts.add(vi)
        for gi, (gvals, gpts) in enumerate(groups.items()):  # the bound and c*, per line of the other keys
            suffix = (" (" + ", ".join(f"{k}={fmt(v)}" for k, v in zip(others, gvals)) + ")") if others else ""
            if bound_key is not None:
                bx, by = [], []
                for p in gpts:
                    b = bound_key if isinstance(bound_key, float) else _figure(_row(p, row.name), bound_key)
                    if b is not None:
                        bx.append(p["values"][key]); by.append(b)
                if bx:
                    order = sorted(range(len(bx)), key=lambda i: bx[i])
                    ax.plot([bx[i] for i in order], [by[i] for i in order], "--", color="k" if not others else
                            f"C{(gi * len(lines)) % 10}", label=f"claim: {bound_label}{suffix}")
                    positive &= min(by) > 0
            crit = _figure(_row(gpts[0], row.name), "critical_c") if key == "claim.c" else None
            if crit:  # lemma23's c*: the largest c at which these trials still pass
                ax.axvline(crit, color="#cf222e" if not others else f"C{(gi * len(lines)) % 10}", ls=":", lw=1.5,
                           label=f"c* = {fmt(crit)}{suffix}")
        if min(xs_all) > 0:
            ax.set_xscale("log")
        if positive:
            ax.set_yscale("log")
        from matplotlib.lines import Line2D

        handles, labels = ax.get_legend_handles_labels()
        for vi in sorted(seen_verdicts):
            shape, mcol = VERDICT_MARKERS.get(vi, ("s", "goldenrod"))
            handles.append(Line2D([], [], ls="", marker=shape, color=mcol, mec="k", mew=0.5, ms=7))
            labels.append(vi)
        ax.set_title(textwrap.fill(f"{row.name}: {row.statement}", 60), fontsize=8)
        ax.set_xlabel(f"{key} (swept)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(handles, labels, fontsize=7)
    fig.suptitle(f"ntkcheck {check} — {res0.title}\n{res0.source.split('(')[0].strip()}", fontsize=9)
    save_figure(fig, path)


def save_figure(fig, path: str) -> None:
    """Write ``fig`` as PNG to ``path`` through :func:`report.write_atomic` (never a torn file; the
    permissions of every other output)."""
    from .plots import png
    from .report import write_atomic

    fig.tight_layout()
    write_atomic(path, png(fig))


def _row(point: dict, name: str):
    return next(r for r in point["result"].rows if r.name == name)
