"""Integration tests' shared set-up.

Several modules keep a provenance at module level (`BY = Provenance(...)`), and a
provenance carries the moment it was made: the domain refuses an entry more than the
allowed clock skew (5 minutes) ahead of that moment. Made when the module is imported, it
grows stale in a suite that runs longer than that (a busy machine), and the tests then fail
with "must not be in the future" for reasons of their own timing. Each test gets them
fresh.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest

from domain.provenance import Provenance, utcnow


@pytest.fixture(autouse=True)
def fresh_provenances() -> Iterator[None]:
    for name, module in list(sys.modules.items()):
        if not name.startswith("tests.integration."):
            continue
        for attribute, value in list(vars(module).items()):
            if isinstance(value, Provenance):
                setattr(module, attribute, replace(value, now=utcnow()))
    yield
