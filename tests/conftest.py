import functools
import json
import os

import pytest

import ntkcheck

from ntkcheck.cli import main


class Run:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err
        self.flat = " ".join(out.split())  # the output with its line breaks undone (tables wrap to 80 columns)


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


@functools.lru_cache(maxsize=None)
def default_result(name: str):
    """A check's default run (a Result), computed once per test session."""
    return ntkcheck.run_check(name)


@functools.lru_cache(maxsize=None)
def _default_json(name: str) -> str:
    return json.dumps(default_result(name).to_dict())


@pytest.fixture
def default_run():
    """A check's default run as its JSON dictionary, computed once per test session (several of
    the check's own tests assert on it)."""
    return lambda name: json.loads(_default_json(name))


# Hypothesis: derandomized in CI (the same examples every run), random locally
from hypothesis import settings as _hsettings  # noqa: E402

_hsettings.register_profile("ci", derandomize=True, deadline=None)
_hsettings.register_profile("dev", deadline=None)
_hsettings.load_profile("ci" if os.environ.get("CI") else "dev")
