"""The /v1 gateway, driven by the real ``openai`` client, forwarding to a real fake upstream on loopback.

Both the upstream (a scripted OpenAI-compatible server) and flywheel (``create_app``) run under uvicorn in a thread;
nothing is patched. Records are read back from the store after the gateway's sink has delivered them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import Engine, select

from flywheel.config import FlywheelConfig, Settings
from flywheel.errors import ConfigError
from flywheel.service.api import create_app
from flywheel.store import log_records, open_store
from openai_streams import CREATED, USAGE, text_stream, tool_stream
from servers import serve

UPSTREAM_KEY = "nvapi-upstream-secret-never-logged"
FLYWHEEL_KEY = "fw-gateway-test-key"
MESSAGES: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# -- the upstream (the teacher) --------------------------------------------------------------------------------


def _text_stream() -> list[dict[str, Any]]:
    return text_stream(model="teacher")


def _tool_stream() -> list[dict[str, Any]]:
    return tool_stream(model="teacher")


def completion(body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": f"echo: {body['messages'][-1]['content']}"}
    if body.get("tools"):
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        }
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": CREATED,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


RATE_LIMIT = {"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limited"}}
BROKEN = {"error": {"message": "model exploded", "type": "server_error", "code": None}}


def upstream_app(models: tuple[str, ...] = ("teacher",)) -> FastAPI:
    """A deterministic OpenAI-compatible server that records what it received; the model name picks the reply."""
    app = FastAPI()
    app.state.received = []
    app.state.release = threading.Event()  # the "gated" stream waits for it after its first piece
    app.state.abandoned = threading.Event()  # set when a "hang" or "endless" caller went away

    @app.get("/v1/models")
    async def list_models(request: Request) -> Any:
        app.state.received.append({"headers": dict(request.headers), "body": None})
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"} for m in models]}

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw)
        app.state.received.append({"headers": dict(request.headers), "body": body, "raw": raw})
        model = body["model"]
        if model == "limited":
            headers = {"retry-after": "7", "x-ratelimit-remaining-requests": "0", "x-request-id": "req-429"}
            return JSONResponse(RATE_LIMIT, status_code=429, headers=headers)
        if model == "broken":
            return JSONResponse(BROKEN, status_code=500)
        if model == "slow":
            await asyncio.sleep(2)
        if model == "hang":  # answers only once its caller is gone
            while not await request.is_disconnected():
                await asyncio.sleep(0.01)
            app.state.abandoned.set()
        if model == "endless":

            async def forever() -> Any:
                try:
                    for chunk in itertools.cycle(_text_stream()[:2]):
                        yield f"data: {json.dumps(chunk)}\n\n"
                        await asyncio.sleep(0.02)
                finally:  # the server closes the generator when the connection goes
                    app.state.abandoned.set()

            return StreamingResponse(forever(), media_type="text/event-stream")
        if not body.get("stream"):
            headers = {"x-request-id": "req-1", "x-ratelimit-remaining-tokens": "999", "x-other": "no"}
            return JSONResponse(completion(body), headers=headers)
        chunks = _tool_stream() if model == "tool-streamer" else _text_stream()

        async def events() -> Any:
            for i, chunk in enumerate(chunks):
                yield f"data: {json.dumps(chunk)}\n\n"
                if model == "gated" and i == 1:
                    # Released only once the caller holds this piece; a buffering gateway times this out.
                    app.state.released = await asyncio.to_thread(app.state.release.wait, 5)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"x-request-id": "req-s"})

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, FastAPI]]:
    """Why: one upstream for the module (start-up costs); tests look only at the requests they made."""
    app = upstream_app()
    with serve(app) as url:
        yield url + "/v1", app


# -- flywheel with the gateway on --------------------------------------------------------------------------------


class Flywheel:
    def __init__(self, url: str, app: FastAPI, engine: Engine) -> None:
        self.url, self.app, self.engine = url, app, engine

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(api_key=FLYWHEEL_KEY, base_url=self.url + "/v1", max_retries=0, **kwargs)

    def records(self, expected: int) -> list[dict[str, Any]]:
        """The records stored once ``expected`` exchanges were handed to the sink (streams log after their end)."""
        gateway = self.app.state.gateway
        deadline = time.monotonic() + 5
        while gateway.sink.stats.submitted < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gateway.flush(5)
        with self.engine.connect() as conn:
            rows = conn.execute(select(log_records.c.data).order_by(log_records.c.timestamp)).all()
        return [orjson.loads(row.data) for row in rows]


@pytest.fixture
def start_flywheel(tmp_path: Path, upstream: tuple[str, FastAPI]) -> Iterator[Callable[..., Flywheel]]:
    """Why: each test gets its own store and gateway settings (timeouts, upstream URL)."""
    stack: list[Any] = []

    def start(base_url: str | None = None, env: dict[str, str] | None = None, **gateway: Any) -> Flywheel:
        url = f"sqlite:///{tmp_path / f'flywheel{len(stack)}.db'}"
        engine = open_store(url)
        config = FlywheelConfig.model_validate(
            {
                "gateway": {
                    "upstream": {"base_url": base_url or upstream[0], "api_key_env": "NVIDIA_API_KEY"},
                    **gateway,
                }
            }
        )
        environment = {
            "FLYWHEEL_DATABASE_URL": url,
            "FLYWHEEL_HOME": str(tmp_path),
            "FLYWHEEL_API_KEYS": FLYWHEEL_KEY,
            "NVIDIA_API_KEY": UPSTREAM_KEY,
            **(env or {}),
        }
        app = create_app(Settings.from_env(config, None, environment), engine=engine, executor=_NoExecutor())
        server = serve(app)
        base = server.__enter__()
        stack.append((server, engine))
        return Flywheel(base, app, engine)

    yield start
    for server, engine in reversed(stack):
        server.__exit__(None, None, None)
        engine.dispose()


class _NoExecutor:
    def submit(self, job_id: str) -> None:  # the gateway runs no jobs
        pass


def stored_text(engine: Engine) -> str:
    """Everything the store holds, as text (every table)."""
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(str(row) for table in meta.sorted_tables for row in conn.execute(table.select()))


def received_since(upstream: tuple[str, FastAPI], start: int) -> list[dict[str, Any]]:
    return list(upstream[1].state.received[start:])


# -- tests -------------------------------------------------------------------------------------------------------


def test_a_completion_reaches_the_upstream_untouched_and_comes_back_as_the_upstream_sent_it(
    start_flywheel: Callable[..., Flywheel], upstream: tuple[str, FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    flywheel = start_flywheel()
    start = len(upstream[1].state.received)
    raw = flywheel.client().chat.completions.with_raw_response.create(
        model="teacher",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        temperature=0.2,
        extra_body={"nvext": {"guided_json": None}},
        extra_headers={"X-Flywheel-Workload-Id": "support", "X-Flywheel-Client-Id": "web"},
    )
    response = raw.parse()

    (sent,) = received_since(upstream, start)
    assert sent["body"] == {
        "model": "teacher",
        "messages": MESSAGES,
        "tools": [WEATHER_TOOL],
        "temperature": 0.2,
        "nvext": {"guided_json": None},
    }
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the upstream's key, not flywheel's
    assert FLYWHEEL_KEY not in json.dumps(sent["headers"])
    assert "x-flywheel-workload-id" not in sent["headers"]
    assert orjson.loads(raw.http_response.content) == completion(sent["body"])
    assert response.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'  # type: ignore[index,union-attr]
    assert raw.headers["x-request-id"] == "req-1"
    assert raw.headers["x-ratelimit-remaining-tokens"] == "999"
    assert "x-other" not in raw.headers

    (record,) = flywheel.records(1)
    assert (record["workload_id"], record["client_id"]) == ("support", "web")
    assert record["request"] == sent["body"]
    assert record["response"] == completion(sent["body"])
    assert UPSTREAM_KEY not in stored_text(flywheel.engine)
    assert UPSTREAM_KEY not in caplog.text


def test_a_stream_is_relayed_chunk_by_chunk_before_the_upstream_has_finished(
    start_flywheel: Callable[..., Flywheel], upstream: tuple[str, FastAPI]
) -> None:
    flywheel = start_flywheel()
    upstream[1].state.release.clear()
    stream = flywheel.client().chat.completions.create(
        model="gated", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    it = iter(stream)
    first, second = next(it), next(it)  # the upstream holds the rest until released: nothing is buffered
    upstream[1].state.release.set()
    chunks = [first, second, *it]
    assert upstream[1].state.released

    assert [c.model_dump(mode="json", exclude_unset=True) for c in chunks] == _text_stream()
    (record,) = flywheel.records(1)
    assert (record["workload_id"], record["client_id"]) == ("gateway", "gateway")  # the configured defaults
    assert record["request"]["stream"] is True
    assert record["response"]["choices"][0]["message"] == {"role": "assistant", "content": "Bonjour, monde!"}
    assert record["response"]["choices"][0]["finish_reason"] == "stop"
    assert record["response"]["usage"] == USAGE
    assert UPSTREAM_KEY not in stored_text(flywheel.engine)


def test_streamed_tool_calls_reach_the_app_in_order_and_are_logged_reassembled(
    start_flywheel: Callable[..., Flywheel],
) -> None:
    flywheel = start_flywheel(default_workload_id="agents", default_client_id="cli")
    chunks = list(
        flywheel.client().chat.completions.create(
            model="tool-streamer", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
        )
    )

    assert [c.model_dump(mode="json", exclude_unset=True) for c in chunks] == _tool_stream()
    (record,) = flywheel.records(1)
    assert (record["workload_id"], record["client_id"]) == ("agents", "cli")
    message = record["response"]["choices"][0]["message"]
    assert message["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
    ]
    assert record["response"]["choices"][0]["finish_reason"] == "tool_calls"


def test_the_async_client_gets_every_answer_and_stream_byte_for_byte_and_each_is_logged_as_it_was_received(
    start_flywheel: Callable[..., Flywheel],
) -> None:
    flywheel = start_flywheel()
    sent_bytes = "".join(f"data: {json.dumps(c)}\n\n" for c in _tool_stream()) + "data: [DONE]\n\n"

    async def app() -> tuple[list[Any], list[bytes]]:
        client = openai.AsyncOpenAI(api_key=FLYWHEEL_KEY, base_url=flywheel.url + "/v1", max_retries=0)

        async def ask(i: int) -> Any:
            messages: Any = [{"role": "user", "content": f"question {i}"}]
            if i % 2:
                return await client.chat.completions.create(model="teacher", messages=messages)
            stream = await client.chat.completions.create(
                model="tool-streamer", messages=messages, tools=[WEATHER_TOOL], stream=True
            )
            return [chunk async for chunk in stream]

        async def raw_stream() -> bytes:  # what reaches the wire, below any client's parsing
            body = {"model": "tool-streamer", "messages": MESSAGES, "stream": True}
            headers = {"authorization": f"Bearer {FLYWHEEL_KEY}"}
            async with (
                httpx.AsyncClient() as http,
                http.stream(
                    "POST", flywheel.url + "/v1/chat/completions", json=body, headers=headers
                ) as reply,
            ):
                return b"".join([piece async for piece in reply.aiter_raw()])

        answers = await asyncio.gather(*(ask(i) for i in range(12)))
        raws = await asyncio.gather(*(raw_stream() for _ in range(3)))
        await client.close()
        return list(answers), list(raws)

    answers, raws = asyncio.run(app())

    assert raws == [sent_bytes.encode()] * 3
    for i, answer in enumerate(answers):
        if i % 2:
            assert answer.choices[0].message.content == f"echo: question {i}"
        else:
            assert [c.model_dump(mode="json", exclude_unset=True) for c in answer] == _tool_stream()
    records = {r["request"]["messages"][-1]["content"]: r for r in flywheel.records(15)}
    for i, answer in enumerate(answers):  # the record holds what the app received
        response = records[f"question {i}"]["response"]
        if i % 2:
            assert response == answer.model_dump(mode="json", exclude_unset=True)
        else:
            calls = [
                c.choices[0].delta.tool_calls for c in answer if c.choices and c.choices[0].delta.tool_calls
            ]
            names = [
                call.function.name
                for delta in calls
                for call in delta
                if call.function and call.function.name
            ]
            got = [call["function"]["name"] for call in response["choices"][0]["message"]["tool_calls"]]
            assert got == names == ["get_weather", "get_time"]


def test_upstream_errors_pass_through_with_their_body_and_headers_and_are_not_logged(
    start_flywheel: Callable[..., Flywheel],
) -> None:
    flywheel = start_flywheel()
    client = flywheel.client()
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="limited", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as broken:
        client.chat.completions.create(model="broken", messages=MESSAGES, stream=True)
    client.chat.completions.create(model="teacher", messages=MESSAGES)  # something to flush behind

    assert limited.value.status_code == 429
    assert limited.value.response.json() == RATE_LIMIT
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.value.response.headers["x-request-id"] == "req-429"
    assert broken.value.status_code == 500
    assert broken.value.response.json() == BROKEN
    assert [r["request"]["model"] for r in flywheel.records(1)] == ["teacher"]


def test_an_upstream_timeout_is_an_openai_shaped_504_and_an_unreachable_upstream_a_502(
    start_flywheel: Callable[..., Flywheel],
) -> None:
    slow = start_flywheel(timeout_s=0.2)
    with pytest.raises(openai.APIStatusError) as timed_out:
        slow.client().chat.completions.create(model="slow", messages=MESSAGES)
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    unreachable = start_flywheel(base_url=dead)
    with pytest.raises(openai.APIStatusError) as refused:
        unreachable.client().chat.completions.create(model="teacher", messages=MESSAGES)

    assert timed_out.value.status_code == 504
    assert timed_out.value.response.json()["error"]["code"] == "upstream_timeout"
    assert "gateway.timeout_s" in timed_out.value.response.json()["error"]["message"]
    assert refused.value.status_code == 502
    error = refused.value.response.json()["error"]
    assert set(error) == {"message", "type", "code"} and error["code"] == "upstream_unreachable"
    assert slow.records(0) == [] and unreachable.records(0) == []


def test_the_v1_routes_take_the_flywheel_api_keys_and_refuse_in_the_openai_error_shape(
    start_flywheel: Callable[..., Flywheel],
) -> None:
    flywheel = start_flywheel()
    body = {"model": "teacher", "messages": MESSAGES}
    with httpx.Client(base_url=flywheel.url) as http:
        missing = http.post("/v1/chat/completions", json=body)
        wrong = {"authorization": f"Bearer {UPSTREAM_KEY}"}
        invalid = http.post("/v1/chat/completions", json=body, headers=wrong)
        assert http.get("/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(api_key="not-a-key", base_url=flywheel.url + "/v1", max_retries=0).models.list()

    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert "FLYWHEEL_API_KEYS" in missing.json()["error"]["message"]
    assert invalid.status_code == 401 and invalid.json() == {
        "error": {
            "message": "Invalid API key.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert refused.value.message == "Error code: 401 - Invalid API key."  # the client reads error.message
    assert flywheel.records(0) == []


def test_the_client_id_is_the_header_else_the_name_of_the_callers_key_else_the_default(
    start_flywheel: Callable[..., Flywheel],
) -> None:
    flywheel = start_flywheel(env={"FLYWHEEL_API_KEYS": f"support-bot:{FLYWHEEL_KEY},anonymous-key"})
    flywheel.client().chat.completions.create(model="teacher", messages=MESSAGES)
    flywheel.client(default_headers={"X-Flywheel-Client-Id": "web"}).chat.completions.create(
        model="teacher", messages=[{"role": "user", "content": "from the web"}]
    )
    openai.OpenAI(
        api_key="anonymous-key", base_url=flywheel.url + "/v1", max_retries=0
    ).chat.completions.create(model="teacher", messages=[{"role": "user", "content": "unnamed"}])

    assert [r["client_id"] for r in flywheel.records(3)] == ["support-bot", "web", "gateway"]


def test_routes_send_a_model_or_a_workload_to_its_own_upstream_and_models_lists_them_all(
    start_flywheel: Callable[..., Flywheel], upstream: tuple[str, FastAPI]
) -> None:
    second, third = upstream_app(models=("student", "teacher")), upstream_app(models=("judge",))
    with serve(second) as second_url, serve(third) as third_url:
        flywheel = start_flywheel(
            env={"STUDENT_KEY": "student-secret"},
            routes=[
                {
                    "models": ["student"],
                    "upstream": {"base_url": second_url + "/v1", "api_key_env": "STUDENT_KEY"},
                },
                {"workload_ids": ["grading"], "upstream": {"base_url": third_url + "/v1"}},
            ],
        )
        start = len(upstream[1].state.received)
        client = flywheel.client()
        client.chat.completions.create(model="student", messages=MESSAGES)
        client.chat.completions.create(
            model="teacher", messages=MESSAGES, extra_headers={"X-Flywheel-Workload-Id": "grading"}
        )
        client.chat.completions.create(model="teacher", messages=MESSAGES)
        listed = [m.id for m in client.models.list()]

    assert [r["body"]["model"] for r in second.state.received if r["body"]] == ["student"]
    assert second.state.received[0]["headers"]["authorization"] == "Bearer student-secret"
    assert [r["body"]["model"] for r in third.state.received if r["body"]] == ["teacher"]
    assert "authorization" not in third.state.received[0]["headers"]  # that route's upstream takes no key
    assert [r["body"]["model"] for r in received_since(upstream, start) if r["body"]] == ["teacher"]
    assert listed == ["teacher", "student", "judge"]  # each id once, the default upstream's first
    assert [r["workload_id"] for r in flywheel.records(3)] == ["gateway", "grading", "gateway"]


def test_a_route_whose_key_is_not_set_is_a_config_error_naming_the_route() -> None:
    config = FlywheelConfig.model_validate(
        {
            "gateway": {
                "upstream": {"base_url": "http://x.test/v1"},
                "routes": [
                    {"models": ["m"], "upstream": {"base_url": "http://y.test/v1", "api_key_env": "Y_KEY"}}
                ],
            }
        }
    )
    with pytest.raises(ConfigError, match=r"gateway\.routes\[0\]\.upstream\.api_key_env names Y_KEY"):
        create_app(Settings.from_env(config, None, {}))
    with pytest.raises(ValidationError, match="needs `models` or `workload_ids`"):
        FlywheelConfig.model_validate(
            {
                "gateway": {
                    "upstream": {"base_url": "http://x.test/v1"},
                    "routes": [{"upstream": {"base_url": "u"}}],
                }
            }
        )


def test_a_caller_that_goes_away_cancels_its_upstream_call(
    start_flywheel: Callable[..., Flywheel], upstream: tuple[str, FastAPI]
) -> None:
    flywheel = start_flywheel()
    abandoned = upstream[1].state.abandoned
    abandoned.clear()
    with pytest.raises(openai.APITimeoutError):  # the app gives up waiting and closes its connection
        flywheel.client(timeout=0.3).chat.completions.create(model="hang", messages=MESSAGES)
    assert abandoned.wait(5), "the upstream call outlived its caller"

    abandoned.clear()
    with flywheel.client().chat.completions.create(model="endless", messages=MESSAGES, stream=True) as stream:
        for _, _chunk in zip(range(3), stream, strict=False):
            pass  # the app reads three chunks of an endless stream, then closes it
    assert abandoned.wait(5), "the upstream stream outlived its caller"
    assert flywheel.records(0) == []


def test_models_are_listed_from_the_upstream(
    start_flywheel: Callable[..., Flywheel], upstream: tuple[str, FastAPI]
) -> None:
    flywheel = start_flywheel()
    start = len(upstream[1].state.received)
    models = flywheel.client().models.list()

    assert [m.id for m in models] == ["teacher"]
    (sent,) = received_since(upstream, start)
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_without_a_gateway_section_there_is_no_v1(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = open_store(url)
    settings = Settings.from_env(FlywheelConfig(), None, {"FLYWHEEL_DATABASE_URL": url})
    with TestClient(create_app(settings, engine=engine, executor=_NoExecutor())) as client:
        assert client.post("/v1/chat/completions", json={}).status_code in (404, 405)
    engine.dispose()


def test_a_missing_upstream_key_is_a_config_error_naming_the_variable() -> None:
    config = FlywheelConfig.model_validate(
        {"gateway": {"upstream": {"base_url": "http://x.test/v1", "api_key_env": "TEACHER_KEY"}}}
    )
    with pytest.raises(ConfigError, match="TEACHER_KEY"):
        create_app(Settings.from_env(config, None, {}))


def test_the_gateway_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="upstreams"):
        FlywheelConfig.model_validate(
            {"gateway": {"upstream": {"base_url": "http://x.test/v1"}, "upstreams": []}}
        )
