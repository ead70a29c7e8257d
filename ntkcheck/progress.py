"""The progress bar of a run on a terminal (stderr)."""
from __future__ import annotations

import os

from .api import run_check


class Progress:
    """A rich progress bar on a terminal (stderr), shown once a run has lasted about a second;
    nothing at all in pipes, CI logs, or with --quiet."""

    def __init__(self, enabled: bool, label: str):
        import time as _time

        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal and "CI" not in os.environ
        self.label, self.total, self.done = label, None, 0
        self.t0 = _time.perf_counter()
        self._time = _time
        self.bar = None

    def plan(self, n: int) -> None:
        self.total = n
        if self.bar is not None:  # trials=auto may extend the run when hypotheses fail
            self.bar.update(self.task, total=n)

    def advance(self, _res=None) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is None and self._time.perf_counter() - self.t0 > 1.0:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeRemainingColumn)
            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.done)
        if self.bar is not None:
            rate = self.done / max(self._time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.done,
                            description=f"{self.label} ({rate:.1f} trials/s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def run_with_progress(name, scenario, overrides, quiet: bool, label: str | None = None):
    prog = Progress(not quiet, label or f"ntkcheck {name}")
    try:
        return run_check(name, scenario, on_trial=prog.advance, on_plan=prog.plan, **overrides)
    finally:
        prog.close()
