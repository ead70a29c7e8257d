"""Threads of our own and BLAS's: a pool per process, heaviest-first task runs, and the limit
of one BLAS thread per task while our threads run (numbers never depend on the thread count:
tasks split work whose results are added exactly, or write disjoint blocks)."""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

#: below this many multiply-adds in a chunk's count product, threads cost more than they save
_PARALLEL_MIN_WORK = 1 << 26

_CONTROLLER = None
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _blas():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController().select(user_api="blas")
    return _CONTROLLER


def blas_threads() -> int:
    """The number of threads BLAS may use now (1 inside trials and worker processes)."""
    libs = _blas().lib_controllers
    return max([1] + [int(lib.num_threads) for lib in libs])


def _pool(threads: int) -> ThreadPoolExecutor:
    key = (os.getpid(), threads)  # a forked child gets its own pool: threads do not survive fork
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="ntkcheck")
    return _POOLS[key]


def run_tasks(threads: int, tasks: list[tuple[float, Callable[[], object]]]) -> list:
    """Run (weight, task) pairs on ``threads`` threads, heaviest first; results in input order."""
    if threads <= 1 or len(tasks) <= 1:
        return [f() for _, f in tasks]
    order = sorted(range(len(tasks)), key=lambda j: -tasks[j][0])
    futures = {j: _pool(threads).submit(tasks[j][1]) for j in order}
    return [futures[j].result() for j in range(len(tasks))]


def work_threads(n: int, rows: int) -> int:
    """Threads for a count product of ``rows`` neurons over n inputs: BLAS's allowance when
    the product is big enough to gain from splitting it, else 1."""
    if n < 128 or rows * n * n < _PARALLEL_MIN_WORK:
        return 1
    return blas_threads()


def one_blas_thread():
    """A context in which every BLAS call uses one thread."""
    return _blas().limit(limits=1)


def single_blas(threads: int):
    """While tasks run on ``threads`` > 1 threads of our own, each BLAS call uses one."""
    return _blas().limit(limits=1) if threads > 1 else nullcontext()


def row_blocks(n: int, threads: int) -> list[slice]:
    """Blocks of rows for an elementwise pass over n × n matrices on ``threads`` threads: four
    per thread, so that a thread that finishes early takes another block instead of waiting
    (smaller blocks only add calls), or one block for one thread."""
    step = -(-n // (4 * threads)) if threads > 1 else max(n, 1)
    return [slice(a, min(n, a + step)) for a in range(0, n, step)]  # the last block ends at n
