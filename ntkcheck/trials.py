"""Running trials: seeding and execution (serial or in worker processes).

Every random draw comes from ``numpy.random.SeedSequence(seed)`` with a fixed
spawn key, so any trial can be re-run alone and nothing depends on how trials
are scheduled or how many there are:

* the data stream (inputs drawn once per run): spawn key ``(0,)``;
* trial ``i``: spawn key ``(1, i)``.

Every trial runs with one BLAS thread, in the main process or in one of ``workers``
processes: the arithmetic of a trial is then the same whatever the number of workers
(a multi-threaded BLAS may sum in another order), so the numbers are identical for
any worker count. Parallelism comes from running trials side by side.
"""
from __future__ import annotations

import copy
import math
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from threadpoolctl import threadpool_limits

from .checks.base import ERROR, Check, Context, TrialResult, finite
from .errors import UserError

DATA_KEY = (0,)
TRIAL_KEY = 1


def data_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=DATA_KEY))


def trial_seed_sequence(seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(TRIAL_KEY, index))


def run_one(check: Check, sc, ctx: Context, index: int) -> TrialResult:
    """Trial ``index`` alone; numerical faults become a reported trial error."""
    from .kernels import backend

    rng = np.random.default_rng(trial_seed_sequence(sc.seed, index))
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"), backend.using(sc.compute.backend):
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


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_STATE: tuple | None = None  # (check, scenario, context) inherited by forked workers


_PARENT = 0  # pid of the process that starts the workers
#: set when an interrupt terminated workers mid-batch: their pool cannot be joined safely
POOL_ABANDONED = False


def _die_with_parent() -> None:
    """Make this worker die with its parent, however the parent ends (SIGKILL included): a
    parent-death signal on Linux, else a watchdog thread; an orphaned worker would hold the
    terminal's or a CI runner's pipes open for ever."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.prctl(1, int(signal.SIGKILL)) != 0:  # PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        import threading
        import time

        def watch() -> None:
            while os.getppid() == _PARENT:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != _PARENT:  # the parent died before the signal was armed
        os._exit(1)


def _init_worker() -> None:
    threadpool_limits(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    for sig in (signal.SIGTERM, signal.SIGHUP):  # (the main process's handlers are inherited)
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent()


def guided_batches(indices: list[int], workers: int) -> list[list[int]]:
    """Batches for a pool, in order: at most 4 trials (smooth progress, prompt Ctrl-C), and
    shrinking towards 1 as the trials left run out (a quarter of them per worker), so that no
    worker is left alone with a long batch at the end (guided scheduling). Which trials share
    a batch does not change any result: each trial draws from its own seed."""
    out, k = [], 0
    while k < len(indices):
        size = max(1, min(4, (len(indices) - k) // (4 * workers)))
        out.append(indices[k:k + size])
        k += size
    return out


def _run_batch(indices: list[int]) -> list[TrialResult]:
    check, sc, ctx = _STATE
    return [run_one(check, sc, ctx, i) for i in indices]


class Interrupted(Exception):
    """Raised by :func:`run_trials` on Ctrl-C; carries the trials finished so far."""

    def __init__(self, done: list[TrialResult]):
        super().__init__("interrupted")
        self.done = sorted(done, key=lambda r: r.index)


def _remote_batch(name: str, scenario: dict, ctx: Context, indices: list[int]) -> list[TrialResult]:
    """A batch of trials on a Dask worker (ntkcheck must be installed there). The context is
    first copied into fresh numpy allocations: scattered arrays can arrive at any byte offset
    (61 mod 64 was seen), and a BLAS kernel chosen by alignment rounds differently, so without
    the copy a trial's last digits depended on where it ran."""
    from .checks import get_check

    check = get_check(name)
    sc = check.scenario_model().model_validate(scenario)
    ctx = copy.deepcopy(ctx)
    with threadpool_limits(1):
        return [run_one(check, sc, ctx, i) for i in indices]


