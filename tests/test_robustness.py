"""Fuzzed scenarios and overrides, numerical faults, atomic outputs."""
import os
import json
import math

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ntkcheck
from ntkcheck.cli import main
from ntkcheck.stats import PASS

CHECKS = ["lemma21", "cor22", "lemma23", "cor24", "thm41", "lemma43", "lemma44", "lemma45", "thm42", "thm46", "nnkernel", "nnrf"]

# small sizes keep every accepted run fast; the values also include bad ones
ints = st.one_of(st.integers(-3, 3), st.integers(8, 48), st.sampled_from([0, 1, 2**40, -2**31]))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 1.0, -1.0, 0.1]))
scalars = st.one_of(ints, floats, st.booleans(), st.text(max_size=5), st.none())
KEYS = ["seed", "trials", "confidence", "violation_bound", "data.n", "data.d", "data.source", "network.m",
        "claim.delta", "claim.c", "claim.epsilon", "claim.variant_rate", "claim.attack_iterations",
        "dynamics.T", "dynamics.step", "dynamics.method", "compute.working_memory_mb", "bogus.key",
        "target.quadrature_nodes", "network.widths"]


def run_cli(args, capsys):
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def clamp_sizes(sets):
    """Keep the accepted runs small: large but valid sizes are capped (bad ones are kept)."""
    return sets + ["trials=2", "compute.workers=1"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(check=st.sampled_from(CHECKS), overrides=st.dictionaries(st.sampled_from(KEYS), scalars, max_size=4))
def test_fuzzed_overrides_give_a_verdict_or_a_clean_refusal(check, overrides, capsys, tmp_path_factory):
    sets = []
    for k, v in overrides.items():
        if k in ("network.m", "data.n") and isinstance(v, int) and v > 48:
            v = 48
        sets.append(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
    args = [check, "--m", "64", "--n", "8", "--d", "4"]
    for s in clamp_sizes(sets):
        args += ["--set", s]
    j = tmp_path_factory.mktemp("f") / "r.json"
    code, out, err = run_cli(args + ["--json", str(j)], capsys)
    assert code in (0, 1, 2, 3), (args, code, err)
    assert "Traceback" not in err + out
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1
        assert not j.exists()
    else:
        text = j.read_text()
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text)
        assert "= nan" not in out.lower() and "=nan" not in out.lower()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                      st.dictionaries(st.sampled_from(KEYS + ["data", "claim"]), c,
                                                                      max_size=3)), max_leaves=8),
       check=st.sampled_from(CHECKS))
def test_fuzzed_scenario_documents(doc, check, capsys, tmp_path_factory):
    p = tmp_path_factory.mktemp("s") / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    code, out, err = run_cli([check, str(p), "--m", "64", "--n", "8", "--d", "4", "--trials", "2",
                              "--workers", "1"], capsys)
    assert code in (0, 1, 2, 3), err
    assert "Traceback" not in err + out


def test_non_finite_values_in_a_trial_are_errors_that_never_pass(monkeypatch, ntk):
    import ntkcheck.checks.lemma23 as l23

    orig = l23.Lemma23.run_trial

    def poisoned(self, sc, ctx, rng, index):
        res = orig(self, sc, ctx, rng, index)
        if index == 1:
            res.values["certified_norm"] = math.nan
        return res

    monkeypatch.setattr(l23.Lemma23, "run_trial", poisoned)
    res = ntkcheck.run_check("lemma23", m=256, n=10, d=4, workers=1)
    assert res.verdict != PASS
    assert res.trial_errors and res.trial_errors[0]["trial"] == 1
    assert "--replay 1" in res.trial_errors[0]["replay"]
    assert all(r.errors == 1 for r in res.rows)
    text = json.dumps(res.to_dict(), allow_nan=False)  # no NaN can reach the output
    assert "NaN" not in text


def test_floating_point_faults_become_trial_errors(monkeypatch):
    import ntkcheck.checks.cor22 as c22

    def overflow(self, sc, ctx, rng, index):
        np.exp(np.array([1e5]))  # raises FloatingPointError under the trial's errstate
        raise AssertionError("unreachable")

    monkeypatch.setattr(c22.Cor22, "run_trial", overflow)
    res = ntkcheck.run_check("cor22", trials=3, m=64, workers=1)
    assert res.verdict != PASS and len(res.trial_errors) == 3
    assert "FloatingPointError" in res.trial_errors[0]["error"]


