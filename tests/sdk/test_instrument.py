"""flywheel.instrument against real HTTP servers on loopback, driven by the real ``openai`` client.

A fake model server speaks the OpenAI chat-completions protocol (JSON and SSE streaming) and a real flywheel API
server (``create_app``) receives the logs; both run under uvicorn in a thread. Nothing is patched.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import Engine, select

from flywheel.config import FlywheelConfig, Settings
from flywheel.errors import ConfigError
from flywheel.sdk import (
    BackgroundSink,
    Delivery,
    HttpSink,
    LogSink,
    flush,
    instrument,
    instrumentation,
    uninstrument,
)
from flywheel.service.api import create_app
from flywheel.store import log_records, open_store
from openai_streams import CREATED, TEXT_PIECES, USAGE, text_stream, tool_stream
from servers import serve

OPENAI_KEY = "sk-test-openai-key-never-logged"
FLYWHEEL_KEY = "fw-test-key"


# -- servers ---------------------------------------------------------------------------------------------------


def _completion(body: dict[str, Any], n: int) -> dict[str, Any]:
    last = body["messages"][-1]["content"]
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": CREATED,
        "model": body["model"],
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"echo: {last}", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def _text_stream(body: dict[str, Any]) -> list[dict[str, Any]]:
    return text_stream(include_usage=bool((body.get("stream_options") or {}).get("include_usage")))


def _tool_stream(_body: dict[str, Any]) -> list[dict[str, Any]]:
    return tool_stream()


def fake_openai_app() -> FastAPI:
    """The chat-completions endpoint of an OpenAI-compatible server, deterministic, recording what it received."""
    app = FastAPI()
    app.state.received = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        app.state.received.append({"headers": dict(request.headers), "body": body})
        if body["model"] == "broken-model":
            error = {"error": {"message": "model exploded", "type": "server_error", "code": None}}
            return JSONResponse(error, status_code=500)
        if not body.get("stream"):
            return _completion(body, len(app.state.received))
        chunks = (_tool_stream if body["model"] == "tool-model" else _text_stream)(body)

        async def events() -> Any:
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def model_server() -> Iterator[tuple[str, FastAPI]]:
    """Why: one fake model server for the module (start-up costs); tests read only the requests they made."""
    app = fake_openai_app()
    with serve(app) as url:
        yield url + "/v1", app


@pytest.fixture
def model_url(model_server: tuple[str, FastAPI]) -> str:
    return model_server[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """Why: a fresh SQLite store per test, so the records read back are exactly this test's."""
    url = f"sqlite:///{tmp_path / 'flywheel.db'}"
    engine = open_store(url)
    yield url, engine
    engine.dispose()


