"""Start-up of the command line: `ntkcheck --version` and short default runs against a bare
interpreter (the minimal work: `python -c pass`), measured side by side in one run.

    python benchmarks/bench_startup.py [--repeats 7] [--checks lemma21 lemma23] [--smoke] [--results benchmarks/RESULTS.md]

Each command runs ``--repeats`` times in a fresh process, interleaved; prints the median wall
time (and the range) of each, and its ratio to the bare interpreter. ``--smoke`` adds the CI
step the README quotes, `ntkcheck run scenarios/smoke -q` (every check at CI size).
"""
from __future__ import annotations

import argparse
import statistics
import sys

from _args import add_results_option, positive_int, recorded, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=positive_int, default=7)
    ap.add_argument("--checks", nargs="*", default=["lemma21", "lemma23"])
    ap.add_argument("--smoke", action="store_true", help="also time `ntkcheck run scenarios/smoke -q`")
    add_results_option(ap)
    a = ap.parse_args()
    with recorded(a.results, "bench_startup.py", f"{a.repeats} fresh processes per command, interleaved"):
        run(a)


def run(a) -> None:
    py = sys.executable
    commands = {"bare": [py, "-c", "pass"], "version": [py, "-m", "ntkcheck", "--version"]}
    commands.update({c: [py, "-m", "ntkcheck", c, "-q"] for c in a.checks})
    if a.smoke:
        from pathlib import Path

        smoke = Path(__file__).resolve().parent.parent / "scenarios" / "smoke"
        commands["smoke"] = [py, "-m", "ntkcheck", "run", str(smoke), "-q"]
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(a.repeats):
        for k, argv in commands.items():
            times[k].append(wall(argv))
    bare = statistics.median(times["bare"])
    for k, ts in times.items():
        med = statistics.median(ts)
        shown = ("python -c pass" if k == "bare" else "ntkcheck run scenarios/smoke -q" if k == "smoke"
                 else " ".join(commands[k][1:]).replace("-m ntkcheck", "ntkcheck"))
        print(f"{shown:32s} {med:6.3f} s ({min(ts):.3f}–{max(ts):.3f}), {k}/bare = {med / bare:.1f}x")


if __name__ == "__main__":
    main()
