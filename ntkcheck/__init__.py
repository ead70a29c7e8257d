"""ntkcheck: numerical checks of NTK and random-feature theorems, with Monte Carlo confidence.

The public names below are imported on first use (PEP 562), so that `ntkcheck --version` and
the command line's start-up do not pay for numpy, scipy and pydantic before they are needed."""
from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {"run_check": "api", "replay_trial": "api", "Result": "api", "Replay": "api",
            "gram_matrix": "kernels", "h_infinity": "kernels", "lambda0": "kernels", "kappa0": "kernels",
            "kappa1": "kernels"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    import importlib
    import importlib.util

    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)  # a submodule, as after `import ntkcheck.api`
    raise AttributeError(f"module 'ntkcheck' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
