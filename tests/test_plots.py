"""--plot on every check: each check's picture is drawn from its own run's records."""
import io

import pytest

import ntkcheck
from ntkcheck.checks import REGISTRY

pytest.importorskip("matplotlib")

SMALL = {  # a fast run of each check, with every row present
    "lemma21": dict(n=8, trials=4), "cor22": dict(trials=4), "lemma23": dict(n=12, d=6, m=1024, trials=4),
    "cor24": dict(m=64, trials=3, sets=["dynamics.T=2"]), "thm41": dict(m=256, trials=3),
}


@pytest.fixture(scope="module")
def runs():
    out = {}
    for c in REGISTRY:
        kw = SMALL.get(c)
        out[c] = ntkcheck.run_check(c, **kw) if kw else ntkcheck.run_check(c, f"scenarios/smoke/{c}.yaml")
    return out


@pytest.mark.parametrize("check", list(REGISTRY))
def test_every_check_draws_its_run(runs, check):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    from ntkcheck.plots import PLOTS, plot_result
    from ntkcheck.report import shown_verdict

    res = runs[check]
    fig = plt.figure()
    PLOTS[check](res, fig)
    axes = fig.axes
    assert axes
    for ax in axes:
        drawn = sum(len(line.get_xdata()) for line in ax.get_lines()) + len(ax.collections)
        assert drawn > 0, f"{check}: an empty panel ({ax.get_title()})"
        for scale, lim in ((ax.get_yscale(), ax.get_ylim()), (ax.get_xscale(), ax.get_xlim())):
            assert scale != "log" or min(lim) > 0  # log axes only for positive data
    titles = " ".join(ax.get_title() for ax in axes) + " ".join(
        t.get_text() for ax in axes if ax.get_legend() for t in ax.get_legend().get_texts())
    assert any(shown_verdict(r)[0] in titles for r in res.rows), titles  # a row's verdict is shown
    plt.close(fig)
    png = plot_result(res)
    img = mpimg.imread(io.BytesIO(png), format="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and img.shape[0] > 300 and img.shape[1] > 300


def test_cor24_draws_each_trials_loss_against_its_bound(runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ntkcheck.plots import PLOTS

    res = runs["cor24"]
    assert sorted(res.trial_series) == [0, 1, 2]
    s = res.trial_series[0]
    assert s["t"][0] == 0.0 and s["loss_ratio"][0] == 1.0 and s["t"][-1] == pytest.approx(2.0)
    fig = plt.figure()
    PLOTS["cor24"](res, fig)
    loss_ax = fig.axes[0]
    assert len(loss_ax.get_lines()) == 3 + 1  # a curve per trial, and the bound
    plt.close(fig)


def test_plot_option_writes_the_png_and_the_report_embeds_it(ntk, tmp_path):
    png, html = tmp_path / "p.png", tmp_path / "r.html"
    r = ntk("lemma21", "--n", "8", "--trials", "3", "--plot", png, "--report", html)
    assert r.code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in html.read_text(encoding="utf-8")
    r = ntk("lemma21", "--n", "8", "--trials", "3", "--plot", tmp_path / "no" / "p.png")
    assert r.code == 2 and "does not exist" in r.err
