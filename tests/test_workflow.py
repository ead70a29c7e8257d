"""Batch and CI workflow: run, smoke set, sweep with CSV and plot, plan, quiet, progress, Ctrl-C."""
import builtins
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_set_covers_every_check_and_passes(ntk, tmp_path):
    from ntkcheck.checks import REGISTRY

    j, x = tmp_path / "s.json", tmp_path / "s.xml"
    t0 = time.perf_counter()
    r = ntk("run", ROOT / "scenarios" / "smoke", "--json", j, "--junit", x)
    elapsed = time.perf_counter() - t0
    assert r.code == 0, r.out[-2000:]
    d = json.loads(j.read_text())
    assert sorted(res["check"] for res in d["results"]) == sorted(REGISTRY)
    assert len(ET.parse(x).getroot().findall("testsuite")) == len(REGISTRY)
    assert "summary" in r.out and "overall: exit 0" in r.out
    print(f"smoke set: {elapsed:.1f} s")  # the README quotes this figure; the budget is 60 s


def test_run_combines_exit_codes(ntk, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ok.yaml").write_text("check: lemma21\ntrials: 3\ndata: {n: 8, d: 4}\n")
    (tmp_path / "a" / "bad.yaml").write_text("check: cor22\ntrials: 3\nnetwork: {m: 64}\ndata: {n: 8, d: 4}\n")
    (tmp_path / "inc.yaml").write_text("check: lemma23\ntrials: 3\nnetwork: {m: 64}\ndata: {n: 8, d: 4}\n")
    r = ntk("run", tmp_path / "a", "-q")
    assert r.code == 1  # any fail → 1
    r = ntk("run", tmp_path / "inc.yaml", tmp_path / "a" / "ok.yaml", "-q")
    assert r.code == 3  # else any inconclusive → 3
    assert r.out.count("verdict:") == 2
    (tmp_path / "nocheck.yaml").write_text("seed: 1\n")
    r = ntk("run", tmp_path / "nocheck.yaml")
    assert r.code == 2 and "check:" in r.err


def test_sweep_table_csv_and_plot(ntk, tmp_path):
    pytest.importorskip("matplotlib")
    c, p = tmp_path / "s.csv", tmp_path / "s.png"
    r = ntk("sweep", "lemma23", "--over", "network.m=128,512", "--over", "claim.c=1e3,1e5",
            "--n", "10", "--d", "4", "--trials", "4", "--csv", c, "--plot", p)
    assert r.code in (1, 3)
    assert "sweep: 4 grid points" in r.out
    rows = list(csv.DictReader(io.StringIO(c.read_text())))
    assert len(rows) == 16  # 4 grid points × 4 claims (joint, its two parts, the control)
    assert {"network.m", "claim.c", "claim", "verdict", "ci_low", "certified_median", "threshold"} <= set(rows[0])
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


@pytest.mark.parametrize("args", [("lemma21", "--n", "5"), ("sweep", "lemma21", "--over", "data.n=5,10"),
                                  ("scaling", "lemma23", "--over", "data.n=4,8")])
def test_a_plot_path_not_ending_in_png_is_refused_before_any_work(ntk, tmp_path, args):
    # the picture is always PNG: x.pdf would hold PNG bytes under a false name
    r = ntk(*args, "--plot", tmp_path / "x.pdf")
    assert r.code == 2 and "--plot writes a PNG image" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pdf").exists()


def test_a_sweep_plot_follows_the_umask_as_every_output_does(ntk, tmp_path):
    pytest.importorskip("matplotlib")
    old = os.umask(0o027)
    try:
        r = ntk("sweep", "lemma21", "--over", "data.n=5,10", "--trials", "3", "--plot", tmp_path / "s.png")
    finally:
        os.umask(old)
    assert r.code in (0, 1, 3)
    assert (os.stat(tmp_path / "s.png").st_mode & 0o777) == 0o640  # (mkstemp alone gave 0600)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(ntk, monkeypatch, tmp_path):
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    r = ntk("sweep", "lemma21", "--over", "data.n=5,10", "--plot", tmp_path / "x.png")
    assert r.code == 2 and "pip install 'ntkcheck[plot]'" in r.err
    assert not (tmp_path / "x.png").exists()


def test_bad_over_is_refused(ntk):
    assert ntk("sweep", "lemma21", "--over", "data.n").code == 2
    assert ntk("sweep", "lemma21", "--over", "data.n=5,,6").code == 2
    r = ntk("sweep", "lemma21", "--over", "nope.key=1,2")
    assert r.code == 2 and "unknown scenario key 'nope'" in r.err


def test_plan_prints_trials_and_expected_time(ntk):
    r = ntk("plan", "lemma23", "--m", "256")
    assert r.code == 0
    assert "29 trials" in r.out and "expected: about" in r.out and "pilot:" in r.out


def test_quiet_prints_only_the_verdict_line(ntk):
    r = ntk("lemma21", "--trials", "3", "--quiet")
    assert r.code == 0 and r.out.strip().count("\n") == 0 and r.out.startswith("verdict: PASS")


def test_no_progress_bar_in_a_pipe():
    p = subprocess.run([sys.executable, "-m", "ntkcheck", "lemma23", "--m", "512", "--trials", "40"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "CI": ""})
    assert p.returncode in (0, 3)
    assert p.stderr == "" and "\x1b[" not in p.stdout


def _sigint_default():
    """In the child before exec: SIGINT as at a terminal. A test run started as a background job
    of a shell without job control (``cmd &`` in a script) inherits SIGINT ignored, and Python
    then leaves it ignored, as it should: Ctrl-C is not that job's. Here the test is the terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_prints_the_partial_table_writes_json_and_exits_130(tmp_path):
    j = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "ntkcheck", "cor24", "--trials", "2000", "--workers", "2",
                             "--n", "10", "--d", "6", "--m", "256", "--set", "dynamics.integrator=bs3",
                             "--json", str(j)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
    _wait_for_worker_cpu(proc.pid, seconds=10.0)  # batches of 4 trials have finished (a loaded machine only delays this)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()  # (its workers die with it) not left running through the rest of the suite
        out, err = proc.communicate()
        pytest.fail(f"still running 60 s after SIGINT; stderr: {err[-2000:]}")
    assert proc.returncode == 130, err
    assert "INTERRUPTED after" in out and "Traceback" not in err
    d = json.loads(j.read_text())
    assert d["interrupted"] is True and 0 < d["trials"] < 2000 and d["exit_code"] == 130


def _wait_for_worker_cpu(pid, seconds, limit=120.0):
    """Wait until the worker processes of ``pid`` have used ``seconds`` of CPU between them."""
    tick = os.sysconf("SC_CLK_TCK")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        used = 0.0
        for c in _children(pid):
            try:
                fields = Path(f"/proc/{c}/stat").read_text().split(") ")[1].split()
            except OSError:
                continue
            used += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if used >= seconds:
            return
        time.sleep(0.2)


def _children(pid):
    """Pids of the direct children of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(x) for x in text]
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _start_cor24(tmp_path, trials=4000):
    """cor24 by gradient descent only (a few ms per trial) in two workers, running."""
    j = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "ntkcheck", "cor24", "--trials", str(trials), "--workers", "2",
                             "--n", "10", "--d", "6", "--m", "256", "--set", "dynamics.method=gd",
                             "--json", str(j)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(100):  # until both workers run
        time.sleep(0.1)
        kids = _children(proc.pid)
        if len([k for k in kids if _alive(k)]) >= 2:
            break
    time.sleep(1.5)
    return proc, j, _children(proc.pid)