#: seconds for connecting to the scheduler, its handshake, and any one wait for a result without
#: a finished batch in between (a batch of trials is far shorter than this at any size)
DASK_TIMEOUT = 30.0  # NTKCHECK_DASK_TIMEOUT overrides it


def _dask_timeout() -> float:
    raw = os.environ.get("NTKCHECK_DASK_TIMEOUT")
    if raw is None:
        return DASK_TIMEOUT
    try:
        t = float(raw)
    except ValueError:
        t = math.nan
    if not (t > 0 and math.isfinite(t)):
        raise UserError(f"NTKCHECK_DASK_TIMEOUT must be a positive number of seconds (got '{raw[:60]}').")
    return t


def _probe(address: str, timeout: float) -> None:
    """A Dask scheduler writes its handshake as soon as a connection is accepted; Dask's own
    connect waits for it without bound, so a port that accepts and never answers would hang the
    run. Check plain TCP addresses first, within the timeout. (A tls:// address is left to Dask:
    there the client speaks first.)"""
    import socket

    if "://" in address and not address.startswith("tcp://"):
        return
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if not sock.recv(1):
                raise OSError("it closed the connection without a handshake")
    except socket.timeout:
        raise OSError(f"it accepted the connection but sent no handshake in {timeout:g} s") from None
    except ValueError:
        raise ValueError(f"'{address[:60]}' is not host:port") from None


def _run_dask(check: Check, sc, ctx: Context, batches: list[list[int]], address: str, take) -> None:
    """Run the batches on the cluster, passing each finished result to ``take``. A cluster that
    stops answering, or loses its workers, costs the unfinished trials only: they are reported
    as lost trial errors (with their replay commands) and the run's outputs are written."""
    import asyncio  # (here, not at start-up: its TimeoutError is not the builtin one before 3.11)

    try:
        import dask
        from dask.distributed import Client, KilledWorker, wait
        from distributed.comm.core import CommClosedError
    except ImportError:
        raise UserError("--scheduler needs Dask, the optional extra: pip install 'ntkcheck[dask]'.") from None
    timeout = _dask_timeout()
    # (Dask's keep-alive probes need a TCP timeout of at least 11 s)
    with dask.config.set({"distributed.comm.timeouts.connect": f"{timeout:g}s",
                          "distributed.comm.timeouts.tcp": f"{max(timeout, 11.0):g}s"}):
        try:
            _probe(address, timeout)
            client = Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as e:
            raise UserError(f"cannot reach the Dask scheduler at '{address}' within {timeout:g} s: "
                            f"{str(e)[:200]}.") from None
        futures = []
        done: set[int] = set()
        try:
            ctx_f = client.scatter(ctx, broadcast=True)
            dump = sc.model_dump()
            futures = [client.submit(_remote_batch, check.name, dump, ctx_f, b, pure=False) for b in batches]
            try:
                pending = set(futures)
                while pending:
                    try:
                        finished, pending = wait(pending, timeout=timeout, return_when="FIRST_COMPLETED")
                    except (TimeoutError, asyncio.TimeoutError):
                        # nothing finished for a while: go on only if the scheduler answers and has workers
                        if not client.scheduler_info().get("workers"):
                            raise RuntimeError("no workers are left") from None
                        continue
                    for fut in finished:
                        for res in fut.result():
                            take(res)
                        done.add(id(fut))
            except KeyboardInterrupt:
                raise
            except (KilledWorker, CancelledError, OSError, TimeoutError, asyncio.TimeoutError, RuntimeError,
                    CommClosedError) as e:  # the cluster failed us: lost workers, a dead scheduler, silence
                why = f"the Dask cluster at {address} failed: {type(e).__name__}: {str(e)[:200]}"
                lost = sorted(i for f, b in zip(futures, batches) if id(f) not in done for i in b)
                ctx.notes.append(f"{why}; {len(lost)} trials were lost (reported as trial errors).")
                for i in lost:
                    take(_errored(check, sc, ctx, i, f"lost: {why}"))
        except KeyboardInterrupt:
            client.cancel(futures)
            raise
        finally:
            client.close(timeout=timeout)


