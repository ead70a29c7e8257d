"""report.py: the table, JSON and JUnit renderings of a result."""
import csv
import dataclasses
import io
import json
import xml.etree.ElementTree as ET

import pytest

import ntkcheck
from ntkcheck.report import fmt, make_console, render, to_json, to_junit


@pytest.fixture(scope="module")
def result():
    return ntkcheck.run_check("cor22", m=256, trials=5)


@pytest.fixture(scope="module")
def passing():
    """A passing run with a control row that FAILs as designed."""
    res = ntkcheck.run_check("lemma23", n=12, d=6, m=1024)
    assert res.verdict == "pass"
    return res


def test_plain_table_names_every_row_and_the_verdict(result):
    buf = io.StringIO()
    render(result, make_console(buf))
    text = buf.getvalue()
    for r in result.rows:
        assert r.name in text
    assert f"verdict: {result.verdict.upper()}" in text
    assert "\x1b[" not in text  # not a terminal: no colour codes


def test_json_never_writes_nan_and_escapes_odd_names(result):
    d = result.to_dict()
    assert json.loads(to_json(d)) == d
    with pytest.raises(ValueError):
        to_json({"x": float("nan")})
    assert "\\udcff" in to_json({"path": "a\udcffb"})  # a file name that is not UTF-8


def test_junit_has_a_testcase_per_claim_and_failures_for_failed_primaries(result):
    root = ET.fromstring(to_junit([result]))
    suite = root.find("testsuite")
    assert int(suite.get("tests")) == len(result.rows) == len(suite.findall("testcase"))
    failed = sum(r.verdict == "fail" and r.primary for r in result.rows)
    assert int(suite.get("failures")) == failed
    odd = dataclasses.replace(result, quantities={**result.quantities, "odd": "bad\x01name\udcff"})
    prop = ET.fromstring(to_junit([odd])).find(".//property[@name='odd']")  # still well-formed XML
    assert prop.get("value") == "bad\ufffdname\ufffd"  # what XML cannot hold is replaced


@pytest.mark.parametrize("x,want", [(None, "—"), (True, "yes"), (3, "3"), (0.0, "0"), (12345.0, "1.234e+04"),
                                    (0.5, "0.5"), ((1, 0.25), "(1, 0.25)")])
def test_fmt(x, want):
    assert fmt(x) == want


