"""The command-line contract: exit codes, JSON, JUnit, replay, refusals."""
import json
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import ntkcheck
from ntkcheck.stats import PASS

FAST = ["--m", "1024", "--n", "12", "--d", "6"]


def test_version_list_explain(ntk):
    r = ntk("--version")
    assert r.code == 0 and ntkcheck.__version__ in r.out
    r = ntk("list")
    assert r.code == 0 and "lemma21" in r.out and "lemma23" in r.out
    r = ntk("explain", "lemma23")
    assert r.code == 0
    assert "[DZPS]" in r.out and "Lemma 3.2" in r.out and "Ω(0, I)" in r.out and "N(0, I)" in r.out
    r = ntk("explain", "lemma21")
    assert "H^α" in r.out and "H^∞" in r.out and "Theorem 3.1" in r.out


def test_default_lemma23_passes_and_writes_json_and_junit(ntk, tmp_path):
    j, x = tmp_path / "r.json", tmp_path / "r.xml"
    r = ntk("lemma23", "--json", j, "--junit", x)
    assert r.code == 0, r.out + r.err
    assert "PASS" in r.out and "\x1b[" not in r.out  # plain text under NO_COLOR
    d = json.loads(j.read_text())
    for key in ("ntkcheck_version", "check", "verdict", "seed", "scenario", "quantities", "claims"):
        assert key in d
    assert d["verdict"] == "pass" and d["check"] == "lemma23"
    assert {"lambda0", "radius"} <= set(d["quantities"])
    assert d["scenario"]["network"]["m"] == 4096 and d["scenario"]["claim"]["delta"] == 0.1
    for c in d["claims"]:
        for key in ("name", "kind", "primary", "verdict", "trials", "holds", "violations", "undecided",
                    "ci_low", "ci_high", "confidence"):
            assert key in c
        assert c["holds"] + c["violations"] + c["undecided"] + c["errors"] == c["trials"]
    suite = ET.parse(x).getroot().find("testsuite")
    assert len(suite.findall("testcase")) == 4 and suite.get("failures") == "0"


def test_large_c_fails_with_a_replayable_counterexample(ntk, tmp_path):
    j = tmp_path / "r.json"
    x = tmp_path / "r.xml"
    r = ntk("lemma23", *FAST, "--set", "claim.c=1e6", "--json", j, "--junit", x)
    assert r.code == 1, r.out + r.err
    d = json.loads(j.read_text())
    norm = next(c for c in d["claims"] if c["name"] == "norm")
    assert norm["verdict"] == "fail" and norm["violations"] > 0
    ce = norm["counterexample"]
    assert ce["replay"] in r.out.replace(" \\\n      ", " ")  # (a long command is broken with backslashes)
    assert ET.parse(x).getroot().find("testsuite").get("failures") != "0"
    # the printed command works when pasted, and replays a violation of the same trial
    argv = shlex.split(ce["replay"])
    assert argv[0] == "ntkcheck"
    rep = ntk(*argv[1:], "--json", tmp_path / "rep.json")
    assert rep.code == 0
    rd = json.loads((tmp_path / "rep.json").read_text())
    assert rd["trial"] == ce["trial"] and rd["outcomes"]["norm"] == "violation"
    assert "attack_norm" in rep.out and "certified_norm" in rep.out


def test_replayed_trial_reproduces_the_full_run_numbers(tmp_path):
    res = ntkcheck.run_check("lemma23", m=512, n=10, d=5, trials=4, sets=["claim.c=3e4"])
    rep = ntkcheck.replay_trial("lemma23", 2, m=512, n=10, d=5, sets=["claim.c=3e4"])
    again = ntkcheck.replay_trial("lemma23", 2, m=512, n=10, d=5, sets=["claim.c=3e4"], trials=99)
    assert rep.values == again.values  # the trial count does not change trial 2's draws
    worst = next(r for r in res.rows if r.name == "norm").figures["attack_worst"]
    assert rep.values["attack_norm"] <= worst


def test_inconclusive_exit_code_3(ntk):
    # between the critical constant and where the attack bites, trials are undecided
    r = ntk("lemma23", "--set", "claim.c=300", "--set", "claim.attack_iterations=0")
    assert r.code == 3, r.out


