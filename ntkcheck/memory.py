"""Memory policy: how big a chunk of neurons may be, and refusing a run before it allocates
what the machine (or its container) cannot give.

Every Gram-type sum is accumulated over chunks of neurons sized by the working-memory
budget (``compute.working_memory_mb``), so memory grows with the chunk, not with m.
"""
from __future__ import annotations

from collections.abc import Iterator

#: float32 holds every integer up to 2^24 exactly; a chunk never has more neurons than that
MAX_EXACT_F32 = 1 << 24
DEFAULT_WORKING_MEMORY_MB = 256


def chunk_rows(n_cols: int, working_memory_mb: float, bytes_per_entry: int = 32) -> int:
    """Neurons per chunk so that a few (chunk × n_cols) work arrays fit the budget."""
    per_row = max(1, n_cols) * bytes_per_entry
    rows = int(working_memory_mb * 2**20 // per_row)
    return int(min(max(rows, 64), MAX_EXACT_F32))


def neuron_slices(m: int, chunk: int) -> Iterator[slice]:
    for start in range(0, m, chunk):
        yield slice(start, min(m, start + chunk))


def cache_rows(n_cols: int, itemsize: int, nbytes: int) -> int:
    """Rows of an n_cols-wide array of ``itemsize``-byte entries that fit in about ``nbytes``
    (at least 8): the block size of the passes that work row block by row block in cache."""
    return max(8, nbytes // (itemsize * max(n_cols, 1)))


#: where a container's memory limit is (cgroup v2, then v1); "max" or a huge v1 value means none
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit_bytes() -> int:
    """The memory a run may use: this machine's physical memory, or the container's (cgroup)
    limit when that is lower — exceeding it gets the process killed, not a MemoryError."""
    import os

    try:
        limit = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        limit = 1 << 40
    for path in CGROUP_LIMITS:
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text.isdigit():
            limit = min(limit, int(text))
        break
    return limit


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks up to 32 MiB in the heap instead of giving each
    back to the system (its default above 128 KiB, adapted only slowly). Without this every
    large numpy temporary of a pass is a fresh mapping whose pages fault in again (in a
    wide-ball ``lemma23`` run, system time then dominated). Called
    by the command line only (a library should not change its host's allocator); a no-op
    where the C library is not glibc. Returns whether it took effect."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 256 << 20))


def require_memory(estimate_bytes: float, what: str) -> float:
    """Refuse, before allocating, a run whose unavoidable memory exceeds 90% of the machine's;
    return the estimate (a check records it as its trials' memory, see :func:`workers_that_fit`)."""
    from .errors import UserError

    limit = 0.9 * memory_limit_bytes()
    if estimate_bytes > limit:
        raise UserError(f"{what} needs about {estimate_bytes / 2**30:.3g} GiB of memory, more than the "
                        f"{limit / 2**30:.3g} GiB this machine (or its container) allows; lower the width or the input size.")
    return estimate_bytes


def workers_that_fit(trial_bytes: float, workers: int, explicit: bool, what: str) -> tuple[int, str | None]:
    """How many worker processes can run trials side by side when each needs ``trial_bytes``:
    ``workers`` if they fit in 90% of the memory limit; with the worker count left to ``auto``,
    fewer (with a note saying so); an explicit count that does not fit is refused."""
    from .errors import UserError

    limit = 0.9 * memory_limit_bytes()
    fit = max(1, int(limit // trial_bytes)) if trial_bytes > 0 else workers
    if workers <= fit:
        return workers, None
    if explicit:
        raise UserError(f"{what} needs about {trial_bytes / 2**30:.3g} GiB per trial: {workers} workers need "
                        f"{workers * trial_bytes / 2**30:.3g} GiB, more than the {limit / 2**30:.3g} GiB allowed; "
                        f"use --workers {fit} or fewer.")
    return fit, (f"{fit} worker process{'es' if fit > 1 else ''} instead of {workers}: each trial needs about "
                 f"{trial_bytes / 2**30:.3g} GiB and {limit / 2**30:.3g} GiB are allowed.")
