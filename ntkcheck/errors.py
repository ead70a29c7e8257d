"""Exit codes and the exception for errors a user can cause.

Exit codes are documented once here and used everywhere.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ntkcheck (stable contract for scripts and CI)."""

    OK = 0  #: every primary claim passed
    FAILED = 1  #: some primary claim failed
    USAGE = 2  #: usage, scenario or input error (a message, no traceback)
    INCONCLUSIVE = 3  #: none failed, some inconclusive
    INTERNAL = 4  #: a bug in ntkcheck
    INTERRUPTED = 130  #: interrupted by the user
    BROKEN_PIPE = 141  #: the reader of the output went away (128 + SIGPIPE, as the shell reports it)


#: the signal (SIGTERM, SIGHUP) that stopped the run like Ctrl-C, if one did: the run then
#: exits 128 + its number, as a shell reports a process ended by it
received_signal: int | None = None


def interrupted_code() -> int:
    """130 after Ctrl-C; 128 + the signal after SIGTERM or SIGHUP."""
    return 128 + received_signal if received_signal is not None else int(ExitCode.INTERRUPTED)


class UserError(Exception):
    """An error caused by the input (scenario, data, options).

    ``message`` is one sentence naming the problem; the CLI prints it and exits 2.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
