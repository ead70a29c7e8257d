"""Scenario resolution and the shipped scenario files."""
from pathlib import Path

import pytest
import yaml

from ntkcheck.checks import REGISTRY, get_check
from ntkcheck.errors import UserError
from ntkcheck.scenario import parse_set, resolve

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_check_ships_its_default_as_a_file(name):
    check = get_check(name)
    model = check.scenario_model()
    builtin, _ = resolve(model, check.default_scenario())
    from_file, _ = resolve(model, check.default_scenario(), ROOT / "scenarios" / f"{name}.yaml")
    assert builtin == from_file
    assert yaml.safe_load((ROOT / "scenarios" / f"{name}.yaml").read_text())["check"] == name


def test_resolution_order_file_then_options_then_set(tmp_path):
    check = get_check("lemma23")
    p = tmp_path / "s.yaml"
    p.write_text("network: {m: 100}\nclaim: {c: 2.0}\nseed: 5\n")
    sc, explicit = resolve(check.scenario_model(), check.default_scenario(), p,
                           {"network.m": 200}, ["network.m=300", "claim.delta=0.2"])
    assert sc.network.m == 300 and sc.claim.c == 2.0 and sc.claim.delta == 0.2 and sc.seed == 5
    assert sc.data.n == 50  # untouched default
    assert {"network.m", "claim.c", "claim.delta", "seed"} <= explicit


def test_set_values_are_yaml_typed():
    assert parse_set("claim.c=1e3") == ("claim.c", 1000.0)
    assert parse_set("trials=auto") == ("trials", "auto")
    assert parse_set("network.widths=[1, 2]") == ("network.widths", [1, 2])
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_set("claim.c")


def test_relative_data_path_in_a_scenario_is_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    scen = tmp_path / "sub" / "s.yaml"
    scen.write_text("data: {source: file, path: x.npy}\n")
    check = get_check("lemma23")
    sc, _ = resolve(check.scenario_model(), check.default_scenario(), scen)
    assert Path(sc.data.path) == tmp_path / "sub" / "x.npy"


def test_scenario_for_another_check_is_refused(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("check: lemma21\n")
    check = get_check("lemma23")
    with pytest.raises(UserError, match="for check 'lemma21'"):
        resolve(check.scenario_model(), check.default_scenario(), p)


def test_project_defaults_come_from_pyproject_and_lose_to_everything_else(tmp_path, monkeypatch):
    import ntkcheck
    from ntkcheck.errors import UserError

    (tmp_path / "pyproject.toml").write_text("[tool.ntkcheck]\nconfidence = 0.9\nworkers = 1\ntrials = 3\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)  # found from a folder below, as pytest finds its rootdir
    res = ntkcheck.run_check("lemma21", n=8)
    assert res.scenario["confidence"] == 0.9 and res.scenario["compute"]["workers"] == 1 and res.trials == 3
    assert ntkcheck.run_check("lemma21", n=8, confidence=0.99).scenario["confidence"] == 0.99  # an option wins
    f = tmp_path / "s.yaml"
    f.write_text("check: lemma21\nconfidence: 0.8\n")
    assert ntkcheck.run_check("lemma21", str(f), n=8).scenario["confidence"] == 0.8  # a scenario file wins
    (tmp_path / "pyproject.toml").write_text("[tool.ntkcheck]\nconfidense = 0.9\n")
    with pytest.raises(UserError, match="unknown key 'confidense'"):
        ntkcheck.run_check("lemma21", n=8)
    (tmp_path / "pyproject.toml").write_text("[tool.ntkcheck\n")
    with pytest.raises(UserError, match="could not be read as TOML"):
        ntkcheck.run_check("lemma21", n=8)