def test_opposite_rows_with_certified_lambda0_are_not_refused(ntk, tmp_path):
    # x and −2x: H∞_ij = 0 for that pair, λ0 can still be certified positive (six rows here)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 6))
    X[5] = -2 * X[1]
    assert ntkcheck.lambda0(X).certified_positive
    p = tmp_path / "opp.npy"
    np.save(p, X)
    r = ntk("lemma21", "--data", p)
    assert r.code == 0 and "rows 1 and 5 are parallel or opposite, yet λ0" in r.out
    r = ntk("lemma23", "--data", p, "--m", "256", "--trials", "3")
    assert r.code in (0, 1, 3), r.err


def test_lemma21_decides_from_the_certified_lambda0_not_a_cosine_tolerance():
    # n = 200 points on the circle: pairs within 1e-12 of parallel, yet λ0 certified positive
    res = ntkcheck.run_check("lemma21", n=200, d=2, trials=3)
    assert res.verdict == PASS, res.notes
    assert res.rows[0].holds == 3


def test_lemma21_reports_parallel_rows_by_number(ntk, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))
    X[5] = 2 * X[1]
    p = tmp_path / "par.npy"
    np.save(p, X)
    r = ntk("lemma21", "--data", p)
    assert r.code == 3  # the only trial is vacuous: no evidence
    assert "rows 1 and 5" in r.out and "hypothesis fails" in r.out
    r = ntk("lemma23", "--data", p)
    assert r.code == 2 and "rows 1 and 5" in r.err and "needs λ0" in r.err
    assert r.err.count("\n") == 1 and "Traceback" not in r.err


def test_lemma21_on_good_data_passes_and_its_variant_fails(ntk, tmp_path):
    j = tmp_path / "r.json"
    r = ntk("lemma21", "--json", j)
    assert r.code == 0
    d = json.loads(j.read_text())
    assert d["quantities"]["lambda0"] > 0
    v = next(c for c in d["claims"] if not c["primary"])
    assert v["verdict"] == "fail" and d["variants_lacking_power"] == []