def test_a_failed_run_leaves_the_previous_output_intact(monkeypatch, ntk, tmp_path):
    j, x = tmp_path / "r.json", tmp_path / "r.xml"
    assert ntk("lemma21", "--trials", "3", "--json", j, "--junit", x).code == 0
    good_j, good_x = j.read_text(), x.read_text()
    import ntkcheck.report as rep

    def boom(*a, **k):
        raise RuntimeError("crash while writing")

    monkeypatch.setattr(rep.json, "dumps", boom)
    r = ntk("lemma21", "--trials", "3", "--json", j, "--junit", x)
    assert r.code == 4
    assert j.read_text() == good_j and x.read_text() == good_x
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.xml"]  # no temporary left


HOSTILE_YAML = {
    "alias bomb": "check: lemma23\na: &a [x, x, x, x, x, x, x, x, x]\n"
                  + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdef", "bcdefg")),
    "recursive alias": "check: lemma23\nx: &x [*x]\n",
    "deep nesting": "check: lemma23\nx: " + "[" * 4000 + "]" * 4000 + "\n",
    "deep mappings": "check: lemma23\n" + "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v: 1\n",
    "huge integer": "check: lemma23\nseed: " + "9" * 4500 + "\n",
    "duplicate key": "check: lemma23\nseed: 1\nseed: 2\n",
    "two documents": "check: lemma23\n---\ncheck: lemma21\n",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_hostile_yaml_is_one_short_sentence_and_exit_2(case, ntk, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(HOSTILE_YAML[case])
    r = ntk("run", p)
    assert r.code == 2, (case, r.err[:300])
    assert r.err.count("\n") == 1 and len(r.err) < 300 and "Traceback" not in r.err


def test_duplicate_keys_are_named():
    from ntkcheck.errors import UserError
    from ntkcheck.scenario import safe_yaml

    with pytest.raises(UserError, match="gives key 'seed' twice"):
        safe_yaml("seed: 1\nseed: 2\n", "x")


@pytest.mark.parametrize("args", [
    ("lemma23", "--trials", "0"), ("lemma23", "--set", "trials=0"), ("lemma23", "--set", "trials=-3"),
    ("lemma23", "--trials", str(10**9)), ("lemma23", "--trials", str(2**64)),
    ("lemma23", "--set", "claim.c=1\n---\n2"),
    ("cor24", "--set", "dynamics.T=1.7e308"), ("cor24", "--set", "dynamics.step=1e-320"),
    ("cor24", "--set", "dynamics.T=1.7e308", "--set", "dynamics.method=flow"),
    ("lemma43", "--set", "network.widths=[]"),
    ("lemma21", "--json", ""),
])
def test_hostile_counts_and_numbers(args, ntk):
    r = ntk(*args)
    assert r.code == 2, (args, r.err[:300])
    assert r.err.count("\n") == 1 and len(r.err) < 300


def test_a_fifo_scenario_is_refused_without_blocking(ntk, tmp_path):
    p = tmp_path / "fifo.yaml"
    os.mkfifo(p)
    r = ntk("run", p)
    assert r.code == 2 and "not a regular file" in r.err


def test_outputs_refuse_devices_and_the_same_file_and_follow_the_umask(ntk, tmp_path):
    r = ntk("lemma21", "--n", "5", "--json", "/dev/null")
    assert r.code == 2 and "not a regular file" in r.err
    link = tmp_path / "link.json"
    link.symlink_to("/dev/null")
    r = ntk("lemma21", "--n", "5", "--json", link)
    assert r.code == 2 and "not a regular file" in r.err
    same = tmp_path / "same"
    r = ntk("lemma21", "--n", "5", "--json", same, "--junit", same)
    assert r.code == 2 and "name the same file" in r.err
    old = os.umask(0o027)
    try:
        r = ntk("lemma21", "--n", "5", "--json", tmp_path / "r.json")
    finally:
        os.umask(old)
    assert r.code == 0 and (os.stat(tmp_path / "r.json").st_mode & 0o777) == 0o640


def test_a_full_disk_is_one_sentence_and_leaves_no_file(monkeypatch, tmp_path):
    import errno

    from ntkcheck import report
    from ntkcheck.errors import UserError

    class Full:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report.os, "fdopen", lambda fd, *a, **k: (os.close(fd), Full())[1])
    with pytest.raises(UserError, match="No space left on device"):
        report.write_atomic(tmp_path / "r.json", "{}")
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary file


_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))
_docs = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(doc=st.one_of(_docs, st.dictionaries(st.sampled_from(["seed", "trials", "data", "claim", "network",
                                                            "compute", "confidence", "check"]), _docs,
                                            max_size=5)),
       raw=st.text(max_size=200), key=st.text(max_size=20), value=st.text(max_size=40))
