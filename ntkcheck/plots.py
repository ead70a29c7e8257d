"""`--plot PATH.png` on every check: a picture of one run, drawn from its per-trial records
(:attr:`ntkcheck.api.Result.trial_records`) and, for cor24, the flows' sampled trajectories.

Each check has one function here that fills a list of matplotlib axes. Per-trial points are
coloured by their outcome (holds, violation, undecided); bounds are dashed lines; slopes are
drawn through the per-width geometric means with the row's confidence interval as a band.
Log axes only where every value drawn is positive."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

COLOURS = {"holds": "#1a7f37", "violation": "#cf222e", "undecided": "#bf8700", "vacuous": "#8c959f",
           "error": "#6e7781", "diverged": "#8250df"}


def _log_if_positive(ax, axis: str, values, spread: float = 20.0) -> None:
    """A log axis when every value is positive and they span more than ``spread``."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size and (v > 0).all() and v.max() / v.min() > spread:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _tidy(ax) -> None:
    """No labelled minor ticks on a short log axis, no offset on a linear one (1e-5+1 reads as noise)."""
    from matplotlib.ticker import NullFormatter

    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            axis.set_minor_formatter(NullFormatter())
        else:
            axis.get_major_formatter().set_useOffset(False)


def _shown(r) -> str:
    from .report import shown_verdict

    return shown_verdict(r)[0] if r is not None else ""


def _row(res, name):
    return next((r for r in res.rows if r.name == name), None)


def _legend_outcomes(ax, seen: set[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=COLOURS[o], label=o) for o in COLOURS if o in seen]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def per_trial(ax, res, key: str, row: str, bound: float | None = None, title: str = "", ylabel: str = "",
              low: str | None = None) -> None:
    """Each trial's ``key`` (a bracket from ``low`` to ``key`` when given), coloured by the
    outcome of ``row``, against ``bound`` (dashed)."""
    recs = [r for r in res.trial_records if key in r]
    outcome = np.array([str(r.get(f"outcome.{row}", "holds")) for r in recs])
    trial = np.array([r["trial"] for r in recs])
    y = np.array([r[key] for r in recs], dtype=float)
    lo = np.array([r.get(low, np.nan) for r in recs], dtype=float) if low is not None else None
    seen = set(outcome.tolist())
    vals = y.tolist()
    for o in seen:  # one call per outcome, not per trial (thousands of trials draw as fast as ten)
        at = outcome == o
        c = COLOURS.get(o, "k")
        if lo is not None:
            ax.vlines(trial[at], lo[at], y[at], color=c, lw=2, alpha=0.8)
            vals += lo[at][np.isfinite(lo[at])].tolist()
        ax.plot(trial[at], y[at], "o", color=c, ms=4, ls="")
    if bound is not None:
        ax.axhline(bound, ls="--", color="k", lw=1, label="bound")
        vals.append(bound)
    _log_if_positive(ax, "y", vals)
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel or key, fontsize=8)
    ax.set_title(f"{title or row}: {_shown(_row(res, row))}", fontsize=9)
    _legend_outcomes(ax, seen)
    _tidy(ax)


