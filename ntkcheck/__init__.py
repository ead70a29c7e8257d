"""ntkcheck: numerical checks of NTK and random-feature theorems, with Monte Carlo confidence."""
from __future__ import annotations

__version__ = "0.1.0"

from .api import Replay, Result, replay_trial, run_check  # noqa: E402
from .kernels import gram_matrix, h_infinity, kappa0, kappa1, lambda0  # noqa: E402

__all__ = ["__version__", "run_check", "replay_trial", "Result", "Replay", "gram_matrix",
           "h_infinity", "lambda0", "kappa0", "kappa1"]
