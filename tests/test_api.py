"""api.py: the Python entry points and the Result / Replay objects."""
import json

import pytest

import ntkcheck
from ntkcheck.api import build_scenario, replay_command
from ntkcheck.checks import get_check
from ntkcheck.errors import ExitCode, UserError
from ntkcheck.stats import FAIL, PASS, Verdict


def test_run_check_result_is_the_json_object_and_names_its_exit_code():
    res = ntkcheck.run_check("lemma21", trials=4, n=12)
    d = res.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON values only
    assert d["verdict"] == res.verdict and isinstance(res.verdict, Verdict)
    assert [c["name"] for c in d["claims"]] == [r.name for r in res.rows]
    assert res.exit_code == {PASS: ExitCode.OK, FAIL: ExitCode.FAILED}.get(res.verdict, ExitCode.INCONCLUSIVE)
    assert d["scenario"]["data"]["n"] == 12 and d["trials"] == 4


def test_replay_of_a_trial_equals_that_trial_in_the_run():
    seen = {}
    ntkcheck.run_check("lemma23", trials=3, m=256, sets=["claim.c=3000"], workers=2,
                       on_trial=lambda t: seen.setdefault(t.index, t))
    rep = ntkcheck.replay_trial("lemma23", 2, m=256, sets=["claim.c=3000"])
    assert rep.trial == 2 and rep.to_dict()["outcomes"]
    assert rep.outcomes == seen[2].outcomes and rep.values == seen[2].values  # bit for bit


def test_replay_command_carries_every_key_that_differs_from_the_default():
    check = get_check("cor22")
    sc, _ = build_scenario(check, None, {"m": 64, "sets": ["data.source=gaussian", "claim.delta=0.2"]})
    cmd = replay_command(check, sc, 5)
    assert cmd.startswith("ntkcheck cor22 ") and "--replay 5" in cmd
    assert "data.source=gaussian" in cmd and "claim.delta=0.2" in cmd and "--m 64" in cmd


def test_bad_overrides_are_user_errors_with_a_message():
    with pytest.raises(UserError) as e:
        ntkcheck.run_check("lemma21", trials=0)
    assert "trials" in e.value.message
    with pytest.raises(UserError):
        ntkcheck.run_check("no-such-check")


def test_an_interrupt_while_preparing_returns_an_interrupted_result(monkeypatch):
    """As during the trials, Ctrl-C (or SIGTERM/SIGHUP) while a check prepares gives a Result that
    says so (no rows, nothing decided) instead of an exception: the API, the CLI, run and sweep
    share this one path."""
    from ntkcheck.checks.lemma21 import Lemma21
    from ntkcheck.errors import interrupted_code

    def stopped(self, sc, explicit, rng):
        raise KeyboardInterrupt

    monkeypatch.setattr(Lemma21, "prepare", stopped)
    res = ntkcheck.run_check("lemma21", n=12, trials=3)
    assert res.interrupted and res.rows == [] and res.trials == 0 and res.verdict == "inconclusive"
    assert res.scenario["data"]["n"] == 12 and res.exit_code == interrupted_code()


def test_lambda0_is_usable_as_a_float():
    import numpy as np

    from ntkcheck import lambda0

    X = np.random.default_rng(0).standard_normal((8, 3))
    lam = lambda0(X)
    v = lam.value
    assert float(lam) == v and lam / 4 == v / 4 and 2 * lam == 2 * v and lam * 2 == 2 * v
    assert 1 - lam == 1 - v and lam + 1 == v + 1 and 1 / lam == 1 / v
    assert (lam > 0) and (lam >= v) and not (lam < v) and f"{lam:.3f}" == f"{v:.3f}"
    assert np.isclose(np.sqrt(float(lam)), np.sqrt(v))


