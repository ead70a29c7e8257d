"""parallel.py: tasks on our own threads give their results in input order, whatever the
thread count; row blocks cover the rows."""
import threading

import pytest

from ntkcheck import parallel


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_run_tasks_returns_results_in_input_order(threads):
    tasks = [(float(w), (lambda i=i: (i, threading.current_thread().name))) for i, w in enumerate([1, 5, 2, 9, 3])]
    out = parallel.run_tasks(threads, tasks)
    assert [i for i, _ in out] == [0, 1, 2, 3, 4]
    if threads > 1:
        assert all(name.startswith("ntkcheck") for _, name in out)  # ran on the pool, not inline


@pytest.mark.parametrize("n,threads", [(1, 1), (7, 2), (1000, 2), (301, 3)])
def test_row_blocks_cover_the_rows_once(n, threads):
    blocks = parallel.row_blocks(n, threads)
    covered = [i for b in blocks for i in range(n)[b]]
    assert covered == list(range(n))
    assert len(blocks) == 1 if threads == 1 else len(blocks) <= 4 * threads


def test_single_blas_limits_blas_only_while_our_threads_run():
    before = parallel.blas_threads()
    with parallel.single_blas(2):
        assert parallel.blas_threads() == 1
    assert parallel.blas_threads() == before
    with parallel.single_blas(1):  # one thread of ours: BLAS keeps its own
        assert parallel.blas_threads() == before