def vs_width(ax, res, key: str, rows: list[str], x: str = "m", group: str | None = "n", title: str = "") -> None:
    """``key`` per trial against the width (log-log), one line of per-width geometric means per
    value of ``group``; each named scaling row's fitted slope and its interval as a band."""
    recs = [r for r in res.trial_records if key in r and r.get(key) is not None and r.get(x)]
    groups = sorted({r.get(group) for r in recs}) if group else [None]
    for gi, g in enumerate(groups):
        sub = [r for r in recs if group is None or r.get(group) == g]
        xs = np.array([r[x] for r in sub], dtype=float)
        ys = np.array([r[key] for r in sub], dtype=float)
        pos = ys > 0
        col = f"C{gi % 10}"
        ax.plot(xs, ys, ".", color=col, alpha=0.5, ms=4)
        ux = np.unique(xs[pos])
        if ux.size:
            gm = [float(np.exp(np.log(ys[pos & (xs == u)]).mean())) for u in ux]
            ax.plot(ux, gm, "-", color=col, lw=1, label=f"{group} = {g:g}" if group else "geometric mean")
    # the slope is fitted along one sweep: the group with the most widths (e.g. n = n_max for C_m)
    along = max(groups, key=lambda g: len({r[x] for r in recs if group is None or r.get(group) == g}), default=None)
    fit = [r for r in recs if group is None or r.get(group) == along]
    for name in rows:
        r = _row(res, name)
        if r is None or getattr(r, "estimate", None) is None or not fit:
            continue
        xs = np.array([q[x] for q in fit], dtype=float)
        ys = np.array([q[key] for q in fit], dtype=float)
        ok = ys > 0
        if not ok.any():
            continue
        x0, y0 = float(np.exp(np.log(xs[ok]).mean())), float(np.exp(np.log(ys[ok]).mean()))
        grid = np.geomspace(xs[ok].min(), xs[ok].max(), 20)
        ax.plot(grid, y0 * (grid / x0) ** r.estimate, "k--", lw=1,
                label=f"{name}: slope {r.estimate:.2f} (≤ {r.tolerance:g}: {_shown(r)})")
        if r.ci_low is not None and r.ci_high is not None:
            ax.fill_between(grid, y0 * (grid / x0) ** r.ci_low, y0 * (grid / x0) ** r.ci_high, color="k", alpha=0.08)
    _log_if_positive(ax, "x", [r[x] for r in recs], spread=4.0)
    _log_if_positive(ax, "y", [r[key] for r in recs if r[key] > 0] or [1.0])
    _tidy(ax)
    ax.set_xlabel(x)
    ax.set_ylabel(key, fontsize=8)
    ax.set_title(title or key, fontsize=9)
    ax.legend(fontsize=7, loc="best")


# -- per check -------------------------------------------------------------------------------------
def _lemma21(res, fig):
    ax = fig.subplots(1, 1)
    per_trial(ax, res, "lambda0", "positive", title="λ0 = λ_min(H∞) per data set", ylabel="λ0")
    err = [r["lambda0_error"] for r in res.trial_records if "lambda0_error" in r]
    if err:
        ax.axhline(max(err), ls=":", color="#6e7781", lw=1)  # below it λ0 cannot be told from 0


def _cor22(res, fig):
    a, b = fig.subplots(1, 2)
    q = res.quantities
    per_trial(a, res, "distance", "distance", q.get("threshold_distance"), "‖H(0) − H∞‖₂ (bound λ0/4)")
    per_trial(b, res, "lambda_min_H0", "lambda_min", q.get("threshold_lambda_min"), "λ_min(H(0)) (bound ¾λ0)")


def _lemma23(res, fig):
    a, b, c = fig.subplots(1, 3)
    q = res.quantities
    per_trial(a, res, "attack_norm", "norm", q.get("threshold_norm"), "sup ‖H(W) − H(W(0))‖₂: [attack, certified]",
              low="certified_norm")
    per_trial(b, res, "certified_lambda_min", "lambda_min", q.get("threshold_lambda_min"),
              "inf λ_min(H(W)): [certified, attack]", low="attack_lambda_min")
    recs = res.trial_records
    cs = [min(r["c_crit_norm"], r["c_crit_lambda_min"]) for r in recs if "c_crit_norm" in r]
    c.plot(sorted(cs), "o", color=COLOURS["holds"], ms=4, label="each trial's critical c (sorted)")
    c.axhline(res.scenario["claim"]["c"], color="k", ls="--", lw=1, label=f"c = {res.scenario['claim']['c']:g}")
    if q.get("critical_c"):
        c.axhline(q["critical_c"], color=COLOURS["violation"], ls=":", lw=1.5, label=f"c* = {q['critical_c']:.4g}")
    _log_if_positive(c, "y", cs + [res.scenario["claim"]["c"]])
    c.set_title("critical c per trial, and c*", fontsize=9)
    c.set_xlabel("trial (sorted)")
    c.legend(fontsize=7)


def _thm41(res, fig):
    ax = fig.subplots(1, 1)
    per_trial(ax, res, "risk_w1_times_m", "theorem", res.quantities.get("bound_times_m"),
              "R(a, B)·m against the bound·m", "R·m")