def test_arrays_and_dotted_keys_go_straight_into_the_api(tmp_path):
    import numpy as np

    import ntkcheck

    X = np.random.default_rng(0).standard_normal((16, 5))
    f = tmp_path / "x.npy"
    np.save(f, X)
    a = ntkcheck.run_check("lemma23", data=X, m=1024, trials=3, **{"claim.c": 5.0}).to_dict()
    b = ntkcheck.run_check("lemma23", data=str(f), m=1024, trials=3, sets={"claim.c": 5.0}).to_dict()
    c = ntkcheck.run_check("lemma23", data=str(f), m=1024, trials=3, sets=["claim.c=5.0"]).to_dict()
    assert a["scenario"]["claim"]["c"] == 5.0
    for d in (a, b, c):
        d.pop("elapsed_seconds")
        d.pop("notes")  # (they name the file read)
        d["scenario"]["data"]["path"] = None
        for cl in d["claims"]:
            cl.pop("seconds_per_trial", None)
            cl.pop("counterexample", None)
    assert a == b == c  # the array is read as its file is
    from ntkcheck.errors import UserError

    with pytest.raises(UserError, match="numeric array"):
        ntkcheck.run_check("lemma21", data=[["a", "b"]])
    for bad in (123, "claim.c=5", [1, 2]):
        with pytest.raises(UserError, match="sets must be a list"):
            ntkcheck.run_check("lemma21", sets=bad)
    with pytest.raises(UserError, match="dotted scenario key"):
        ntkcheck.run_check("lemma21", nonsense=3)


def test_a_replay_pins_blas_to_one_thread_as_runs_do(monkeypatch):
    from threadpoolctl import threadpool_info

    import ntkcheck
    from ntkcheck.checks.lemma21 import Lemma21

    seen = []
    orig = Lemma21.run_trial

    def spy(self, *a, **k):
        seen.append({p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"})
        return orig(self, *a, **k)

    monkeypatch.setattr(Lemma21, "run_trial", spy)
    ntkcheck.replay_trial("lemma21", 0, n=8)
    assert seen and seen[0] <= {1}


def test_a_result_keeps_a_record_per_trial():
    import ntkcheck

    res = ntkcheck.run_check("lemma23", n=12, d=6, m=1024, trials=4)
    recs = res.trial_records
    assert [r["trial"] for r in recs] == [0, 1, 2, 3] and len(recs) == res.trials
    joint = next(r for r in res.rows if r.name == "joint")
    assert sum(r["outcome.joint"] == "holds" for r in recs) == joint.holds
    assert all(isinstance(r["certified_norm"], float) for r in recs)
    seq = ntkcheck.run_check("lemma21", n=8, trials="sequential", max_trials=16)
    assert len(seq.trial_records) == seq.trials
    try:
        import pandas  # noqa: F401
    except ImportError:
        from ntkcheck.errors import UserError

        with pytest.raises(UserError, match="needs pandas"):
            res.to_frame()
    else:
        assert list(res.to_frame()["trial"]) == [0, 1, 2, 3]


def test_verbose_prints_each_trial(ntk):
    r = ntk("lemma21", "--n", "8", "--trials", "3", "-v")
    assert r.code == 0 and "per trial:" in r.out
    assert sum(ln.strip().startswith(("0 ", "1 ", "2 ")) for ln in r.out.splitlines()) == 3


def test_a_lemma23_replay_returns_the_attacks_w_and_independent_code_confirms_it():
    """The attack's value is only evidence if its W is: H(W) recomputed neuron by neuron (float64,
    tests/reference_ntk.py) from the W returned gives the same ‖H(W) − H(W(0))‖₂ and λ_min, and W
    lies in the ball."""
    import numpy as np

    import ntkcheck
    from reference_ntk import gram_per_neuron

    kw = dict(n=12, d=6, m=1024, sets=["claim.c=20000"])
    rep = ntkcheck.replay_trial("lemma23", 1, points=True, **kw)
    from ntkcheck.api import prepare

    _, _, ctx = prepare("lemma23", None, dict(kw))
    X = ctx.state.X
    W0, Wn, Wl = rep.points["W0"], rep.points["attack_norm"], rep.points["attack_lambda_min"]
    R = rep.quantities["radius"]
    for W in (Wn, Wl):
        assert np.sqrt(((W - W0) ** 2).sum(axis=1)).max() <= R * (1 + 1e-9)
    H0 = gram_per_neuron(X, W0)
    got_norm = np.linalg.norm(gram_per_neuron(X, Wn) - H0, 2)
    got_min = np.linalg.eigvalsh(gram_per_neuron(X, Wl))[0]
    assert rep.values["attack_norm"] > 0 and got_norm == pytest.approx(rep.values["attack_norm"], rel=1e-9, abs=1e-12)
    assert got_min == pytest.approx(rep.values["attack_lambda_min"], rel=1e-9, abs=1e-12)
    assert "points" not in rep.to_dict() and ntkcheck.replay_trial("lemma23", 1, **kw).points == {}
