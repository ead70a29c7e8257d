"""sweep.py: parsing grids, running them, and their CSV."""
import csv
import io

import pytest

import ntkcheck
from ntkcheck.errors import UserError
from ntkcheck.sweep import parse_grid, run_grid, to_csv


def test_parse_grid_reads_yaml_values_and_refuses_bad_items():
    assert parse_grid(("claim.c=1,1e3,x",)) == [("claim.c", [1, 1000.0, "x"])]
    assert parse_grid(("a=1", "b=true,false")) == [("a", [1]), ("b", [True, False])]
    for bad in (("c",), ("=1",), ("c=",), ("c=1,,2",), ("c=1", "c=2")):
        with pytest.raises(UserError):
            parse_grid(bad)


def test_a_grid_runs_every_point_and_its_csv_has_a_row_per_point_and_claim():
    grid = parse_grid(("data.n=6,8",))
    points = run_grid("lemma21", None, grid, {"trials": 2},
                      lambda ov: ntkcheck.run_check("lemma21", **ov))
    assert [p["values"]["data.n"] for p in points] == [6, 8]
    assert [p["result"].quantities["n"] for p in points] == [6, 8]
    rows = list(csv.DictReader(io.StringIO(to_csv(points, grid))))
    assert len(rows) == sum(len(p["result"].rows) for p in points)
    assert {r["verdict"] for r in rows} <= {"pass", "fail", "inconclusive"}
    assert rows[0]["data.n"] == "6" and rows[-1]["data.n"] == "8"


def test_a_2d_sweep_plot_has_a_line_per_value_of_the_second_key(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from ntkcheck import sweep as sw

    got = {}

    def keep(fig, path):
        got["fig"] = fig

    monkeypatch.setattr(sw, "save_figure", keep)
    grid = sw.parse_grid(("claim.c=1,100", "data.n=8,12"))
    points = sw.run_grid("lemma23", None, grid, {"m": 1024, "d": 6},  # (29 trials: c* exists)
                         lambda o: ntkcheck.run_check("lemma23", **o))
    sw.plot(points, grid, "lemma23", str(tmp_path / "p.png"))
    ax = got["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for n in (8, 12):
        assert f"certified (data.n={n})" in labels and any(lb.startswith("c* = ") and f"(data.n={n})" in lb
                                                           for lb in labels)
    assert {"PASS", "FAIL"} & set(labels)  # the verdict markers are in the legend
    assert not ax.texts  # no rotated verdict words over the markers
    assert ax.get_xscale() == "log"
