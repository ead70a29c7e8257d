"""trials.py: seeding by spawn keys, one trial alone, errors as outcomes, workers."""
import numpy as np

import ntkcheck
from ntkcheck.api import prepare
from ntkcheck.checks.base import ERROR
from ntkcheck.trials import DATA_KEY, TRIAL_KEY, data_rng, run_one, run_trials, trial_seed_sequence


def test_trial_streams_are_spawn_keys_of_the_root_seed():
    """Trial i draws from SeedSequence(seed, spawn_key=(1, i)), the data from (0,): the same
    numbers as constructing them by hand, and different trials differ."""
    a = np.random.default_rng(trial_seed_sequence(7, 3)).standard_normal(4)
    b = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(TRIAL_KEY, 3))).standard_normal(4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.random.default_rng(trial_seed_sequence(7, 4)).standard_normal(4))
    d = data_rng(7).standard_normal(3)
    assert np.array_equal(d, np.random.default_rng(np.random.SeedSequence(7, spawn_key=DATA_KEY)).standard_normal(3))


def test_a_trial_alone_equals_the_same_trial_in_a_run_with_any_worker_count():
    check, sc, ctx = prepare("lemma21", None, {"trials": 6, "n": 12})
    alone = run_one(check, sc, ctx, 4)
    for workers in (1, 2):
        got = run_trials(check, sc, ctx, range(6), None, workers=workers)
        assert [r.index for r in got] == list(range(6))
        assert got[4].outcomes == alone.outcomes and got[4].values == alone.values


def test_a_numerical_fault_in_a_trial_is_an_error_outcome_for_every_row(monkeypatch):
    check, sc, ctx = prepare("lemma21", None, {"trials": 2, "n": 12})

    def boom(*args, **kwargs):
        return np.float64(1.0) / np.float64(0.0)  # raises FloatingPointError inside run_one

    monkeypatch.setattr(type(check), "run_trial", lambda self, *a: boom())
    res = run_one(check, sc, ctx, 0)
    assert res.error and "FloatingPointError" in res.error
    assert set(res.outcomes.values()) == {ERROR} and set(res.outcomes) == {r.name for r in check.rows(sc, ctx)}


def test_the_api_runs_exactly_the_planned_trials():
    res = ntkcheck.run_check("lemma21", trials=5, n=12)
    assert res.trials == 5 and res.planned_trials == 5
