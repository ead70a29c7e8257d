"""memory.py: chunk sizes under the budget, and refusing a run before it allocates."""
import pytest

from ntkcheck import memory
from ntkcheck.errors import UserError


@pytest.mark.parametrize("n_cols,mb,bpe", [(1000, 256, 32), (10, 0.01, 8), (10**6, 1, 64), (1, 1 << 20, 4)])
def test_chunk_rows_fits_the_budget_and_stays_exact(n_cols, mb, bpe):
    rows = memory.chunk_rows(n_cols, mb, bpe)
    assert 64 <= rows <= memory.MAX_EXACT_F32  # at least a useful chunk, never past float32's exact counts
    assert rows == 64 or rows * n_cols * bpe <= mb * 2**20


def test_neuron_slices_cover_every_neuron_once():
    sl = list(memory.neuron_slices(1000, 64))
    assert sl[0].start == 0 and sl[-1].stop == 1000
    assert all(a.stop == b.start for a, b in zip(sl, sl[1:]))
    assert sum(s.stop - s.start for s in sl) == 1000


def test_cache_rows_is_at_least_eight():
    assert memory.cache_rows(10**9, 8, 1 << 20) == 8
    assert memory.cache_rows(1000, 4, 2 << 20) == (2 << 20) // 4000


def test_require_memory_refuses_with_one_sentence(monkeypatch):
    monkeypatch.setattr(memory, "memory_limit_bytes", lambda: 2**30)
    memory.require_memory(0.5 * 2**30, "small")
    with pytest.raises(UserError) as e:
        memory.require_memory(2**30, "lemma23 with m = 10^12")
    assert e.value.message.startswith("lemma23 with m = 10^12 needs about 1 GiB") and e.value.message.count(".") <= 3


def test_workers_are_counted_in_the_memory_estimate(monkeypatch, ntk):
    """Each worker process runs a trial of its own: with the worker count left to auto, fewer
    workers are used when their trials together would not fit (with a note); an explicit count
    that does not fit is refused with one sentence."""
    import ntkcheck
    from ntkcheck.trials import available_cores

    monkeypatch.setattr(memory, "memory_limit_bytes", lambda: 2**30)
    w, note = memory.workers_that_fit(0.4 * 2**30, 2, False, "x")
    assert w == 2 and note is None
    w, note = memory.workers_that_fit(0.6 * 2**30, 2, False, "x")
    assert w == 1 and "1 worker process instead of 2" in note
    with pytest.raises(UserError, match="use --workers 1 or fewer"):
        memory.workers_that_fit(0.6 * 2**30, 2, True, "cor22 with these sizes")
    # through a run: cor22 at m = 2^20 with a 150 MiB budget needs ~0.52 GiB a trial here
    sets = ["claim.variant_width=1", "compute.working_memory_mb=150"]
    res = ntkcheck.run_check("cor22", m=1 << 20, trials=2, n=10, sets=sets)
    if available_cores() >= 2:  # auto would take two workers here
        assert any("instead of 2" in n for n in res.notes)
    r = ntk("cor22", "--m", str(1 << 20), "--trials", "2", "--n", "10", "--workers", "2",
            *[a for s in sets for a in ("--set", s)])
    assert r.code == 2 and "use --workers 1 or fewer" in r.err and r.err.count("\n") == 1
