"""Fixtures of the client tests: the real app on a loopback port, over a store with logs and scripted backends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from flywheel.config import Settings
from flywheel.service.api import create_app
from scripted_jobs import ScriptedBackends, job_config, knows_topics
from servers import serve


@dataclass
class Server:
    url: str
    #: The one key the server accepts.
    api_key: str
    #: Cleared, it holds every evaluation batch (so a job stays running) until set again.
    gate: threading.Event


@pytest.fixture
def server(sqlite_url: str, home: Path) -> Iterator[Server]:
    """Why: the client is tested against the real API (auth, validation, job executor), not a stand-in; the
    scripted backends make a job finish in about a second. The store starts empty: tests send logs themselves."""
    api_key = "k1-secret-key"
    env = {"FLYWHEEL_DATABASE_URL": sqlite_url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": api_key}
    settings = Settings.from_env(job_config(), None, env)
    gate = threading.Event()
    gate.set()
    backends = ScriptedBackends(knows_topics, on_generate=lambda: gate.wait(30))
    with serve(create_app(settings, backends=backends)) as url:
        try:
            yield Server(url, api_key, gate)
        finally:
            gate.set()  # never leave the job worker blocked while the server stops


FailsWith = Callable[[type[Exception], str], AbstractContextManager[None]]


@pytest.fixture
def fails_with() -> FailsWith:
    """Why: an error mapping is only tested by its exact class and exact message (a subclass, or a message that
    merely contains the text, would let a wrong mapping pass). ``with fails_with(NotFoundError, "…"):``."""

    @contextmanager
    def check(error: type[Exception], message: str) -> Iterator[None]:
        with pytest.raises(Exception) as caught:
            yield
        assert (type(caught.value), str(caught.value)) == (error, message)

    return check
