"""A lemma23 trial against its minimal work, measured in one run.

    python benchmarks/bench_lemma23_trial.py [--case N D M C] ... [--trials 3] [--results FILE]

Default cases: n = 1000, d = 100, m = 4096, c = 3000 (a ball in which signs change) and
n = 200, d = 10, m = 2^20 at the default c (where the critical radius dominated). For each
case it prints

  * the time of one trial: ``ntkcheck.run_check("lemma23", ..., workers=1)`` with 1 + k
    trials, timed between the ends of its first and last trials (``on_trial``) and divided by
    k, so that start-up, λ0 and the run's own preparation are left out (the difference of two
    runs did the same, but fell below 0 at tiny sizes on a busy machine), best of two;
  * the minimal work of a trial: one Gram pass over the m neurons (``gram_matrix``) and three
    extreme eigensolves of an n × n matrix (LAPACK's syevr on one index, as the certificate
    and the attack call it) — what any check of the lemma must do at least: H(W(0)), its
    λ_min, the bound's λ_max and one λ_min of an H(W) in the ball;
  * their ratio, and where the trial's time goes: the certificate (one pass: H(W(0)) and E,
    two extreme eigenpairs, and the entries the critical radii search, gathered in the same
    pass), the two critical radii from those entries, and the attack, each timed alone on one
    trial's data (sphere inputs and Gaussian W(0), R = c δ λ0/n² as the check sets it).

A trial runs with one BLAS thread (``run_trials`` limits it, in every worker: the same numbers
whatever the number of workers; a second core runs a second trial), so the minimal work and the
parts are timed with one BLAS thread too. The Gram pass with all of BLAS's threads is printed
beside, for reference (against it the ratio is printed as well).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import ntkcheck
from ntkcheck.kernels import attack, band_guess, certify, critical_radii, gram_matrix, lambda0
from ntkcheck.kernels.eig import eigenvalue_at
from _args import add_results_option, best, positive_float, positive_int, recorded


def case(n: int, d: int, m: int, c: float | None, trials: int) -> None:
    sets = [] if c is None else [f"claim.c={c!r}"]

    def trial_time() -> float:
        ends: list[float] = []
        ntkcheck.run_check("lemma23", n=n, d=d, m=m, trials=1 + trials, workers=1, seed=0, sets=sets,
                           on_trial=lambda _: ends.append(time.perf_counter()))
        return (ends[-1] - ends[0]) / trials

    trial_time()  # (imports and caches warm)
    per_trial = min(trial_time(), trial_time())
    res = ntkcheck.run_check("lemma23", n=n, d=d, m=m, trials=1, workers=1, seed=0, sets=sets)
    c_used, delta = float(res.quantities["c"]), float(res.quantities["delta"])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W0 = rng.standard_normal((m, d))
    lam = lambda0(X).value
    R = c_used * delta * lam / n**2
    H = gram_matrix(X, W0)
    t_gram_all = best(lambda: gram_matrix(X, W0))  # (all BLAS threads: for reference only)
    with threadpool_limits(1):  # (as a trial runs: see the module's docstring)
        t_gram = best(lambda: gram_matrix(X, W0))
        t_eig = best(lambda: eigenvalue_at(H, 0, vector=True))
        minimal = t_gram + 3 * t_eig
        band = band_guess(X, W0, [lam / 4, lam / 2])  # as the check asks its certificate's pass to gather
        cert = certify(X, W0, R, 256, band=band)
        t_cert = best(lambda: certify(X, W0, R, 256, band=band))
        tol = cert.tol
        t_crit = best(lambda: critical_radii(X, W0, [lam / 4, cert.lam_min_H0 - lam / 2], tol, 256,
                                             band=cert.band))
        t_att = best(lambda: attack(X, W0, R, cert, 3, 256))
    print(f"n = {n}, d = {d}, m = {m}, c = {c_used:g} (R = {R:.3g}), {cert.counts.mean():.1f} flippable signs per input")
    print(f"  one trial            {per_trial * 1e3:9.1f} ms   trial/minimal = {per_trial / minimal:.2f}")
    print(f"  minimal work         {minimal * 1e3:9.1f} ms   (gram_matrix {t_gram * 1e3:.1f} ms + 3 eigensolves "
          f"of {t_eig * 1e3:.1f} ms; one BLAS thread, as the trial)")
    print(f"  gram, all threads    {t_gram_all * 1e3:9.1f} ms   trial/(it + 3 eigensolves) = "
          f"{per_trial / (t_gram_all + 3 * t_eig):.2f}   (gram_matrix with all BLAS threads)")
    print(f"  certificate          {t_cert * 1e3:9.1f} ms   cert/minimal = {t_cert / minimal:.2f}")
    print(f"  critical radii       {t_crit * 1e3:9.1f} ms   radii/minimal = {t_crit / minimal:.2f}")
    print(f"  attack (3 iterations){t_att * 1e3:9.1f} ms   attack/minimal = {t_att / minimal:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", nargs=4, action="append", metavar=("N", "D", "M", "C"),
                    help="a case: n, d, m and c (- for the check's default c); repeatable")
    ap.add_argument("--trials", type=positive_int, default=3)
    add_results_option(ap)
    a = ap.parse_args()
    cases = []
    for n, d, m, c in a.case or [("1000", "100", "4096", "3000"), ("200", "10", str(1 << 20), "-")]:
        try:
            cases.append((positive_int(n), positive_int(d), positive_int(m), None if c == "-" else positive_float(c)))
        except argparse.ArgumentTypeError as e:
            ap.error(f"--case: {e}")
        if cases[-1][0] < 2:
            ap.error("--case: n must be at least 2 (lemma23 needs two inputs for λ0)")
    label = "; ".join(f"n = {n}, d = {d}, m = {m}, c = {'default' if c is None else c}" for n, d, m, c in cases)
    with recorded(a.results, "bench_lemma23_trial.py", f"{label}; {a.trials} trials, 1 worker"):
        for n, d, m, c in cases:
            case(n, d, m, c, a.trials)


if __name__ == "__main__":
    main()
