"""Running trials: seeding and execution.

Every random draw comes from ``numpy.random.SeedSequence(seed)`` with a fixed
spawn key, so any trial can be re-run alone and nothing depends on how trials
are scheduled or how many there are:

* the data stream (inputs drawn once per run): spawn key ``(0,)``;
* trial ``i``: spawn key ``(1, i)``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .checks.base import ERROR, Check, Context, TrialResult, finite

DATA_KEY = (0,)
TRIAL_KEY = 1


def data_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=DATA_KEY))


def trial_seed_sequence(seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(TRIAL_KEY, index))


def run_one(check: Check, sc, ctx: Context, index: int) -> TrialResult:
    """Trial ``index`` alone; numerical faults become a reported trial error."""
    rng = np.random.default_rng(trial_seed_sequence(sc.seed, index))
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            res = check.run_trial(sc, ctx, rng, index)
    except (FloatingPointError, np.linalg.LinAlgError) as e:
        return _errored(check, sc, ctx, index, f"{type(e).__name__}: {e}")
    if not finite(res.values):
        bad = [k for k, v in res.values.items() if not np.isfinite(v)]
        return _errored(check, sc, ctx, index, f"non-finite value(s): {', '.join(bad)}")
    return res


def _errored(check: Check, sc, ctx: Context, index: int, msg: str) -> TrialResult:
    rows = check.rows(sc, ctx)
    return TrialResult(index, {r.name: ERROR for r in rows}, {}, error=msg)


def run_trials(check: Check, sc, ctx: Context, indices: Iterable[int],
               on_done: Callable[[TrialResult], None] | None = None) -> list[TrialResult]:
    out = []
    for i in indices:
        res = run_one(check, sc, ctx, i)
        out.append(res)
        if on_done is not None:
            on_done(res)
    return out