def test_notes_when_data_are_normalised(ntk, tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "x.csv"
    np.savetxt(p, 3 * rng.standard_normal((10, 4)), delimiter=",", header="a,b,c,d", comments="")
    r = ntk("lemma23", "--data", p, "--trials", "3")
    assert "normalised to unit length" in r.out
    assert r.code in (0, 3)


BAD = [
    # (arguments, text expected in the one-line error)
    (["lemma23", "{tmp}/python_tag.yaml"], "not valid YAML"),
    (["lemma23", "{tmp}/unknown_key.yaml"], "unknown scenario key 'network.foo'"),
    (["lemma23", "{tmp}/empty.yaml"], "is empty"),
    (["lemma23", "{tmp}/list.yaml"], "must be a mapping"),
    (["lemma23", "{tmp}/broken.yaml"], "not valid YAML"),
    (["lemma23", "{tmp}/missing.yaml"], "does not exist"),
    (["lemma23", "--m", "-5"], "network.m"),
    (["lemma23", "--m", "0"], "network.m"),
    (["lemma23", "--m", "4096.5"], "--m"),
    (["lemma23", "--n", "1"], "data.n"),
    (["lemma23", "--set", "network.m=2.5"], "network.m"),
    (["lemma23", "--set", "network.m=true"], "network.m"),
    (["lemma23", "--set", "claim.delta=1.5"], "claim.delta"),
    (["lemma23", "--set", "claim.delta=0"], "claim.delta"),
    (["lemma23", "--confidence", "1.2"], "confidence"),
    (["lemma23", "--confidence", "0"], "confidence"),
    (["lemma23", "--set", "claim.c=.nan"], "claim.c"),
    (["lemma23", "--set", "foo.bar=1"], "unknown scenario key 'foo'"),
    (["lemma23", "--set", "claim.c"], "KEY=VALUE"),
    (["lemma23", "--set", "network=5"], "network"),
    (["lemma23", "--trials", "0"], "--trials"),
    (["lemma23", "--trials", "many"], "--trials"),
    (["lemma23", "--data", "{tmp}/nope.npy"], "does not exist"),
    (["lemma23", "--data", "{tmp}/nan.npy"], "non-finite"),
    (["lemma23", "--data", "{tmp}/cube.npy"], "2-D"),
    (["lemma23", "--data", "{tmp}/text.csv"], "non-numeric"),
    (["lemma23", "--data", "{tmp}/one.npy"], "at least 2"),
    (["lemma23", "--data", "{tmp}/dup.npy"], "rows 0 and 3"),
    (["lemma23", "--data", "{tmp}/x.txt"], "extension"),
    (["lemma23", "--data", "{tmp}/good.npy", "--d", "7"], "data.d"),
    (["lemma23", "--json", "{tmp}/no/such/dir/r.json"], "does not exist"),
    (["lemma23", "--json", "{tmp}"], "is a directory"),
    (["lemma23", "--junit", "{tmp}"], "is a directory"),
    (["lemma23", "--data", "{tmp}"], "is a directory"),
    (["lemma23", "--m", "1000000000000"], "memory"),
    (["lemma99"], "No such command"),
    (["explain", "lemma99"], "unknown check"),
    (["lemma23", "--workers", "0"], "--workers"),
    (["lemma21", "--set", "compute.workers=600"], "compute.workers"),
    (["cor22", "--set", "claim.delta=-0.1"], "claim.delta"),
    (["cor22", "--data", "{tmp}/dup.npy"], "rows 0 and 3"),
    (["cor24", "--set", "dynamics.T=-1"], "dynamics.T"),
    (["cor24", "--set", "dynamics.step=0"], "dynamics.step"),
    (["cor24", "--set", "dynamics.method=euler"], "dynamics.method"),
    (["cor24", "--set", "dynamics.T=abc"], "scenario key 'dynamics.T' must be a number or 'auto' (got 'abc')"),
    # δ below ~1.1e-16: 1 − δ rounds to 1, and the run ended in an internal error
    (["lemma23", "--set", "claim.delta=1e-300"], "scenario key 'claim.delta' must be ≥ 1e-15 (got 1e-300)"),
    (["cor22", "--set", "claim.delta=1e-17"], "claim.delta' must be ≥ 1e-15"),
    (["cor24", "--set", "claim.delta=1e-300"], "claim.delta' must be ≥ 1e-15"),
    (["thm41", "--set", "claim.epsilon=1e-300"], "claim.epsilon' must be ≥ 1e-15"),
    (["lemma23", "--set", "claim.c=1e308"], "scenario key 'claim.c' must be ≤ 1e+12 (got 1e+308)"),
    (["lemma43", "--set", "network.widths=abc"], "scenario key 'network.widths' must be 'auto' or a list"),
    (["cor24", "--data", "{tmp}/good.npy", "--labels", "{tmp}/short.npy"], "5 labels but the data have 6 rows"),
    (["cor24", "--labels", "{tmp}/nope.csv"], "does not exist"),
    (["cor24", "--data", "{tmp}/good.npy", "--labels", "{tmp}/nanlabels.npy"], "non-finite"),
    (["thm41", "--d", "1"], "d ≥ 2"),
    (["thm41", "--set", "target.terms=[{family: exp}]"], "target.terms[0].family"),
    (["thm41", "--set", "target.terms=[{family: cos, direction: 9}]"], "target.terms[0].direction"),
    (["thm41", "--set", "data.source=gaussian"], "uniform measure"),
    (["thm41", "--set", "claim.epsilon=1"], "claim.epsilon"),
    (["lemma43", "--set", "network.widths=[64]"], "at least two widths"),
    (["lemma43", "--set", "network.widths=[0, 64]"], "positive widths"),
    (["lemma43", "--set", "target.terms=[{family: linear, weight: 80}]"], "‖f*‖∞ ≤ 1"),
]


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "python_tag.yaml").write_text("network:\n  m: !!python/object/apply:os.system ['echo hi']\n")
    (tmp_path / "unknown_key.yaml").write_text("network: {m: 10, foo: 1}\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("a: [1,\n")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    np.save(tmp_path / "good.npy", X)
    Y = X.copy(); Y[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", Y)
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    np.save(tmp_path / "one.npy", X[:1])
    D = X.copy(); D[3] = D[0]
    np.save(tmp_path / "dup.npy", D)
    (tmp_path / "text.csv").write_text("1,2,3\n4,five,6\n")
    (tmp_path / "x.txt").write_text("1 2 3\n")
    np.save(tmp_path / "short.npy", np.ones(5))
    lab = np.ones(6); lab[2] = np.inf
    np.save(tmp_path / "nanlabels.npy", lab)
    return tmp_path


@pytest.mark.parametrize("args,expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_sentence_and_exit_2(ntk, bad_files, args, expected):
    r = ntk(*[a.replace("{tmp}", str(bad_files)) for a in args])
    assert r.code == 2, (r.code, r.out, r.err)
    assert expected in r.err
    assert r.err.startswith("error: ") and r.err.count("\n") == 1
    assert "Traceback" not in r.err + r.out


def test_internal_error_exits_4_with_version(ntk, monkeypatch):
    import ntkcheck.checks.lemma23 as l23

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(l23.Lemma23, "run_trial", boom)
    r = ntk("lemma23", "--trials", "1")
    assert r.code == 4 and ntkcheck.__version__ in r.err and "report" in r.err
    assert "Traceback" not in r.err
    r = ntk("--debug", "lemma23", "--trials", "1")
    assert r.code == 4 and "Traceback" in r.err


def test_console_script_runs_in_a_subprocess_without_colour():
    p = subprocess.run([sys.executable, "-m", "ntkcheck", "lemma23", *FAST, "--trials", "2"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 3), p.stderr
    assert "\x1b[" not in p.stdout and "verdict:" in p.stdout


REPLAY_CASES = {  # every check under keys that differ from its default, data.source among them
    "lemma21": dict(n=12, d=4, trials=3, sets=["data.source=gaussian"]),
    "cor22": dict(n=8, d=5, m=2048, trials=3, sets=["data.source=gaussian", "claim.delta=0.2"]),
    "lemma23": dict(n=9, d=4, m=512, trials=3, sets=["data.source=gaussian", "claim.c=3000"]),
    "cor24": dict(n=7, d=4, m=128, trials=3, sets=["data.source=gaussian", "dynamics.rtol=0.001"]),
    "thm41": dict(d=4, m=128, trials=3, sets=["claim.epsilon=0.2"]),
    "lemma43": dict(n=12, d=4, trials=2, sets=["data.source=sphere", "network.widths=[64, 128]"]),
    "lemma44": dict(n=16, d=3, m=64, trials=2, sets=["grid.widths=[16, 64]", "claim.c=0.5"]),
    "lemma45": dict(n=16, d=3, m=64, trials=2, sets=["grid.widths=[16, 64]", "dynamics.T=0.5"]),
    "thm42": dict(n=16, d=3, m=64, trials=2, sets=["grid.sizes=[8, 16]", "claim.C=10"]),
    "thm46": dict(n=16, d=3, m=64, trials=2, sets=["grid.sizes=[8, 16]", "claim.C=10"]),
    "nnkernel": dict(n=8, d=3, m=64, trials=2, sets=["grid.sizes=[4, 8]", "dynamics.horizon=20"]),
    "nnrf": dict(n=8, d=3, m=8, trials=2, sets=["grid.sizes=[4, 8]", "dynamics.T=5"]),
}


def test_the_replay_cases_cover_every_check():
    assert set(REPLAY_CASES) == set(ntkcheck.checks.REGISTRY)


@pytest.mark.parametrize("name", sorted(REPLAY_CASES))
def test_pasted_replay_reproduces_a_trial_of_every_check_bit_for_bit(name, ntk, tmp_path):
    kw = REPLAY_CASES[name]
    seen = []
    ntkcheck.run_check(name, on_trial=seen.append, seed=11, **kw)
    trial = seen[-1]
    check, sc, _ = ntkcheck.api.prepare(name, None, dict(kw, seed=11))
    outcome_row = next(iter(trial.outcomes), None)  # (lemma43's scaling rows have no per-trial outcome)
    expect = None if outcome_row is None else (outcome_row, trial.outcomes[outcome_row])
    argv = shlex.split(ntkcheck.api.replay_command(check, sc, trial.index, expect=expect))
    assert argv[0] == "ntkcheck" and ("--expect" in argv) == (expect is not None)
    r = ntk(*argv[1:], "--json", tmp_path / "rep.json")
    assert r.code == 0, r.out + r.err
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["outcomes"] == trial.outcomes
    assert rep["values"].keys() == trial.values.keys()
    assert trial.values and trial.error is None
    for k, v in trial.values.items():  # bit for bit (JSON keeps a float's shortest repr)
        if k.endswith("seconds"):
            continue  # timings
        assert rep["values"][k] == (float(v) if np.isfinite(v) else None), k
    assert rep["ntkcheck_version"] == ntkcheck.__version__


def test_a_replay_that_does_not_reproduce_says_so_and_exits_non_zero(ntk):
    r = ntk("lemma23", "--n", "9", "--d", "4", "--m", "512", "--replay", "0", "--expect", "joint=violation")
    assert r.code == 1 and "did not reproduce: claim 'joint' is holds" in r.err
    r = ntk("lemma23", "--replay", "0", "--expect", "nope=holds")
    assert r.code == 2 and "does not have" in r.err
    r = ntk("lemma23", "--expect", "joint=holds")
    assert r.code == 2 and "--expect goes with --replay" in r.err


def test_main_returns_the_exit_code_and_console_main_exits_with_it():
    """As pytest's: main() returns an ExitCode and never calls sys.exit; the console script is a
    thin wrapper; a UserError carries its message as an attribute."""
    import subprocess
    import sys

    from ntkcheck.cli import main
    from ntkcheck.errors import ExitCode, UserError

    assert main(["list"]) is ExitCode.OK
    assert main(["lemma21", "--n", "1"]) is ExitCode.USAGE
    assert UserError("a sentence.").message == "a sentence."
    p = subprocess.run([sys.executable, "-c", "from ntkcheck.cli import console_main; console_main()",
                        "lemma21", "--n", "1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.startswith("error: ")


@pytest.mark.parametrize("check", ["lemma21", "cor22", "lemma23", "nnrf"])
def test_scenario_prints_a_yaml_file_that_runs_as_the_default(ntk, tmp_path, check):
    import yaml

    import ntkcheck
    from ntkcheck.checks import get_check

    r = ntk("scenario", check)
    assert r.code == 0
    doc = yaml.safe_load(r.out)
    assert doc["check"] == check
    assert doc == get_check(check).default_scenario()  # (the file is the default, written out)
    f = tmp_path / "s.yaml"
    f.write_text(r.out)
    small = {"trials": 3}
    a, b = ntkcheck.run_check(check, str(f), **small).to_dict(), ntkcheck.run_check(check, **small).to_dict()
    from test_golden import _same  # (the golden files' comparison: timing fields aside)

    a["scenario_path"] = b["scenario_path"]
    _same(b, a)
    assert ntk("run", f, "--quiet").code in (0, 3)


def test_scenario_refuses_a_suite_the_check_lacks(ntk):
    r = ntk("scenario", "cor24", "--suite", "full")
    assert r.code == 2 and "no full scenario of cor24" in r.err


def test_the_built_in_scenarios_are_package_data():
    from importlib import resources

    base = resources.files("ntkcheck") / "scenarios"
    from ntkcheck.checks import REGISTRY

    assert all((base / f"{c}.yaml").is_file() and (base / "smoke" / f"{c}.yaml").is_file() for c in REGISTRY)


def test_explain_prints_yaml_values_and_only_the_keys_the_check_uses(ntk):
    r = ntk("explain", "thm41")
    assert "TermSpec(" not in r.out and "{degree: 2, direction: 0, family: cos" in r.out
    assert "data.n " not in r.out and "data.labels" not in r.out  # thm41 draws no data set and trains nothing
    assert "max_seconds" in r.out and "null" in r.out


def test_a_key_the_check_ignores_is_warned_of_in_one_sentence(ntk, tmp_path):
    import numpy as np

    f = tmp_path / "y.csv"
    np.savetxt(f, np.ones(12), delimiter=",")
    r = ntk("lemma23", *FAST, "--trials", "2", "--labels", f)
    assert "lemma23 does not use data.labels.path, data.labels.source; the value given has no effect." in r.flat
    r = ntk("thm41", "--n", "7", "--trials", "2", "--set", "network.m=64")
    assert "thm41 does not use data.n; the value given has no effect." in r.flat
    assert "does not use" not in ntk("lemma23", *FAST, "--trials", "2").flat


def _complete(words: str) -> list[str]:
    from click.testing import CliRunner

    from ntkcheck.cli import cli

    env = {"_NTKCHECK_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    out = CliRunner().invoke(cli, [], prog_name="ntkcheck", env=env).output
    return [ln.split(",", 1)[1] for ln in out.splitlines() if "," in ln]


def test_shell_completion_knows_the_checks_and_their_keys():
    assert {"lemma21", "lemma23", "lemma43", "lemma44", "lemma45"} <= set(_complete("ntkcheck lem"))
    keys = _complete("ntkcheck lemma23 --set claim.")
    assert "claim.c=" in keys and all(k.startswith("claim.") for k in keys)
    assert "claim.c=" not in _complete("ntkcheck lemma21 --set claim.")  # lemma21 has no claim.c
    assert "claim.c=" in _complete("ntkcheck sweep lemma23 --set claim.")