def _dead_workers(procs) -> str:
    """Which worker processes died, and how."""
    dead = []
    for proc in procs:
        code = proc.exitcode
        if code not in (None, 0):
            how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
                else f"exit code {code}"
            dead.append(f"worker process {proc.pid} died ({how})")
    return "; ".join(dead) or "a worker process died"


def _pool_run(batches: list[list[int]], workers: int, take) -> tuple[list[list[int]], str]:
    """Run the batches in a pool of forked workers, passing each finished result to ``take``.
    Returns the batches not finished because a worker died (empty if none did) and which."""
    ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker)
    procs: dict[int, object] = {}
    try:
        futures = {ex.submit(_run_batch, b): b for b in batches}
        pending, taken = set(futures), set()
        while pending:
            procs.update(getattr(ex, "_processes", None) or {})
            done, pending = wait_futures(pending, return_when=FIRST_COMPLETED)
            procs.update(getattr(ex, "_processes", None) or {})
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                left = []
                for f, b in futures.items():
                    if f in taken:
                        continue
                    if f.done() and f.exception() is None:
                        for res in f.result():
                            take(res)
                    else:
                        left.append(b)
                ex.shutdown(wait=True, cancel_futures=True)
                return left, _dead_workers(procs.values())
            for fut in done:
                for res in fut.result():
                    take(res)
                taken.add(fut)
    except KeyboardInterrupt:
        global POOL_ABANDONED
        POOL_ABANDONED = True
        for proc in list(procs.values()) + list((getattr(ex, "_processes", None) or {}).values()):
            proc.terminate()  # stop the batches in flight
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return [], ""


def run_trials(check: Check, sc, ctx: Context, indices: Iterable[int],
               on_done: Callable[[TrialResult], None] | None = None, workers: int = 1,
               scheduler: str | None = None) -> list[TrialResult]:
    """Run the trials, in index order in the result whatever the schedule: in this process
    (workers = 1), in ``workers`` forked processes, or on the Dask cluster at ``scheduler``.

    Ctrl-C stops the run: :class:`Interrupted` carries the finished trials.
    """
    indices = list(indices)
    out: list[TrialResult] = []

    def take(res: TrialResult) -> None:
        out.append(res)
        if on_done is not None:
            on_done(res)

    if scheduler:
        size = max(1, min(16, len(indices) // 64 + 1))
        try:
            _run_dask(check, sc, ctx, [indices[k:k + size] for k in range(0, len(indices), size)],
                      scheduler, take)
        except KeyboardInterrupt:
            raise Interrupted(out) from None
        out.sort(key=lambda r: r.index)
        return out

    if workers <= 1 or len(indices) <= 1:
        try:
            with threadpool_limits(1):
                for i in indices:
                    take(run_one(check, sc, ctx, i))
        except KeyboardInterrupt:
            raise Interrupted(out) from None
        return out
    global _STATE, _PARENT
    _STATE, _PARENT = (check, sc, ctx), os.getpid()
    batches = guided_batches(indices, workers)
    try:
        left, why = _pool_run(batches, workers, take)
        if left:
            # a worker died (killed, out of memory): the finished trials are kept, the unfinished
            # ones run again once in new workers; if that pool breaks too they are reported lost,
            # each with its replay command
            n_left = sum(map(len, left))
            left, why2 = _pool_run(left, workers, take)
            if left:
                lost = sorted(i for b in left for i in b)
                ctx.notes.append(f"{why}, then {why2}: {len(lost)} trials were lost (reported as trial errors).")
                for i in lost:
                    take(_errored(check, sc, ctx, i, f"lost: {why2}"))
            else:
                ctx.notes.append(f"{why}; its {n_left} unfinished trials were run again in new worker processes.")
    except KeyboardInterrupt:
        raise Interrupted(out) from None
    finally:
        _STATE = None
    out.sort(key=lambda r: r.index)
    return out
