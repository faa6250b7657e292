"""Fixtures for job orchestration and worker tests (the kit itself is in tests/scripted_jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripted_jobs import Harness


@pytest.fixture
def harness(store_url: str, home: Path) -> Iterator[Harness]:
    h = Harness(store_url, home)
    yield h
    h.engine.dispose()