def test_generated_yaml_and_set_values_give_a_sentence_or_a_scenario(doc, raw, key, value):
    """Any document, any text and any --set item: a validated scenario or a UserError, nothing else."""
    import tempfile

    from ntkcheck.checks import get_check
    from ntkcheck.errors import UserError
    from ntkcheck.scenario import resolve

    check = get_check("lemma23")
    with tempfile.TemporaryDirectory() as d:
        for text in (yaml.safe_dump(doc), raw):
            p = os.path.join(d, "s.yaml")
            with open(p, "w", encoding="utf-8") as fh:
                fh.write(text)
            try:
                resolve(check.scenario_model(), check.default_scenario(), p)
            except UserError as e:
                assert len(str(e)) < 400
    try:
        resolve(check.scenario_model(), check.default_scenario(), None, sets=[f"{key}={value}"])
    except UserError as e:
        assert len(str(e)) < 400


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("name,data,message", [
    ("typo.csv", b"a,b,c\n1,2,3\n4,x3,6\n1,1,0\n", "'x3' at line 3, column 2"),
    ("us.csv", b"1_0,2,3\n4,5,6\n1,2,2\n", "'1_0' at line 1, column 1"),
    ("nul.csv", b"1,2,3\n4,\x005,6\n1,2,2\n", "at line 2, column 2"),
    ("mixed.csv", b"x1,2,3\n4,5,6\n1,2,2\n", "'x1' at line 1, column 1"),  # a header has no number
    ("bad.npz", b"PK\x03\x04garbage", "could not be read as npz"),
])
def test_data_files_with_bad_cells_are_refused_by_row_and_column(name, data, message, ntk, tmp_path):
    r = ntk("lemma21", "--data", _write(tmp_path, name, data))
    assert r.code == 2 and message in r.err, r.err
    assert r.err.count("\n") == 1


def test_a_bom_and_a_header_of_names_are_read_not_dropped(tmp_path):
    from ntkcheck.data import load_array

    rows = b"1,2,3\n4,5,6\n7,8,1\n"
    for prefix in (b"\xef\xbb\xbf", b"x1,x2,x3\n", b""):
        np.testing.assert_array_equal(load_array(_write(tmp_path, "d.csv", prefix + rows)),
                                      [[1, 2, 3], [4, 5, 6], [7, 8, 1]])


def test_an_npy_header_is_read_before_its_data(ntk, tmp_path):
    p = tmp_path / "huge.npy"
    with open(p, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                   "shape": (10**7, 10**7)})
    r = ntk("lemma21", "--data", p)
    assert r.code == 2 and "GiB of numbers" in r.err
    r = ntk("lemma21", "--data", "/dev/zero")
    assert r.code == 2 and "not a regular file" in r.err


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_rows_of_extreme_size_normalise_like_unit_rows(scale):
    from ntkcheck.data import normalize, validate_inputs

    X = np.random.default_rng(5).standard_normal((6, 3))
    got = normalize(validate_inputs(X * scale, "x"), "x").X
    np.testing.assert_allclose(got, X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-14)


