"""Fixtures shared by the whole suite.

Each test gets its own data directory, its own database (a SQLite file, or a freshly created PostgreSQL database
that is dropped afterwards) and an environment without flywheel/NVIDIA variables, so no test sees another's state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("FLYWHEEL_TEST_PG_URL", "postgresql+psycopg://postgres@localhost:5432/postgres")

_ENV_PREFIXES = (
    "FLYWHEEL_",
    "NVIDIA_",
    "LLM_JUDGE_",
    "EMB_",
    "HF_TOKEN",
    "ELASTICSEARCH_",
    "ES_",
    "REDIS_URL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why: settings read the environment; a developer's own variables must not change test outcomes."""
    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES) or key == "COMPOSE_PROFILES":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Why: FLYWHEEL_HOME holds the SQLite file and artifacts; each test gets an empty one."""
    path = tmp_path / "flywheel-home"
    path.mkdir()
    return path


@pytest.fixture
def sqlite_url(home: Path) -> str:
    return f"sqlite:///{home / 'flywheel.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Why: store code must work on PostgreSQL; each test gets a throw-away database on the local server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(PG_ADMIN_URL)
    name = f"flywheel_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - only when the server is down
        admin.dispose()
        pytest.fail(f"PostgreSQL is needed at {admin_url.render_as_string()} for this test: {exc}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """Why: the store must behave the same on SQLite and PostgreSQL, so store tests run on both."""
    if request.param == "sqlite":
        yield f"sqlite:///{home / 'flywheel.db'}"
    else:
        yield request.getfixturevalue("postgres_url")
