import os

import pytest

from ntkcheck.cli import main


class Run:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def ntk(capsys, monkeypatch):
    """Run the real entry point (with its error handling) and capture what it prints."""
    monkeypatch.setenv("NO_COLOR", "1")

    def run(*args):
        capsys.readouterr()
        code = main(list(map(str, args)))  # returns its exit code; it never calls sys.exit
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


# Hypothesis: derandomized in CI (the same examples every run), random locally
from hypothesis import settings as _hsettings  # noqa: E402

_hsettings.register_profile("ci", derandomize=True, deadline=None)
_hsettings.register_profile("dev", deadline=None)
_hsettings.load_profile("ci" if os.environ.get("CI") else "dev")