def _gone(pids, within=5.0):
    end = time.time() + within
    while time.time() < end and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_like_ctrl_c_and_leave_no_worker(tmp_path, sig):
    proc, j, kids = _start_cor24(tmp_path)
    assert kids
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "INTERRUPTED after" in out and "Traceback" not in err
    d = json.loads(j.read_text())
    assert d["interrupted"] is True and d["exit_code"] == 128 + sig
    assert _gone(kids)


def test_workers_die_with_a_killed_parent(tmp_path):
    proc, _, kids = _start_cor24(tmp_path)
    assert kids
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(kids)


def test_a_killed_worker_costs_no_trial(tmp_path):
    """The finished trials are kept and the unfinished ones run again in new workers; the
    run says which worker died."""
    proc, j, kids = _start_cor24(tmp_path, trials=2000)
    os.kill(kids[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and proc.returncode == 0, err
    d = json.loads(j.read_text())
    assert d["trials"] == 2000 and d["trial_errors"] == []
    assert any(f"worker process {kids[0]} died (signal SIGKILL)" in n and "run again" in n for n in d["notes"])


def test_trials_that_kill_their_worker_twice_are_reported_lost_with_replays(monkeypatch):
    import ntkcheck
    from ntkcheck.checks import get_check

    cls = type(get_check("lemma21"))
    original = cls.run_trial

    def run_trial(self, sc, ctx, rng, index):
        if index == 3 and os.getpid() != parent:
            os._exit(7)  # a worker that dies on this trial, every time
        return original(self, sc, ctx, rng, index)

    parent = os.getpid()
    monkeypatch.setattr(cls, "run_trial", run_trial)
    res = ntkcheck.run_check("lemma21", trials=12, workers=2).to_dict()
    lost = {e["trial"]: e for e in res["trial_errors"]}
    assert 3 in lost and "died (exit code 7)" in lost[3]["error"] and "--replay 3" in lost[3]["replay"]
    assert res["trials"] == 12 and len(lost) < 12
    assert any("trials were lost" in n for n in res["notes"])


def test_ctrl_c_while_a_later_scenario_prepares_keeps_the_finished_ones(ntk, tmp_path, monkeypatch):
    from ntkcheck.checks.cor22 import Cor22

    (tmp_path / "a.yaml").write_text("check: lemma21\ntrials: 3\n")
    (tmp_path / "b.yaml").write_text("check: cor22\ntrials: 3\n")

    def stopped(self, sc, explicit, rng):
        raise KeyboardInterrupt  # as if Ctrl-C came while b's inputs were prepared

    monkeypatch.setattr(Cor22, "prepare", stopped)
    j = tmp_path / "r.json"
    r = ntk("run", tmp_path, "--json", j)
    assert r.code == 130
    assert "b.yaml: interrupted before its trials" in r.out and "NOT RUN (interrupted)" in r.out
    d = json.loads(j.read_text())
    assert [x["scenario_path"] for x in d["results"]] == [str(tmp_path / "a.yaml")]


def test_ctrl_c_while_a_check_prepares_still_writes_its_outputs(ntk, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM/SIGHUP) during prepare — data, λ0 — used to print only "interrupted.";
    now the table (empty), the requested JSON and JUnit say the run was interrupted before any
    trial, and the exit code is 130."""
    from ntkcheck.checks.lemma21 import Lemma21

    def stopped(self, sc, explicit, rng):
        raise KeyboardInterrupt

    monkeypatch.setattr(Lemma21, "prepare", stopped)
    j, x = tmp_path / "r.json", tmp_path / "r.xml"
    r = ntk("lemma21", "--n", "12", "--json", j, "--junit", x)
    assert r.code == 130 and "Traceback" not in r.err
    d = json.loads(j.read_text())
    assert d["interrupted"] is True and d["trials"] == 0 and d["claims"] == [] and d["exit_code"] == 130
    assert d["scenario"]["data"]["n"] == 12 and "no trial ran" in " ".join(d["notes"])
    import xml.etree.ElementTree as ET

    assert ET.fromstring(x.read_text()).find("testsuite").get("tests") == "0"


def test_an_interrupted_sweep_point_is_marked_in_the_table_and_the_csv(ntk, tmp_path, monkeypatch):
    import csv

    from ntkcheck.checks.lemma21 import Lemma21

    real = Lemma21.prepare

    def prepare(self, sc, explicit, rng):
        if sc.data.n == 8:
            raise KeyboardInterrupt  # Ctrl-C while the second point prepares
        return real(self, sc, explicit, rng)

    monkeypatch.setattr(Lemma21, "prepare", prepare)
    c = tmp_path / "s.csv"
    r = ntk("sweep", "lemma21", "--over", "data.n=6,8,10", "--trials", "2", "--csv", c)
    assert r.code == 130
    assert "INCONCLUSIVE (interrupted)" in r.out and "(no trial ran)" in r.out
    rows = list(csv.DictReader(c.open()))
    assert {row["data.n"] for row in rows} == {"6", "8"}  # the grid stopped at the interrupted point
    assert all(row["interrupted"] == ("True" if row["data.n"] == "8" else "False") for row in rows)


def _scenarios(tmp_path):
    """Three scenario files in tmp_path/s: lemma23 at a huge c (FAILs), lemma21 (PASSes), cor22
    at m = 16 (FAILs)."""
    d = tmp_path / "s"
    d.mkdir()
    (d / "a_fail.yaml").write_text("check: lemma23\ntrials: 5\ndata: {n: 12, d: 6}\nnetwork: {m: 1024}\n"
                                          "claim: {c: 1.0e+6}\n")
    (d / "b_pass.yaml").write_text("check: lemma21\ntrials: 3\ndata: {n: 8}\n")
    (d / "c_fail.yaml").write_text("check: cor22\ntrials: 5\nnetwork: {m: 16}\n")
    return d


def test_run_applies_seed_confidence_and_set_to_every_scenario(ntk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _scenarios(tmp_path)
    j = tmp_path / "r.json"
    r = ntk("run", d, "--seed", "5", "--confidence", "0.9", "--set", "data.d=4", "--json", j)
    got = json.loads(j.read_text())["results"]
    assert len(got) == 3 and all(x["seed"] == 5 and x["scenario"]["confidence"] == 0.9 for x in got)
    assert all(x["scenario"]["data"]["d"] == 4 for x in got) and r.code == 1
    bad = ntk("run", d, "--set", "claim.nope=1")
    assert bad.code == 2 and "nope" in bad.err and "Traceback" not in bad.err


def test_run_quiet_still_names_the_failed_claims_and_their_replays(ntk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _scenarios(tmp_path)
    r = ntk("run", d / "a_fail.yaml", "-q")
    assert r.code == 1
    line = next(ln for ln in r.out.splitlines() if ln.strip().startswith("FAIL joint"))
    assert "replay: ntkcheck lemma23 " in line and "--expect joint=violation" in line


def test_run_exitfirst_and_maxfail_stop_after_failures(ntk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _scenarios(tmp_path)
    j = tmp_path / "r.json"
    r = ntk("run", d, "-x", "--json", j)
    assert r.code == 1 and "stopped after 1 failing scenario (-x); 2 not run." in r.flat
    assert [x["check"] for x in json.loads(j.read_text())["results"]] == ["lemma23"]
    r = ntk("run", d, "--maxfail", "2", "--json", j)
    assert [x["check"] for x in json.loads(j.read_text())["results"]] == ["lemma23", "lemma21", "cor22"]


def test_run_last_failed_reruns_only_the_failures(ntk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _scenarios(tmp_path)
    j = tmp_path / "r.json"
    r = ntk("run", d, "--lf", "--json", j)  # no record yet: everything
    assert "none did, so running all" in r.flat and len(json.loads(j.read_text())["results"]) == 3
    rec = json.loads((tmp_path / ".ntkcheck_cache" / "lastfailed.json").read_text())
    assert sorted(Path(k).name for k in rec) == ["a_fail.yaml", "c_fail.yaml"]
    r = ntk("run", d, "--lf", "--json", j)
    assert "2 of 3 scenarios FAILed last time" in r.flat
    assert [x["check"] for x in json.loads(j.read_text())["results"]] == ["lemma23", "cor22"]
    (d / "c_fail.yaml").write_text("check: cor22\ntrials: 5\n")  # fixed: it passes now, and leaves the record
    ntk("run", d / "c_fail.yaml")
    rec = json.loads((tmp_path / ".ntkcheck_cache" / "lastfailed.json").read_text())
    assert [Path(k).name for k in rec] == ["a_fail.yaml"]