@pytest.mark.parametrize("columns", ["abc", "-3", "0", "99999999999"])
def test_a_bad_columns_value_falls_back_to_the_default_width(ntk, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    r = ntk("lemma21", "--trials", "2", "--n", "8")
    assert r.code == 0 and "Traceback" not in r.err and "verdict: PASS" in r.out


# -- the terminal: width, words, colour ----------------------------------------------------------
import re  # noqa: E402

from conftest import default_result  # noqa: E402

from ntkcheck.checks import REGISTRY  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _rendered(res, monkeypatch, columns="80", **env) -> str:
    monkeypatch.setenv("COLUMNS", columns)
    for k in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    buf = io.StringIO()
    render(res, make_console(buf))
    return buf.getvalue()


def _words(res) -> list[str]:
    """Every word the table must show whole: the statements, names, figures and notes."""
    words = [*res.title.split(), *res.statement.split(), *res.source.split()]
    for note in res.notes:
        words += note.split()
    for r in res.rows:
        words += [*r.statement.split(), r.name]
        words += [w for k, v in r.figures.items() for w in f"{k} = {fmt(v)}".split()]
    return words


def _assert_fits(text: str, width: int, words: list[str]) -> None:
    lines = text.splitlines()
    long = [ln for ln in lines if len(ln) > width]
    assert not long, f"{len(long)} lines longer than {width}: {long[:3]}"
    split = [w for w in words if not any(w in ln for ln in lines)]
    assert not split, f"words split across lines: {split[:5]}"


@pytest.mark.parametrize("check", [pytest.param(c, marks=pytest.mark.slow) if c == "cor24" else c for c in REGISTRY])
def test_every_default_table_fits_80_columns_and_splits_no_word(check, monkeypatch):
    res = default_result(check)
    _assert_fits(_rendered(res, monkeypatch), 80, _words(res))


def test_a_short_cor24_table_fits_80_columns(monkeypatch):
    """cor24's default is in the slow set; the same rows at a small width in the default one."""
    res = ntkcheck.run_check("cor24", m=64, trials=3, sets=["dynamics.T=2"])
    _assert_fits(_rendered(res, monkeypatch), 80, _words(res))


@pytest.mark.parametrize("columns", ["60", "100", "200"])
def test_the_table_follows_columns(result, monkeypatch, columns):
    _assert_fits(_rendered(result, monkeypatch, columns), int(columns), _words(result))


def test_a_pipe_without_columns_is_80_wide(result, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    buf = io.StringIO()
    assert make_console(buf).width == 80


@pytest.mark.parametrize("env,color,coloured", [
    ({}, "auto", False),                      # a pipe: no colour
    ({"NO_COLOR": ""}, "auto", False),        # NO_COLOR empty: as if unset (no-color.org)
    ({"FORCE_COLOR": "1"}, "auto", True),     # FORCE_COLOR colours a pipe
    ({"FORCE_COLOR": "1"}, "never", False),   # --color never wins
    ({"NO_COLOR": "1"}, "always", True),      # --color always wins
])
def test_colour_is_the_only_difference(result, monkeypatch, env, color, coloured):
    from ntkcheck import report

    monkeypatch.setattr(report, "COLOUR", color)
    text = _rendered(result, monkeypatch, **env)
    assert ("\x1b[" in text) == coloured
    monkeypatch.setattr(report, "COLOUR", "never")
    assert ANSI.sub("", text) == _rendered(result, monkeypatch)  # the same layout, colour aside


def test_color_option_on_the_command_line(ntk):
    r = ntk("lemma21", "--trials", "2", "--n", "8", "--color", "always")
    assert r.code == 0 and "\x1b[" in r.out
    r = ntk("lemma21", "--trials", "2", "--n", "8", "--color", "sometimes")
    assert r.code == 2 and "sometimes" in r.err


def test_controls_show_as_xfail_and_are_counted_apart(passing):
    buf = io.StringIO()
    render(passing, make_console(buf))
    text = buf.getvalue()
    controls = [r for r in passing.rows if r.role in ("control", "variant")]
    assert controls and all(r.verdict == "fail" for r in controls)
    for r in controls:
        assert re.search(rf"^XFAIL +{r.name} \(", text, re.M), r.name
        assert r.to_dict()["expected"] == "fail"
    assert f"{len(controls)} xfailed" in text
    assert not re.search(r"^FAIL ", text, re.M)  # no row of this passing run shows FAIL
    assert all("expected" not in r.to_dict() for r in passing.rows if r.role not in ("control", "variant"))


def test_a_control_that_passes_is_xpass_lacking_power(passing):
    from ntkcheck.stats import Decision, RowDecision, PASS

    ctl = next(r for r in passing.rows if r.role == "control")
    passed = dataclasses.replace(ctl, decision=RowDecision(PASS, 0.05, 0.0, 0.1))
    res = dataclasses.replace(passing, rows=[passed])
    buf = io.StringIO()
    render(res, make_console(buf))
    text = buf.getvalue()
    assert re.search(rf"^XPASS +{ctl.name}", text, re.M) and "lacks power" in text and "1 xpassed" in text
    assert Decision  # (imported with the row decision)


def test_an_interrupted_run_never_shows_a_plain_pass(passing):
    res = dataclasses.replace(passing, interrupted=True, planned_trials=passing.trials + 7)
    buf = io.StringIO()
    render(res, make_console(buf))
    text = buf.getvalue()
    assert not re.search(r"\bPASS\b(?! \(so far\))", text), text
    assert "verdict: INTERRUPTED" in text and "PASS (so far)" in text
    suite = ET.fromstring(to_junit([res])).find("testsuite")
    assert suite.find("properties/property[@name='verdict']").get("value").startswith("interrupted")
    primaries = [r for r in res.rows if r.primary and r.verdict == "pass"]
    assert int(suite.get("skipped")) == len(primaries) > 0
    from ntkcheck.sweep import to_csv

    rows = list(csv.DictReader(io.StringIO(to_csv([{"values": {"x": 1}, "result": res}], [("x", [1])]))))
    assert all(row["verdict"] != "pass" for row in rows)


def test_junit_names_the_scenario_and_the_failed_claim(tmp_path):
    res = ntkcheck.run_check("lemma23", n=12, d=6, m=1024, sets=["claim.c=1e6"])
    res = dataclasses.replace(res, scenario_path="a/b.yaml")
    suite = ET.fromstring(to_junit([res])).find("testsuite")
    assert suite.get("name") == "ntkcheck.lemma23[a/b.yaml]"
    fail = suite.find("testcase[@name='joint']/failure")
    assert fail is not None and "claim joint failed" in fail.get("message")
    assert "violated in trial" in fail.get("message") and "--replay" in fail.get("message")


def test_a_fail_of_an_unspecified_constant_says_it_only_bounds_the_constant():
    res = ntkcheck.run_check("cor22", m=16, trials=5)
    assert next(r for r in res.rows if r.name == "joint").verdict == "fail"
    note = next(n for n in res.notes if n.startswith("C is unspecified"))
    assert f"{res.quantities['width_ratio']:.3g}" in note and "--critical network.m" in note
    assert not any(n.startswith("C is unspecified") for n in ntkcheck.run_check("cor22", trials=5).notes)


def test_a_claim_false_at_the_centre_of_the_ball_says_the_width_is_too_small():
    res = ntkcheck.run_check("lemma23", n=12, d=6, m=4, trials=5)
    lam_rows = next(r for r in res.rows if r.name == "lambda_min")
    assert lam_rows.violations > 0
    assert any("already at the centre of the ball" in n and "m = 4 is too small" in n for n in res.notes)


def test_one_data_file_is_a_deterministic_fact(tmp_path, monkeypatch):
    import numpy as np

    f = tmp_path / "x.csv"
    np.savetxt(f, np.random.default_rng(1).standard_normal((12, 4)), delimiter=",")
    res = ntkcheck.run_check("lemma21", data=str(f))
    row = next(r for r in res.rows if r.name == "positive")
    assert row.deterministic and row.ci_low is None and res.trials == 1
    text = _rendered(res, monkeypatch)
    assert "no Monte Carlo interval" in text and "P(viol.)" not in text


def test_a_result_shows_itself_in_a_notebook(passing):
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.text = 0, []

        def handle_starttag(self, tag, attrs):
            self.rows += tag == "tr"

        def handle_data(self, data):
            self.text.append(data)

    p = Cells()
    p.feed(passing._repr_html_())
    text = "".join(p.text)
    assert p.rows == len(passing.rows) + 1  # a header and a row per claim
    assert "XFAIL" in text and "control_big_ball" in text and "PASS (29 trials" in text


# -- the HTML report -------------------------------------------------------------------------------
class _Page:
    """What a report holds, read by the standard library's HTML parser."""

    def __init__(self, text: str):
        from html.parser import HTMLParser

        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        page = self

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                page.tags.append((tag, dict(attrs)))

            def handle_data(self, data):
                page.text.append(data)

        P().feed(text)
        self.joined = "".join(self.text)

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.tags)


def _self_contained(page: _Page) -> None:
    assert page.count("script") == 0 and page.count("link") == 0  # inline CSS, no code
    for _, attrs in page.tags:
        for k in ("src", "href"):
            assert not str(attrs.get(k, "")).startswith(("http:", "https:", "//")), attrs


def test_a_check_report_is_one_self_contained_file(ntk, tmp_path):
    out = tmp_path / "r.html"
    r = ntk("lemma23", "--n", "12", "--d", "6", "--m", "1024", "--set", "claim.c=1e6", "--report", out)
    assert r.code == 1
    page = _Page(out.read_text(encoding="utf-8"))
    _self_contained(page)
    assert page.count("h1") == 1 and page.count("h2") == 1 and page.count("table") == 1
    assert page.count("tr") == 1 + 4  # the header and lemma23's four rows
    for want in ("Statement.", "[DZPS]", "FAIL", "XFAIL", "--replay 0 --expect joint=violation", "check: lemma23",
                 "c: 1000000.0", "numpy ", "seed 0"):
        assert want in page.joined, want


def test_run_and_sweep_reports(ntk, tmp_path):
    (tmp_path / "a.yaml").write_text("check: lemma21\ntrials: 3\ndata: {n: 8}\n")
    (tmp_path / "b.yaml").write_text("check: cor22\ntrials: 3\n")
    out = tmp_path / "run.html"
    assert ntk("run", tmp_path, "--report", out, "-q").code in (0, 3)
    page = _Page(out.read_text(encoding="utf-8"))
    _self_contained(page)
    assert page.count("h2") == 2 and "a.yaml" in page.joined and "b.yaml" in page.joined
    out = tmp_path / "sweep.html"
    assert ntk("sweep", "lemma21", "--over", "data.n=6,8", "--trials", "2", "--report", out, "-q").code == 0
    page = _Page(out.read_text(encoding="utf-8"))
    _self_contained(page)
    imgs = [a for t, a in page.tags if t == "img"]
    assert page.count("h2") == 2 and len(imgs) == 1 and imgs[0]["src"].startswith("data:image/png;base64,")


def _chromium():
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed")
def test_the_report_renders_in_headless_chromium(ntk, tmp_path):
    """Rendered by a browser: a screenshot of the page is written and is not blank."""
    import subprocess

    import numpy as np

    out = tmp_path / "r.html"
    ntk("lemma23", "--n", "12", "--d", "6", "--m", "1024", "--report", out)
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1100,1400", out.as_uri()],
                   check=True, capture_output=True, timeout=120)
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] == 1400 and img.shape[1] == 1100
    dark = (img[..., :3].mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.5  # text on a light page: neither blank nor a black box
    assert np.unique(img[..., 0]).size > 16