def test_run_validates_every_scenario_first_and_names_each_invalid_one(ntk, tmp_path):
    (tmp_path / "a.yaml").write_text("check: lemma21\ntrials: 3\ndata: {n: 5, d: 3}\n")
    (tmp_path / "b.yaml").write_text("check: lemma23\nnope: 1\n")
    (tmp_path / "c.yaml").write_text("check: cor22\nseed: -1\n")
    r = ntk("run", tmp_path)
    assert r.code == 2
    assert "b.yaml: unknown scenario key 'nope'" in r.err and "c.yaml: scenario key 'seed'" in r.err
    assert "lemma21" not in r.out  # nothing ran


def test_bare_command_prints_the_help_without_error(ntk):
    r = ntk()
    assert r.code == 2 and "Usage: ntkcheck" in r.out and "error" not in r.err


def test_a_closed_pipe_ends_quietly_with_the_sigpipe_code():
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from ntkcheck.cli import console_main; console_main()", "lemma21", "--n", "5"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the table is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "error" not in err


@pytest.mark.parametrize("how", ["file", "set", "set_mapping"])
def test_only_the_command_line_may_choose_a_scheduler(ntk, tmp_path, how):
    """Dask's protocol carries pickles: a scenario file (or a pasted --set) that could pick the
    scheduler could send the trials, and take code, from anywhere."""
    if how == "file":
        p = tmp_path / "s.yaml"
        p.write_text("check: lemma21\ncompute: {scheduler: 'tcp://203.0.113.9:8786'}\n")
        r = ntk("run", p)
    elif how == "set":
        r = ntk("lemma21", "--set", "compute.scheduler=tcp://203.0.113.9:8786")
    else:
        r = ntk("lemma21", "--set", "compute={scheduler: 'tcp://203.0.113.9:8786'}")
    assert r.code == 2 and "only the command line (--scheduler ADDRESS)" in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_json_to_standard_output_leaves_it_pure_json(ntk):
    r = ntk("lemma21", "--trials", "3", "--json", "-")
    assert r.code == 0
    assert json.loads(r.out)["check"] == "lemma21"  # the table went to standard error
    assert "verdict: PASS" in r.err
    r = ntk("lemma21", "--json", "-", "--junit", "-")
    assert r.code == 2 and "cannot both write to standard output" in r.err


def test_names_that_are_not_utf8_or_hold_control_characters_still_give_valid_outputs(ntk, tmp_path):
    name = os.fsdecode(b"d\xff\x01.npy")  # bytes that are no UTF-8, and a control character
    path = os.path.join(os.fsdecode(bytes(tmp_path)), name)
    with open(os.fsencode(path), "wb") as f:
        np.save(f, np.random.default_rng(0).standard_normal((6, 3)))
    r = ntk("lemma21", "--data", path, "--trials", "3", "--json", tmp_path / "o.json", "--junit", tmp_path / "o.xml")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))["scenario"]["data"]["path"] == path
    ET.parse(tmp_path / "o.xml")  # XML 1.0 holds neither a lone surrogate nor \x01: replaced


@pytest.mark.parametrize("check", ["lemma21", "cor22", "lemma23", "cor24", "lemma43"])
def test_the_memory_estimate_comes_before_any_n_by_n_array(ntk, check):
    r = ntk(check, "--n", "100000", "--trials", "2")
    assert r.code == 2 and "n = 100000 inputs needs about" in r.err and r.err.count("\n") == 1


def test_a_container_memory_limit_is_respected(monkeypatch, tmp_path):
    from ntkcheck import memory
    from ntkcheck.errors import UserError

    limit = tmp_path / "memory.max"
    limit.write_text(str(2**30) + "\n")  # 1 GiB, far below this machine's memory
    monkeypatch.setattr(memory, "CGROUP_LIMITS", (str(limit),))
    assert memory.memory_limit_bytes() == 2**30
    with pytest.raises(UserError, match="GiB this machine"):
        memory.require_memory(2**30, "a test")
    limit.write_text("max\n")  # no limit: physical memory
    assert memory.memory_limit_bytes() > 2**30


def test_a_folder_that_takes_no_new_file_is_one_sentence(tmp_path):
    from ntkcheck import report
    from ntkcheck.errors import UserError

    from pathlib import Path

    # /proc takes no new files even for root (a read-only folder would not stop root)
    target = Path("/proc/ntkcheck-test.json")
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(UserError, match="could not write"):
        report.write_atomic(target, "{}")
