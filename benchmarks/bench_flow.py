"""Cost of cor24's gradient flow: per trial, the exact event-driven flow against the
Bogacki–Shampine pair, per width; and the whole default run, measured in one run.

    python benchmarks/bench_flow.py [--widths 16 64 1024] [--trials 3] [--n 20] [--d 10]
                                    [--default-runs 0] [--before DIR]
                                    [--results benchmarks/RESULTS.md]

Prints seconds per trial for both integrators, their ratio exact/bs3, and the median number
of kink events of the exact flow. With ``--default-runs N`` it also times the default
``ntkcheck cor24 -q`` N times in fresh processes, interleaved with the same command under
``--set dynamics.integrator=bs3`` (the default before the exact flow) and, with
``--before DIR``, with the code of another checkout (DIR holds its ``ntkcheck`` package):
medians, ranges and the median of the per-round ratios, of the wall time and of the CPU time
(user + system, the workers' included). With --results, appends the figures (date, machine,
spread) to that file.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ntkcheck
from _args import add_results_option, positive_int, recorded, timed


def per_trial(integrator: str, m: int, n: int, d: int, trials: int) -> tuple[list[float], float]:
    """Seconds of flow in each of ``trials`` single-trial runs (seeds 0, 1, …; as the check
    measures them) and the median number of kink events."""
    secs, events = [], []
    for seed in range(trials):
        res = ntkcheck.run_check("cor24", m=m, n=n, d=d, trials=1, workers=1, seed=seed,
                                 sets=["dynamics.method=flow", f"dynamics.integrator={integrator}"])
        row = next(r for r in res.rows if r.name == "flow_loss")
        secs.append(float(row.figures["seconds_per_trial"]))
        events.append(float(row.figures.get("kink_events_median", 0.0)))
    return secs, float(np.median(events))


def checkout(text: str) -> Path:
    path = Path(text).resolve()
    if not (path / "ntkcheck" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{text} holds no ntkcheck package (no ntkcheck/__init__.py)")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=positive_int, nargs="+", default=[16, 64, 1024])
    ap.add_argument("--trials", type=positive_int, default=3)
    ap.add_argument("--n", type=positive_int, default=20)
    ap.add_argument("--d", type=positive_int, default=10)
    ap.add_argument("--default-runs", type=int, default=0, metavar="N",
                    help="also time the default `ntkcheck cor24 -q` N times (0: not)")
    ap.add_argument("--before", type=checkout, default=None, metavar="DIR",
                    help="with --default-runs: also time the default run with the code in DIR")
    add_results_option(ap)
    a = ap.parse_args()
    if a.default_runs < 0:
        ap.error(f"--default-runs {a.default_runs} is negative")
    with recorded(a.results, "bench_flow.py", f"n = {a.n}, d = {a.d}, {a.trials} trials per width, 1 worker; "
                                              f"{a.default_runs} default runs of each command, interleaved"):
        run(a)


def imported_from(env: dict | None, cwd: str) -> Path:
    """The ntkcheck package a command started with ``env`` in ``cwd`` imports."""
    out = subprocess.run([sys.executable, "-c", "import ntkcheck; print(ntkcheck.__file__)"], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).resolve().parent


def default_runs(a) -> None:
    """The default run as a user starts it, exact against bs3 (and the code in --before).

    The commands run in an empty directory: started in a checkout, ``python -m`` puts that
    checkout first on sys.path, ahead of PYTHONPATH, so --before timed this code again (the
    before/exact figures recorded until 2026-12-07 compared this code with itself). Each
    command's package is checked before it is timed."""
    cmd = [sys.executable, "-m", "ntkcheck", "cor24", "-q"]
    commands = {"exact": (cmd, None), "bs3": (cmd + ["--set", "dynamics.integrator=bs3"], None)}
    if a.before is not None:
        env = dict(os.environ, PYTHONPATH=str(a.before))
        commands["before"] = (cmd, env)
    here = Path(ntkcheck.__file__).resolve().parent
    with tempfile.TemporaryDirectory() as cwd:
        for name, (_, env) in commands.items():
            want = a.before / "ntkcheck" if name == "before" else here
            got = imported_from(env, cwd)
            if got != want:
                sys.exit(f"the {name} command imports ntkcheck from {got}, not {want}")
        times: dict[str, list[float]] = {k: [] for k in commands}
        cpus: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(a.default_runs):
            for name, (argv, env) in commands.items():
                t, c = timed(argv, env, check=True, cwd=cwd)
                times[name].append(t)
                cpus[name].append(c)
    for name, ts in times.items():
        cs = cpus[name]
        print(f"default `ntkcheck cor24 -q` ({name}): {statistics.median(ts):.2f} s "
              f"({min(ts):.2f}–{max(ts):.2f}) over {len(ts)} runs; CPU {statistics.median(cs):.2f} s "
              f"({min(cs):.2f}–{max(cs):.2f})")
    pairs = [("exact", "bs3", "exact/bs3")] + ([("before", "exact", "before/exact")] if a.before else [])
    for num, den, label in pairs:
        for what, series in (("", times), (" (CPU)", cpus)):
            ratio = [x / y for x, y in zip(series[num], series[den])]
            print(f"default run: {label}{what} = {statistics.median(ratio):.2f} "
                  f"(per round {min(ratio):.2f}–{max(ratio):.2f})")


def run(a) -> None:
    for m in a.widths:
        t0 = time.perf_counter()
        exact, events = per_trial("exact", m, a.n, a.d, a.trials)
        bs3, _ = per_trial("bs3", m, a.n, a.d, a.trials)
        line = (f"m = {m:6d}: exact {np.median(exact):.3f} s/trial ({min(exact):.3f}–{max(exact):.3f}), "
                f"bs3 {np.median(bs3):.3f} s/trial ({min(bs3):.3f}–{max(bs3):.3f}), "
                f"exact/bs3 = {np.median(exact) / max(np.median(bs3), 1e-9):.2f}x, kink events {events:.0f} "
                f"[{time.perf_counter() - t0:.1f} s]")
        print(line)
    if a.default_runs:
        default_runs(a)


if __name__ == "__main__":
    main()
