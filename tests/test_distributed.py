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


SMALL = {"lemma21": dict(n=12, trials=6), "cor22": dict(m=256, trials=6),
         "lemma23": dict(m=512, n=12, d=5, trials=6, sets=["claim.c=3e3"]),
         "cor24": dict(m=64, n=8, d=5, trials=4, sets=["dynamics.T=20"]), "thm41": dict(m=256, trials=4),
         "lemma43": dict(m=64, trials=3, sets=["network.widths=[16,32,64]"]),
         "lemma44": dict(m=64, n=16, d=3, trials=2),
         "lemma45": dict(m=64, n=16, d=3, trials=2), "thm42": dict(m=64, n=16, d=3, trials=2),
         "thm46": dict(m=64, n=16, d=3, trials=2), "nnkernel": dict(m=64, n=8, d=3, trials=2),
         "nnrf": dict(m=8, n=8, d=3, trials=2, sets=["dynamics.T=5"])}


def test_local_dask_cluster_gives_the_local_numbers_bit_for_bit():
    """Every check: the same JSON on a Dask cluster as in one local process, floats included
    (the context is copied into fresh allocations on the worker, so alignment cannot change a
    BLAS kernel's rounding)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        for check, kw in SMALL.items():
            remote = ntkcheck.run_check(check, scheduler=cluster.scheduler_address, **kw).to_dict()
            local = ntkcheck.run_check(check, workers=1, **kw).to_dict()
            assert _strip(remote) == _strip(local), check


def test_a_scheduler_that_never_answers_is_refused_within_the_timeout(ntk, monkeypatch):
    """A port that accepts connections and then says nothing: the handshake is bounded."""
    import socket
    import threading
    import time

    from ntkcheck import trials

    monkeypatch.setattr(trials, "DASK_TIMEOUT", 2.0)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    threading.Thread(target=lambda: [held.append(srv.accept()) for _ in range(8)], daemon=True).start()
    t0 = time.perf_counter()
    r = ntk("lemma21", "--trials", "2", "--scheduler", f"tcp://127.0.0.1:{srv.getsockname()[1]}")
    assert r.code == 2 and "cannot reach the Dask scheduler" in r.err and r.err.count("\n") == 1
    assert time.perf_counter() - t0 < 30
    srv.close()


def test_losing_every_worker_costs_only_the_unfinished_trials(monkeypatch):
    import threading

    from ntkcheck import trials

    monkeypatch.setattr(trials, "DASK_TIMEOUT", 2.0)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        started = []

        def first_done(_res):  # after the first finished trial, take every worker away
            if not started:
                started.append(threading.Thread(target=cluster.scale, args=(0,), daemon=True))
                started[0].start()

        res = ntkcheck.run_check("cor24", trials=30, scheduler=cluster.scheduler_address,
                                 sets=["dynamics.method=flow"], on_trial=first_done)
    lost = [e for e in res.trial_errors if e["error"].startswith("lost: ")]
    assert res.trials == 30 and 0 < len(lost) < 30
    assert any("failed" in n and "trials were lost" in n for n in res.notes)
    assert all(e["replay"].startswith("ntkcheck cor24") for e in lost)


def test_unreachable_scheduler_is_a_clean_refusal(ntk):
    r = ntk("lemma21", "--trials", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert r.code == 2 and "cannot reach the Dask scheduler" in r.err


def test_the_environment_may_name_the_scheduler(ntk, monkeypatch):
    monkeypatch.setenv("NTKCHECK_SCHEDULER", "tcp://127.0.0.1:1")
    r = ntk("lemma21", "--trials", "2")
    assert r.code == 2 and "cannot reach the Dask scheduler" in r.err


def test_a_tls_scheduler_is_reached_with_dasks_own_tls_settings(tmp_path):
    """--scheduler tls://… uses the certificates named in Dask's configuration (here set as the
    DASK_DISTRIBUTED__COMM__TLS__* settings would set them), nothing of ntkcheck's own."""
    pytest.importorskip("cryptography")  # only to make temporary credentials for the test
    import dask
    from distributed.security import Security

    sec = Security.temporary()
    files = {}
    for name in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(getattr(sec, name))
    cfg = {"distributed.comm.tls.ca-file": str(files["tls_ca_file"]),
           "distributed.comm.tls.client.cert": str(files["tls_client_cert"]),
           "distributed.comm.tls.client.key": str(files["tls_client_key"]),
           "distributed.comm.require-encryption": True}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, security=sec,
                                  protocol="tls", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        with dask.config.set(cfg):
            remote = ntkcheck.run_check("lemma21", n=12, trials=3, scheduler=cluster.scheduler_address)
    local = ntkcheck.run_check("lemma21", n=12, trials=3, workers=1)
    assert _strip(remote.to_dict()) == _strip(local.to_dict())


@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf"])
def test_a_bad_dask_timeout_is_one_sentence(ntk, monkeypatch, value):
    monkeypatch.setenv("NTKCHECK_DASK_TIMEOUT", value)
    r = ntk("lemma21", "--trials", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert r.code == 2 and "NTKCHECK_DASK_TIMEOUT must be a positive number" in r.err and r.err.count("\n") == 1
