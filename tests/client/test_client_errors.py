"""Every error answer becomes the FlywheelError the CLI has always raised, with the server's own message; no message
or repr shows the API key or a password of the URL. Each case runs through the sync and the async client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from flywheel.client import AsyncClient, Client
from flywheel.errors import ConfigError, ConflictError, FlywheelError, NotFoundError
from servers import canned_answers

#: A URL with a password and a token, where nothing listens.
SECRET_URL = "http://fly:pw-secret@127.0.0.1:1/?token=t-secret"
SECRET_KEY = "key-secret"


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Any:
    """Why: both clients must map errors the same way; ``call(url, key, "method", *args)`` runs one method on the
    client this parameter names, in a fresh client."""

    def run(url: str, api_key: str | None, method: str, *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            with Client(url, api_key=api_key) as fw:
                return getattr(fw, method)(*args, **kwargs)

        async def main() -> Any:
            async with AsyncClient(url, api_key=api_key) as fw:
                return await getattr(fw, method)(*args, **kwargs)

        return asyncio.run(main())

    return run


def test_404_is_not_found_with_the_servers_message(server: Any, call: Any, fails_with: Any) -> None:
    with fails_with(NotFoundError, "Job with ID nope not found"):
        call(server.url, server.api_key, "get_job", "nope")
    # the id is one path segment: '?' is not the start of a query string
    with fails_with(NotFoundError, "Job with ID a?b not found"):
        call(server.url, server.api_key, "report", "a?b")
    with fails_with(
        NotFoundError,
        "Quarantined record 5 not found; list them with `flywheel quarantine list` or GET /api/quarantine.",
    ):
        call(server.url, server.api_key, "get_quarantined", 5)


def test_409_is_a_conflict(server: Any, call: Any, fails_with: Any) -> None:
    with Client(server.url, api_key=server.api_key) as fw:
        from scripted_jobs import classification_logs

        fw.logs(classification_logs(60))
        job_id = fw.create_job("news", "web")["id"]
        fw.wait(job_id, poll_s=0.05, timeout_s=60)
    with fails_with(ConflictError, "Cannot cancel a job that has already finished."):
        call(server.url, server.api_key, "cancel_job", job_id)


def test_401_is_a_config_error_that_says_to_set_the_key(server: Any, call: Any, fails_with: Any) -> None:
    missing = "Missing API key: send 'Authorization: Bearer <key>' (keys are set in FLYWHEEL_API_KEYS)."
    with fails_with(ConfigError, f"{missing} (set FLYWHEEL_API_KEY)"):
        call(server.url, None, "list_jobs")
    with fails_with(ConfigError, "Invalid API key. (set FLYWHEEL_API_KEY)"):
        call(server.url, "wrong", "list_jobs")
    assert (
        call(server.url, server.api_key, "list_jobs")["total"] == 0
    )  # the key is sent: the same call passes


def test_422_is_a_config_error_with_each_fields_problem(server: Any, call: Any, fails_with: Any) -> None:
    with fails_with(ConfigError, "query.limit: Input should be less than or equal to 500"):
        call(server.url, server.api_key, "list_jobs", limit=1000)
    with fails_with(
        ConfigError,
        "data_split_config.eval_size: Input should be greater than or equal to 1 (got -1); "
        "data_split_config.bogus: unknown key; remove it or check its spelling",
    ):
        call(
            server.url,
            server.api_key,
            "create_job",
            "news",
            "web",
            data_split_config={"eval_size": -1, "bogus": 1},
        )
    with pytest.raises(ConfigError) as caught:
        call(server.url, server.api_key, "samples", "any", max_score=2.0)
    assert caught.value.problems == [("query.max_score", "Input should be less than or equal to 1")]


def test_an_unreachable_server_is_named_without_its_secrets(call: Any) -> None:
    with pytest.raises(FlywheelError) as caught:
        call(SECRET_URL, SECRET_KEY, "list_jobs")
    message = str(caught.value)
    assert type(caught.value) is FlywheelError
    assert message.startswith("Cannot reach the flywheel server at http://fly:***@127.0.0.1:1/?token=***: ")
    assert "pw-secret" not in message and "t-secret" not in message and SECRET_KEY not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no traceback naming the URL


def test_no_secret_in_the_clients_repr() -> None:
    fw = Client(SECRET_URL, api_key=SECRET_KEY)
    afw = AsyncClient(SECRET_URL, api_key=SECRET_KEY)
    assert repr(fw) == "Client('http://fly:***@127.0.0.1:1/?token=***', api_key=***)"
    assert repr(afw) == "AsyncClient('http://fly:***@127.0.0.1:1/?token=***', api_key=***)"
    assert fw.base_url == afw.base_url == "http://fly:***@127.0.0.1:1/?token=***"
    for client in (fw, afw):
        shown = repr(vars(client)) + str(client)
        assert "pw-secret" not in shown and "t-secret" not in shown and SECRET_KEY not in shown
    assert repr(Client("http://h:1")) == "Client('http://h:1', api_key=None)"
    fw.close()
    asyncio.run(afw.aclose())


def test_server_and_key_default_to_the_environment(
    server: Any, monkeypatch: pytest.MonkeyPatch, fails_with: Any
) -> None:
    with fails_with(
        ConfigError, "No flywheel server URL: pass base_url='http://host:8000' or set FLYWHEEL_SERVER."
    ):
        Client()
    monkeypatch.setenv("FLYWHEEL_SERVER", server.url)
    monkeypatch.setenv("FLYWHEEL_API_KEY", server.api_key)
    with Client() as fw:
        assert fw.list_jobs()["total"] == 0

    async def main() -> int:
        async with AsyncClient() as afw:
            return (await afw.list_jobs())["total"]

    assert asyncio.run(main()) == 0


seen_authorization: list[str | None] = []


@pytest.fixture
def answers() -> Iterator[tuple[str, list[tuple[int, str, bytes]]]]:
    """Why: some answers (a web page, a proxy's 502) never come from a flywheel server; this one gives what the test
    queues, to check the client turns them into messages too. It appends each request's Authorization header (or
    None) to ``seen_authorization``."""
    seen_authorization.clear()
    with canned_answers(seen_authorization) as server:
        yield server


def test_answers_that_no_flywheel_server_gives_are_messages(
    answers: tuple[str, list[tuple[int, str, bytes]]], call: Any, fails_with: Any
) -> None:
    url, queued = answers
    queued.append((200, "text/html", b"<html>a web page</html>"))
    with fails_with(
        FlywheelError,
        f"{url} answered GET /api/jobs with HTTP 200 but not JSON (text/html): it is not a flywheel server, or not "
        "its base URL. Check the server URL (--server / FLYWHEEL_SERVER).",
    ):
        call(url, None, "list_jobs")
    queued.append((502, "text/plain", b"Bad Gateway"))
    with fails_with(FlywheelError, "Bad Gateway"):
        call(url, None, "get_job", "x")
    queued.append((500, "application/json", json.dumps({"detail": f"boom {SECRET_KEY}"}).encode()))
    with fails_with(FlywheelError, "boom ***"):  # a key the server echoes is not repeated
        call(url, SECRET_KEY, "report", "x")


def test_the_api_key_is_sent_as_a_bearer_token_and_nothing_without_one(
    answers: tuple[str, list[tuple[int, str, bytes]]], call: Any
) -> None:
    url, queued = answers
    queued.extend([(200, "application/json", b'{"status": "ok", "version": "0"}')] * 2)
    assert call(url, SECRET_KEY, "health") == {"status": "ok", "version": "0"}
    assert call(url, None, "health")["status"] == "ok"
    assert seen_authorization == [f"Bearer {SECRET_KEY}", None]