def _cor24(res, fig):
    a, b = fig.subplots(1, 2)
    series = res.trial_series
    l0 = res.quantities.get("lambda0", 0.0)
    t_end = 0.0
    for i, (trial, s) in enumerate(sorted(series.items())):
        t = np.asarray(s.get("t", []))
        ratio = np.asarray(s.get("loss_ratio", []))
        if t.size == 0:
            continue
        t_end = max(t_end, float(t[-1]))
        rec = next((r for r in res.trial_records if r["trial"] == trial), {})
        a.plot(t, ratio, lw=0.8, alpha=0.7, color=COLOURS.get(str(rec.get("outcome.flow_loss")), "C0"))
        th = rec.get("flow_t_h")
        if th is not None and th < t[-1] * (1 - 1e-9):
            a.axvline(th, color="#6e7781", lw=0.6, ls=":")
    if t_end:
        tt = np.linspace(0.0, t_end, 200)
        a.plot(tt, np.exp(-l0 * tt), "k--", lw=1.2, label="bound e^{−λ0 t}")
        a.set_yscale("log")
    a.set_xlabel("t")
    a.set_ylabel("‖y − u(t)‖² / ‖y − u(0)‖²", fontsize=8)
    a.set_title(f"gradient flow, each trial (t_h dotted): {_shown(_row(res, 'flow_loss'))}", fontsize=9)
    a.legend(fontsize=7)
    per_trial(b, res, "flow_weight_ratio", "flow_weights", 1.0, "max_k ‖w_k(t) − w_k(0)‖ / R′", "ratio to R′")


def _lemma43(res, fig):
    names = [r.name for r in res.rows if r.kind == "scaling"]
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    keys = {"a_norm": "ratio_a_norm", "B_norm": "ratio_B_norm", "B_move": "ratio_B_move", "control_a_fast": "ratio_control"}
    for ax, name in zip(axes, names):
        vs_width(ax, res, keys.get(name, name), [name], x="width", group=None, title=f"Ĉ(m): {name}")


def _emw(keys=("C_hat", "C_hat"), rows=("C_m", "C_n")):
    """The §4 checks: the measured constant against m (row ``rows[0]``, value ``keys[0]``) and
    against n, with each row's fitted slope."""
    def draw(res, fig):
        a, b = fig.subplots(1, 2)
        vs_width(a, res, keys[0], [rows[0]], x="m", group="n", title=f"{keys[0]} against m (one line per n)")
        vs_width(b, res, keys[1], [rows[1]], x="n", group="m", title=f"{keys[1]} against n (one line per m)")
    return draw


def _nnrf(res, fig):
    a, b = fig.subplots(1, 2)
    per_trial(a, res, "ratio_to_bound", "explicit", 1.0, "the gap against its bound", "ratio to the bound")
    vs_width(b, res, "inv_t_close", ["t_close_m"], x="m", group="n", title="1/t_close against m (one line per n)")


PLOTS: dict[str, Callable] = {
    "lemma21": _lemma21, "cor22": _cor22, "lemma23": _lemma23, "cor24": _cor24, "thm41": _thm41,
    "lemma43": _lemma43, "lemma44": _emw(), "lemma45": _emw(), "thm42": _emw(),
    "thm46": _emw(), "nnkernel": _emw(keys=("D", "C_hat"), rows=("D_m", "C_n")), "nnrf": _nnrf,
}


def plot_result(res, path: str | None = None) -> bytes:
    """Draw ``res`` (its check's picture) and return the PNG; also write it to ``path`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draw = PLOTS[res.check]
    panels = {"cor22": 2, "lemma23": 3, "cor24": 2, "lemma44": 2, "lemma45": 2, "thm42": 2, "thm46": 2,
              "nnkernel": 2, "nnrf": 2, "lemma43": 4}.get(res.check, 1)
    fig = plt.figure(figsize=(4.2 * panels, 3.6), layout="constrained")
    draw(res, fig)
    fig.suptitle(f"ntkcheck {res.check}: {res.verdict.upper()} ({res.trials} trials)"
                 + (" — interrupted" if res.interrupted else ""), fontsize=10)
    data = png(fig)
    if path:
        from .report import write_atomic

        write_atomic(path, data)
    return data


def png(fig) -> bytes:
    """``fig`` as PNG bytes at 110 dpi (every picture ntkcheck draws), the figure closed."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buf.getvalue()
