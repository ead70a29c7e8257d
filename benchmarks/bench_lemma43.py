"""lemma43's gradient flow per width, measured in one run: the exponential integrator (the
default) against the Bogacki–Shampine pair, whose steps are capped at 2.26/λ_max(K) and
λ_max grows like m.

    python benchmarks/bench_lemma43.py [--widths 512 8192] [--trials 2] [--results FILE]

For each integrator one ``ntkcheck.run_check("lemma43", ...)`` with ``network.widths`` set to
the widths, ``--trials`` networks per width and one worker; it prints, per width, the median
steps and seconds per trial, the ratio of the steps at the largest width to those at the
smallest (the issue's bar: ≤ 1.5 for the exponential integrator), the ratio of the two
integrators' seconds, and whether both give the same Ĉ(m) to the tolerance both integrate to
(rtol = 10⁻⁴, the default).
"""
from __future__ import annotations

import argparse

import ntkcheck
from _args import add_results_option, positive_int, recorded


def per_width(integrator: str, widths: list[int], trials: int) -> list[dict]:
    res = ntkcheck.run_check("lemma43", m=max(widths), trials=trials, workers=1,
                             sets=[f"network.widths={widths}", f"dynamics.integrator={integrator}"])
    return res.quantities["per_width"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=positive_int, nargs="+", default=[512, 8192])
    ap.add_argument("--trials", type=positive_int, default=2)
    add_results_option(ap)
    a = ap.parse_args()
    widths = sorted(set(a.widths))
    if len(widths) < 2:
        ap.error("--widths: give at least two widths")
    with recorded(a.results, "bench_lemma43.py", f"widths {widths}, {a.trials} trials per width, 1 worker, defaults"):
        rows = {name: per_width(name, widths, a.trials) for name in ("exponential", "bs3")}
        for name, table in rows.items():
            for r in table:
                print(f"  {name:11s} m = {r['m']:6d}: {r['steps_median']:6.0f} steps, {r['seconds_median']:7.3f} s/trial")
            print(f"  {name:11s} steps at m = {widths[-1]} / at m = {widths[0]} = "
                  f"{table[-1]['steps_median'] / table[0]['steps_median']:.2f}")
        for e, b in zip(rows["exponential"], rows["bs3"]):
            same = all(abs(e[f"C_hat_{k}"] / b[f"C_hat_{k}"] - 1) <= 1e-4 for k in ("a_norm", "B_norm", "B_move"))
            print(f"  m = {e['m']:6d}: bs3/exponential seconds = {b['seconds_median'] / e['seconds_median']:.2f}, "
                  f"C_hat the same to 1e-4: {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
