"""Registry of checks: adding a statement means one module and one line here."""
from __future__ import annotations

from ..errors import UserError
from ..scenario import short
from .base import Check
from .cor22 import Cor22
from .cor24 import Cor24
from .lemma21 import Lemma21
from .lemma23 import Lemma23
from .lemma43 import Lemma43
from .lemma44 import Lemma44
from .thm41 import Thm41

REGISTRY: dict[str, type[Check]] = {c.name: c for c in (Lemma21, Cor22, Lemma23, Cor24, Thm41, Lemma43, Lemma44)}


def get_check(name: str) -> Check:
    try:
        return REGISTRY[name]()
    except KeyError:
        raise UserError(f"unknown check {short(name)}; known checks: {', '.join(REGISTRY)}.") from None
