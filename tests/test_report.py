"""report.py: the table, JSON and JUnit renderings of a result."""
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