@pytest.fixture
def flywheel_server(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """Why: the HTTP sink must work against the real logs API, with API-key auth on."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    engine = open_store(url)
    env = {"FLYWHEEL_DATABASE_URL": url, "FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_API_KEYS": FLYWHEEL_KEY}
    settings = Settings.from_env(FlywheelConfig(), None, env)
    with serve(create_app(settings, engine=engine)) as base:
        yield base, engine
    engine.dispose()


def stored(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(log_records.c.data).order_by(log_records.c.timestamp)).all()
    return [orjson.loads(row.data) for row in rows]


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


_SYNC_CLIENTS: list[openai.OpenAI] = []


def sync_client(model_url: str) -> openai.OpenAI:
    """A client for the fake model server, closed after the test (async ones are closed in their own loop)."""
    client = openai.OpenAI(api_key=OPENAI_KEY, base_url=model_url, max_retries=0)
    _SYNC_CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_sync_clients() -> Iterator[None]:
    """Why: an unclosed client leaks its sockets into later tests as ResourceWarnings."""
    yield
    while _SYNC_CLIENTS:
        _SYNC_CLIENTS.pop().close()


def async_client(model_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=model_url, max_retries=0)


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
MESSAGES: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]


def dumps(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json") for c in chunks]


# -- local store sink ----------------------------------------------------------------------------------------


def test_sync_completion_is_logged_in_blueprint_schema_without_transport_options(
    model_url: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    before = time.time()
    response = client.chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        temperature=0.2,
        extra_headers={"X-Secret-Header": "s3cret-value"},
        extra_body={"nvext": {"guided_json": None}},
        timeout=30,
    )
    assert flush(client)

    assert response.choices[0].message.content == "echo: Hello?"
    (record,) = stored(engine)
    assert set(record) == {"timestamp", "workload_id", "client_id", "request", "response"}
    assert (record["workload_id"], record["client_id"]) == ("wl", "cli")
    assert before <= record["timestamp"] <= time.time()
    assert record["request"] == {
        "model": "fake-model",
        "messages": MESSAGES,
        "tools": [WEATHER_TOOL],
        "temperature": 0.2,
        "nvext": {"guided_json": None},
    }
    assert record["response"] == response.model_dump(mode="json", exclude_unset=True)
    text = json.dumps(record)
    assert "s3cret-value" not in text and OPENAI_KEY not in text
    uninstrument(client)


def test_the_model_server_receives_exactly_what_the_caller_sent(
    model_server: tuple[str, FastAPI], store: tuple[str, Engine]
) -> None:
    model_url, app = model_server
    url, engine = store
    plain = sync_client(model_url)
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    start = len(app.state.received)
    for c in (plain, client):
        c.chat.completions.create(
            model="fake-model", messages=MESSAGES, max_tokens=5, extra_headers={"X-Trace": "t1"}
        )
    assert flush(client)

    unwrapped, wrapped = app.state.received[start:]
    assert wrapped["body"] == unwrapped["body"]
    assert wrapped["headers"] == unwrapped["headers"]
    assert wrapped["headers"]["x-trace"] == "t1"
    assert len(stored(engine)) == 1
    uninstrument(client)


def test_messages_from_a_generator_and_pydantic_messages_are_sent_and_logged(
    model_url: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    first = client.chat.completions.create(model="fake-model", messages=MESSAGES)
    follow_up = [*MESSAGES, first.choices[0].message, {"role": "user", "content": "And now?"}]
    second = client.chat.completions.create(model="fake-model", messages=(m for m in follow_up))
    assert flush(client)

    assert second.choices[0].message.content == "echo: And now?"
    records = stored(engine)
    assert len(records) == 2
    assert records[1]["request"]["messages"] == [
        *MESSAGES,
        {"role": "assistant", "content": "echo: Hello?", "refusal": None},
        {"role": "user", "content": "And now?"},
    ]
    uninstrument(client)


def test_sync_stream_reaches_the_caller_unchanged_and_is_logged_reassembled(
    model_url: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    kwargs: dict[str, Any] = {
        "model": "fake-model",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    expected = dumps(list(sync_client(model_url).chat.completions.create(**kwargs)))
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)

    stream = client.chat.completions.create(**kwargs)
    assert isinstance(stream, openai.Stream)
    with stream:
        got = dumps(list(stream))
    assert flush(client)

    assert got == expected
    (record,) = stored(engine)
    assert record["request"] == {**kwargs}
    assert record["response"] == {
        "id": "chatcmpl-stream",
        "object": "chat.completion",
        "created": CREATED,
        "model": "fake-model",
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(TEXT_PIECES)},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    uninstrument(client)


def test_tool_call_stream_arguments_are_concatenated_by_index(
    model_url: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    chunks = list(
        client.chat.completions.create(
            model="tool-model", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
        )
    )
    assert flush(client)

    assert len(chunks) == 7  # every chunk reached the caller
    (record,) = stored(engine)
    (choice,) = record["response"]["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("call_a", "function", "get_weather"),
        ("call_b", "function", "get_time"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"tz": "CET"}]
    assert "usage" not in record["response"]  # the server did not send one
    uninstrument(client)


def test_the_stream_helper_is_logged_through_create(model_url: str, store: tuple[str, Engine]) -> None:
    url, engine = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    with client.chat.completions.stream(model="fake-model", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert flush(client)

    assert final.choices[0].message.content == "".join(TEXT_PIECES)
    (record,) = stored(engine)
    assert record["response"]["choices"][0]["message"]["content"] == "".join(TEXT_PIECES)
    uninstrument(client)


def test_stream_abandoned_before_it_finished_is_not_logged(model_url: str, store: tuple[str, Engine]) -> None:
    url, engine = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    with client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    instr = instrumentation(client)
    assert instr is not None
    # The SDK's stream and its generators form a reference cycle; the cycle collector finalises them.
    del stream
    gc.collect()
    assert flush(client)

    assert stored(engine) == []
    assert instr.stats.incomplete_streams == 1
    uninstrument(client)


def test_async_completion_and_stream_are_logged(model_url: str, store: tuple[str, Engine]) -> None:
    url, engine = store

    async def main() -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
        plain = async_client(model_url)
        expected = dumps([c async for c in await plain.chat.completions.create(**stream_kwargs)])
        client = instrument(async_client(model_url), workload_id="wl", client_id="cli", database_url=url)
        response = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
        stream = await client.chat.completions.create(**stream_kwargs)
        assert isinstance(stream, openai.AsyncStream)
        got = dumps([c async for c in stream])
        tools = await client.chat.completions.create(model="tool-model", messages=MESSAGES, stream=True)
        async for _ in tools:
            pass
        assert flush(client)
        uninstrument(client)
        await plain.close()
        await client.close()
        return response, expected, got

    stream_kwargs: dict[str, Any] = {"model": "fake-model", "messages": MESSAGES, "stream": True}
    response, expected, got = asyncio.run(main())

    assert got == expected
    records = stored(engine)
    assert len(records) == 3
    by_model = {(r["request"]["model"], bool(r["request"].get("stream"))): r for r in records}
    assert by_model["fake-model", False]["response"] == response.model_dump(mode="json", exclude_unset=True)
    streamed = by_model["fake-model", True]["response"]["choices"][0]
    assert (streamed["message"]["content"], streamed["finish_reason"]) == ("".join(TEXT_PIECES), "stop")
    tool_calls = by_model["tool-model", True]["response"]["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in tool_calls] == ['{"city": "Paris"}', '{"tz": "CET"}']


def test_model_server_error_reaches_the_caller_unchanged_and_nothing_is_logged(
    model_url: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    with pytest.raises(openai.InternalServerError, match="model exploded"):
        client.chat.completions.create(model="broken-model", messages=MESSAGES)
    assert flush(client)
    assert stored(engine) == []
    uninstrument(client)


def test_raw_response_calls_still_work_on_an_instrumented_client(
    model_url: str, store: tuple[str, Engine]
) -> None:
    url, _ = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    raw = client.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "echo: Hello?"
    instr = instrumentation(client)
    assert instr is not None and instr.stats.not_logged == 1
    uninstrument(client)


def test_calls_through_with_options_copies_are_logged_too(model_url: str, store: tuple[str, Engine]) -> None:
    url, engine = store
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", database_url=url)
    copy = client.with_options(timeout=20).copy(max_retries=1)
    copy.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert instrumentation(copy) is instrumentation(client)
    assert flush(client)
    assert len(stored(engine)) == 1
    uninstrument(client)
    assert instrumentation(client.with_options(timeout=20)) is None


def test_uninstrument_restores_the_original_method(model_url: str, store: tuple[str, Engine]) -> None:
    url, engine = store
    client = sync_client(model_url)
    original = client.chat.completions.create
    instrument(client, workload_id="wl", client_id="cli", database_url=url)
    assert client.chat.completions.create != original
    with pytest.raises(ConfigError, match="already instrumented"):
        instrument(client, workload_id="wl", client_id="cli", database_url=url)
    uninstrument(client)

    assert client.chat.completions.create == original
    assert instrumentation(client) is None
    client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert stored(engine) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one destination"),
        ({"server_url": "http://x", "database_url": "sqlite://"}, "exactly one destination"),
        ({"server_url": "http://x", "workload_id": " "}, "non-empty workload_id"),
    ],
)
def test_instrument_rejects_bad_setup_with_a_clear_message(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"workload_id": "wl", "client_id": "cli", **kwargs}
    with pytest.raises(ConfigError, match=message):
        instrument(openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9/v1"), **args)


# -- HTTP sink to a flywheel server ----------------------------------------------------------------------------


def test_records_reach_a_flywheel_server_with_the_api_key(
    model_url: str, flywheel_server: tuple[str, Engine]
) -> None:
    base, server_engine = flywheel_server
    client = instrument(
        sync_client(model_url), workload_id="wl", client_id="cli", server_url=base, api_key=FLYWHEEL_KEY
    )
    client.chat.completions.create(model="fake-model", messages=MESSAGES)
    for _ in client.chat.completions.create(model="tool-model", messages=MESSAGES, stream=True):
        pass

    async def in_async() -> None:
        aclient = instrument(
            async_client(model_url),
            workload_id="wl",
            client_id="async",
            server_url=base,
            api_key=FLYWHEEL_KEY,
        )
        await aclient.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert flush(aclient)
        uninstrument(aclient)
        await aclient.close()

    asyncio.run(in_async())
    assert flush(client)

    records = stored(server_engine)
    assert sorted((r["client_id"], r["request"]["model"]) for r in records) == [
        ("async", "fake-model"),
        ("cli", "fake-model"),
        ("cli", "tool-model"),
    ]
    instr = instrumentation(client)
    assert instr is not None
    assert isinstance(instr.sink, HttpSink)
    assert instr.sink.stats.stored == 2 and instr.sink.stats.failed == 0
    assert FLYWHEEL_KEY not in repr(instr.sink)
    uninstrument(client)


def test_wrong_api_key_is_counted_not_raised(model_url: str, flywheel_server: tuple[str, Engine]) -> None:
    base, server_engine = flywheel_server
    client = instrument(
        sync_client(model_url), workload_id="wl", client_id="cli", server_url=base, api_key="nope"
    )
    response = client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert response.choices[0].message.content == "echo: Hello?"
    assert flush(client)
    instr = instrumentation(client)
    assert instr is not None and isinstance(instr.sink, HttpSink)
    assert (instr.sink.stats.failed, instr.sink.stats.stored) == (1, 0)
    assert stored(server_engine) == []
    uninstrument(client)


def test_a_dead_flywheel_server_never_breaks_the_call(
    model_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", server_url=dead_url())
    with caplog.at_level(logging.WARNING, logger="flywheel.sdk"):
        response = client.chat.completions.create(model="fake-model", messages=MESSAGES)
        chunks = list(client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True))
        assert flush(client)

    assert response.choices[0].message.content == "echo: Hello?"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(TEXT_PIECES)
    instr = instrumentation(client)
    assert instr is not None and isinstance(instr.sink, HttpSink)
    assert instr.sink.stats.failed == 2
    assert any("could not be delivered" in r.getMessage() for r in caplog.records)
    uninstrument(client)


class ExplodingSink:
    """A sink whose every method fails, standing in for any bug in a custom sink."""

    def submit(self, record: dict[str, Any]) -> None:
        raise RuntimeError("sink is broken")

    def flush(self, timeout: float | None = None) -> bool:
        raise RuntimeError("sink is broken")

    def close(self) -> None:
        raise RuntimeError("sink is broken")


def test_a_broken_sink_never_breaks_sync_or_async_calls(
    model_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ExplodingSink()
    assert isinstance(sink, LogSink)
    client = instrument(sync_client(model_url), workload_id="wl", client_id="cli", sink=sink)
    with caplog.at_level(logging.WARNING, logger="flywheel.sdk"):
        response = client.chat.completions.create(model="fake-model", messages=MESSAGES)
        chunks = list(client.chat.completions.create(model="tool-model", messages=MESSAGES, stream=True))

        async def in_async() -> Any:
            aclient = instrument(async_client(model_url), workload_id="wl", client_id="cli", sink=sink)
            result = await aclient.chat.completions.create(model="fake-model", messages=MESSAGES)
            instr = instrumentation(aclient)
            assert instr is not None and instr.stats.capture_errors == 1
            await aclient.close()
            return result

        async_response = asyncio.run(in_async())
        assert flush(client) is False  # reported, not raised

    assert response.choices[0].message.content == async_response.choices[0].message.content == "echo: Hello?"
    assert len(chunks) == 7
    instr = instrumentation(client)
    assert instr is not None and (instr.stats.capture_errors, instr.stats.captured) == (2, 0)
    assert any("sink is broken" in r.getMessage() for r in caplog.records)
    uninstrument(client)  # does not close a sink it did not create


# -- background sink ----------------------------------------------------------------------------------------------


def test_full_queue_drops_and_counts_instead_of_blocking(caplog: pytest.LogCaptureFixture) -> None:
    delivering, release = threading.Event(), threading.Event()
    delivered: list[dict[str, Any]] = []

    def deliver(batch: list[dict[str, Any]]) -> Delivery:
        delivering.set()
        release.wait()
        delivered.extend(batch)
        return Delivery(stored=len(batch))

    sink = BackgroundSink(deliver, destination="test", batch_size=1, max_queue=1)
    with caplog.at_level(logging.WARNING, logger="flywheel.sdk"):
        sink.submit({"n": 1})
        delivering.wait()  # the worker now holds record 1
        sink.submit({"n": 2})  # fills the queue
        sink.submit({"n": 3})  # dropped
    release.set()
    assert sink.flush()
    sink.close()

    assert delivered == [{"n": 1}, {"n": 2}]
    stats = sink.stats
    assert (stats.submitted, stats.stored, stats.dropped, stats.failed, stats.pending) == (3, 2, 1, 0, 0)
    assert any("queue is full" in r.getMessage() for r in caplog.records)
    sink.submit({"n": 4})  # after close: dropped, not raised
    assert sink.stats.dropped == 2


def test_records_submitted_together_count_against_the_queue_bound_one_by_one() -> None:
    delivering, release = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def deliver(batch: list[dict[str, Any]]) -> Delivery:
        delivering.set()
        release.wait()
        batches.append([r["n"] for r in batch])
        return Delivery(stored=len(batch))

    sink = BackgroundSink(deliver, destination="test", batch_size=3, max_queue=5, flush_interval=0.01)
    sink.submit_many([{"n": 0}, {"n": 1}, {"n": 2}])
    delivering.wait()  # the worker holds the first three
    sink.submit_many([{"n": i} for i in range(3, 7)])  # four of five places
    sink.submit_many([{"n": 7}, {"n": 8}])  # two more do not fit: both dropped, not one of them
    sink.submit({"n": 9})  # the last place
    assert sink.stats.pending == 5
    release.set()
    assert sink.flush(5)
    sink.close()

    assert batches == [[0, 1, 2], [3, 4, 5], [6, 9]]  # split into batch_size, in order
    stats = sink.stats
    assert (stats.submitted, stats.stored, stats.dropped, stats.pending) == (10, 8, 2, 0)


def test_records_are_sent_in_batches_and_invalid_ones_counted_as_quarantined(tmp_path: Path) -> None:
    batches: list[int] = []

    def deliver(batch: list[dict[str, Any]]) -> Delivery:
        batches.append(len(batch))
        return Delivery(stored=len(batch) - 1, quarantined=1, reasons={"missing response": 1})

    sink = BackgroundSink(deliver, destination="test", batch_size=3, flush_interval=3600)
    for n in range(7):
        sink.submit({"n": n})
    assert sink.flush()
    sink.close()
    assert batches == [3, 3, 1]
    assert (sink.stats.stored, sink.stats.quarantined) == (4, 3)


def test_records_still_buffered_at_interpreter_exit_are_delivered(model_url: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'exit.db'}"
    # A flush interval of an hour: only the exit hook can deliver the record before the process ends.
    script = f"""
import openai, flywheel
client = flywheel.instrument(
    openai.OpenAI(api_key="k", base_url={model_url!r}, max_retries=0),
    workload_id="wl", client_id="exit", database_url={url!r}, flush_interval=3600,
)
client.chat.completions.create(model="fake-model", messages=[{{"role": "user", "content": "bye"}}])
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    engine = open_store(url)
    try:
        (record,) = stored(engine)
    finally:
        engine.dispose()
    assert record["client_id"] == "exit"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_delivers_its_own_records(tmp_path: Path) -> None:
    out = tmp_path / "delivered.txt"

    def deliver(batch: list[dict[str, Any]]) -> Delivery:
        with out.open("a") as fh:
            fh.writelines(f"{os.getpid()} {r['n']}\n" for r in batch)
        return Delivery(stored=len(batch))

    sink = BackgroundSink(deliver, destination="test", flush_interval=3600)
    sink.submit({"n": "parent"})
    assert sink.flush()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery, just report through the exit code
        code = 1
        try:
            sink.submit({"n": "child"})
            code = 0 if sink.flush(timeout=60) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    sink.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.read_text().splitlines() == [f"{os.getpid()} parent", f"{pid} child"]


def test_importing_flywheel_does_not_import_openai() -> None:
    code = "import sys, flywheel, flywheel.sdk; assert 'openai' not in sys.modules, 'openai imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
