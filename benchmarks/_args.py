"""Argument types shared by the benchmark scripts: a bad value is one argparse error line and
exit code 2, not a traceback or a division by zero."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive finite number")
    return value


def machine() -> str:
    """CPU model, its widest x86 vector extension and core count, for the results file (the
    same model name has come with AVX2 on one day and AVX-512 on another, and the timings differ)."""
    import os
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        info = ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    simd = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "")
    return f"{model or platform.processor() or platform.machine()}{f' ({simd})' if simd else ''}, {os.cpu_count()} cores"


def add_results_option(ap: argparse.ArgumentParser) -> None:
    from pathlib import Path

    ap.add_argument("--results", type=Path, default=None,
                    help="append what this run prints, with date and machine, to this file "
                         "(benchmarks/RESULTS.md)")


class recorded:
    """Context manager: everything printed inside is also appended, when ``path`` is given, to the
    results file as one section headed by the script, the date, the machine, numpy and BLAS,
    and ``params``."""

    def __init__(self, path, script: str, params: str):
        self.path, self.script, self.params = path, script, params

    def __enter__(self):
        import io
        import sys

        self._stdout = sys.stdout
        self._buf = io.StringIO()
        outer, buf = self._stdout, self._buf

        class Tee(io.TextIOBase):
            def write(self, s):
                buf.write(s)
                return outer.write(s)

            def flush(self):
                outer.flush()

        sys.stdout = Tee()
        return self

    def __exit__(self, exc_type, exc, tb):
        import datetime
        import platform
        import sys

        sys.stdout = self._stdout
        if self.path is None or exc_type is not None:
            return False
        import numpy as np

        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            blas = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        except Exception:  # numpy's config layout differs between versions: name it if we can
            blas = "BLAS unknown"
        head = (f"\n## {self.script} — {datetime.date.today()} — {machine()}, Python {platform.python_version()}, "
                f"numpy {np.__version__}, {blas}; {self.params}\n\n")
        body = "".join(f"    {line}\n" for line in self._buf.getvalue().rstrip("\n").splitlines())
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(head + body)
        return False


def best(f, repeat: int = 2, warm_up: bool = False) -> float:
    """The shortest wall time of ``repeat`` calls of ``f`` (after one untimed call if ``warm_up``)."""
    import time

    if warm_up:
        f()
    out = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        out = min(out, time.perf_counter() - t0)
    return out


def wall(argv: list[str], env: dict | None = None, check: bool = False) -> float:
    """Wall seconds of one run of ``argv`` in a fresh process (output discarded). With
    ``check``, a run that fails ends the benchmark with its exit code and the end of its stderr."""
    return timed(argv, env, check)[0]


def timed(argv: list[str], env: dict | None = None, check: bool = False,
          cwd: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv`` in a fresh process: the CPU time is
    user + system of the process and of its own children (worker processes), which a machine
    whose other tenants slow the wall clock changes less. As :func:`wall` otherwise."""
    import resource
    import subprocess
    import sys
    import time

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False, text=True,
                       cwd=cwd)
    t1, c1 = time.perf_counter(), cpu()
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(argv)} ended with exit code {p.returncode}: {p.stderr.strip()[-300:]}")
    return t1 - t0, c1 - c0
