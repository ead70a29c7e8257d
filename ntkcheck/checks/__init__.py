"""Registry of checks: adding a statement means one module and one line here.

A check's module is imported when the check is first looked up, not before: `ntkcheck
--version`, `ntkcheck lemma21 …` and the API load only what they use."""
from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

from ..errors import UserError

#: name → (module, class), in the order of `ntkcheck list`
CHECKS = {
    "lemma21": ("lemma21", "Lemma21"),
    "cor22": ("cor22", "Cor22"),
    "lemma23": ("lemma23", "Lemma23"),
    "cor24": ("cor24", "Cor24"),
    "thm41": ("thm41", "Thm41"),
    "lemma43": ("lemma43", "Lemma43"),
    "lemma44": ("lemma44", "Lemma44"),
    "lemma45": ("lemma45", "Lemma45"),
    "thm42": ("thm42", "Thm42"),
    "thm46": ("thm46", "Thm46"),
    "nnkernel": ("nnkernel", "NNKernel"),
    "nnrf": ("nnrf", "NNRF"),
}


class _Registry(MutableMapping):
    """name → check class, each module imported on first use; a class may also be registered
    directly (``REGISTRY[name] = cls``, as tests and extensions do)."""

    def __init__(self, table: dict[str, tuple[str, str]]):
        self._table: dict[str, tuple[str, str] | None] = dict(table)
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str):
        if name not in self._classes:
            module, cls = self._table[name]  # (a KeyError for an unknown name, as a dict's)
            self._classes[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
        return self._classes[name]

    def __setitem__(self, name: str, cls) -> None:
        self._table[name] = None
        self._classes[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._table[name]
        self._classes.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


REGISTRY = _Registry(CHECKS)


def get_check(name: str):
    try:
        return REGISTRY[name]()
    except (KeyError, TypeError):
        from ..scenario import short
        raise UserError(f"unknown check {short(name)}; known checks: {', '.join(REGISTRY)}.") from None
