"""Trials on a Dask cluster give the same numbers as a local run."""
import pytest

import ntkcheck

distributed = pytest.importorskip("dask.distributed")


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if "seconds" not in k and k not in ("scheduler", "workers")}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def _close(a, b, path=""):
    """Equal structure, equal counts/verdicts/strings; floats equal to 1e-9 relative (a BLAS on
    another process may choose another kernel for differently aligned arrays: last-bit changes)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _close(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def test_local_dask_cluster_matches_a_local_run():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        for check, kw in (("lemma23", dict(m=512, n=12, d=5, trials=6, sets=["claim.c=3e3"])),
                          ("thm41", dict(m=256, trials=4))):
            remote = ntkcheck.run_check(check, scheduler=cluster.scheduler_address, **kw).to_dict()
            local = ntkcheck.run_check(check, workers=1, **kw).to_dict()
            _close(_strip(remote), _strip(local))
            assert [c["verdict"] for c in remote["claims"]] == [c["verdict"] for c in local["claims"]]


def test_unreachable_scheduler_is_a_clean_refusal(ntk):
    r = ntk("lemma21", "--trials", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert r.code == 2 and "cannot reach the Dask scheduler" in r.err


def test_the_environment_may_name_the_scheduler(ntk, monkeypatch):
    monkeypatch.setenv("NTKCHECK_SCHEDULER", "tcp://127.0.0.1:1")
    r = ntk("lemma21", "--trials", "2")
    assert r.code == 2 and "cannot reach the Dask scheduler" in r.err
