"""The benchmark scripts run by a plain command: each is run here at a tiny size (the figures
in benchmarks/RESULTS.md come from their default sizes) so that none of them rots unnoticed."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    p = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def ratios(out: str, name: str) -> list[float]:
    return [float(x) for x in re.findall(rf"{name} = ([0-9.]+)", out)]


def test_bench_gram_prints_its_ratios():
    out = run("bench_gram.py", "--n", "150", "--d", "10", "--m", "512", "--R", "0.05")
    assert len(ratios(out, "gram/bare")) == 3 and all(r > 0 for r in ratios(out, "gram/bare"))
    assert len(ratios(out, "attack/bare")) == 2 and ratios(out, "cert/bare")[0] > 0
    assert re.search(r"loop/gram = [0-9.]+x", out)
    # the one-thread breakdown: the certificate against gram_matrix, and the two-thread floor
    per_gram = re.search(r"certificate [0-9.]+ \(rounds [^)]*\) = ([0-9.]+) gram_matrix", out)
    assert per_gram and float(per_gram.group(1)) > 0
    assert re.search(r"would take [0-9.]+ \(gram_matrix\) and [0-9.]+ \(certificate\)", out)


def test_bench_lemma23_prints_time_and_memory_per_width():
    out = run("bench_lemma23.py", "--n", "30", "--min-log2m", "10", "--max-log2m", "12", "--trials", "1")
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+\s", line)]
    assert [r[0] for r in rows] == ["1024", "4096"]
    assert all(float(r[3]) > 0 for r in rows)  # peak resident memory, MiB


def test_bench_lemma23_trial_prints_the_trial_against_its_minimal_work():
    out = run("bench_lemma23_trial.py", "--case", "40", "5", "1024", "-", "--case", "30", "4", "512", "2000",
              "--trials", "1")
    assert len(ratios(out, "trial/minimal")) == 2 and all(r > 0 for r in ratios(out, "trial/minimal"))
    for name in ("cert/minimal", "radii/minimal", "attack/minimal"):
        assert len(ratios(out, name)) == 2


def test_bench_workers_prints_the_speed_up():
    out = run("bench_workers.py", "--check", "lemma21", "--trials", "8")
    assert re.search(r"speed-up with 2 workers: [0-9.]+x", out)


def test_bench_autodiff_runs_with_or_without_pytorch():
    out = run("bench_autodiff.py", "--n", "20", "--d", "5", "--m", "64")
    if "PyTorch is not installed" not in out:
        err = float(re.search(r"max \|ΔH\| = ([0-9.e+-]+)", out).group(1))
        assert err < 1e-10  # the two Gram matrices agree


def test_bench_counts_runs_with_or_without_pytorch():
    out = run("bench_counts.py", "--n", "24", "--m", "300", "--d", "5", "--rounds", "1")
    assert "CPU int8 instructions:" in out and "auto takes" in out
    if "torch is not installed" not in out:
        assert "same counts: yes" in out and ratios(out, "float32/int8")


def test_benchmarks_refuse_bad_arguments_in_one_line():
    for script, args in [("bench_gram.py", ["--m", "0"]), ("bench_gram.py", ["--R", "nan"]),
                         ("bench_lemma23_trial.py", ["--case", "1", "5", "64", "-"]),
                         ("bench_lemma23_trial.py", ["--case", "20", "5", "x", "-"]),
                         ("bench_lemma23.py", ["--n", "1"]), ("bench_workers.py", ["--trials", "0"]),
                         ("bench_workers.py", ["--check", "nope"]), ("bench_autodiff.py", ["--m", "x"]),
                         ("bench_counts.py", ["--rounds", "0"])]:
        p = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2, (script, args, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.strip().splitlines()[-1].startswith(f"{script}: error:")


def test_bench_flow_prints_the_exact_flow_against_the_runge_kutta_pair(tmp_path):
    out = run("bench_flow.py", "--widths", "64", "--trials", "1", "--n", "6", "--d", "3",
              "--results", str(tmp_path / "r.md"))
    assert len(ratios(out, "exact/bs3")) == 1 and ratios(out, "exact/bs3")[0] > 0
    assert "bench_flow.py" in (tmp_path / "r.md").read_text()


def test_results_option_appends_a_dated_section(tmp_path):
    """--results appends what the script printed under a heading with the script, the date and the
    machine: the figures in benchmarks/RESULTS.md are written by the scripts, not by hand."""
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n", encoding="utf-8")
    out = run("bench_workers.py", "--check", "lemma21", "--trials", "4", "--results", str(path))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\n## bench_workers.py — ")
    assert "numpy" in text and "cores" in text and "--check lemma21, 4 trials" in text
    for line in out.strip().splitlines():
        assert f"    {line}" in text


def test_bench_startup_prints_its_ratios():
    out = run("bench_startup.py", "--repeats", "1", "--checks", "lemma21")
    assert len(re.findall(r"/bare = [0-9.]+x", out)) == 3


def test_bench_quadform_prints_its_ratios():
    out = run("bench_quadform.py", "--widths", "300", "700", "--peak-width", "600")
    assert len(ratios(out, "chunked/blocked")) == 2 and all(r > 0 for r in ratios(out, "chunked/blocked"))
    assert ratios(out, "2 workers")[0] > 0 and "peak memory of quad_form" in out


def test_timed_counts_the_cpu_of_a_run_and_of_its_workers():
    """bench_flow's CPU figure: user + system time of the process and of the workers it
    waits for, here a child that spins ~0.3 s in a grandchild process and sleeps 0.2 s."""
    sys.path.insert(0, str(BENCH))
    try:
        from _args import timed
    finally:
        sys.path.remove(str(BENCH))
    code = ("import multiprocessing as mp, time\n"
            "def spin():\n    t = time.process_time()\n    while time.process_time() - t < 0.3: pass\n"
            "if __name__ == '__main__':\n    p = mp.get_context('fork').Process(target=spin); p.start(); p.join()\n"
            "    time.sleep(0.2)\n")
    wall_s, cpu_s = timed([sys.executable, "-c", code], check=True)
    assert cpu_s >= 0.3  # the grandchild's spinning is counted
    assert wall_s >= 0.5 and wall_s > cpu_s  # and the sleep only in the wall time


def test_bench_flow_times_the_before_checkout_and_not_this_one(tmp_path):
    """--before DIR times DIR's package: started inside a checkout, ``python -m`` puts the
    checkout ahead of PYTHONPATH (the 'before' runs then timed this code again), so the default
    runs start in an empty directory, where PYTHONPATH decides."""
    sys.path.insert(0, str(BENCH))
    try:
        from bench_flow import imported_from
    finally:
        sys.path.remove(str(BENCH))
    fake = tmp_path / "before"
    (fake / "ntkcheck").mkdir(parents=True)
    (fake / "ntkcheck" / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=str(fake))
    repo = BENCH.parent
    empty = tmp_path / "empty"
    empty.mkdir()
    assert imported_from(env, str(repo)) == (repo / "ntkcheck").resolve()  # the trap
    assert imported_from(env, str(empty)) == (fake / "ntkcheck").resolve()


def test_bench_lemma43_prints_steps_per_width_for_both_integrators():
    out = run("bench_lemma43.py", "--widths", "32", "128", "--trials", "1")
    assert len(re.findall(r"steps at m = 128 / at m = 32 = [0-9.]+", out)) == 2
    assert len(ratios(out, "bs3/exponential seconds")) == 2 and "C_hat the same to 1e-4: yes" in out
