"""OpenAICompatBackend against a real HTTP server on loopback."""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any

import pytest

from backends.openai_compat.loopback_openai import LoopbackOpenAI, Reply, chat_completion, last_user_text
from flywheel.backends import ChatRequest, InferenceBackend
from flywheel.backends.openai_compat import OpenAICompatBackend, chat_completions_url

SECRET = "sk-test-secret-123"


def _request(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kwargs)


def _echo(body: dict[str, Any], call: int) -> Reply:
    return Reply(body=chat_completion(f"echo: {last_user_text(body)}"))


class _Sleeps:
    """Records backoff delays instead of sleeping (keeps tests fast and lets them check Retry-After)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.delays.append(seconds)


def test_backend_satisfies_the_inference_protocol() -> None:
    backend = OpenAICompatBackend("http://127.0.0.1:1", "m")
    try:
        assert isinstance(backend, InferenceBackend)
        assert backend.name == "m"
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/v1", "http://h:8000/v1/chat/completions"),
        (
            "https://integrate.api.nvidia.com/v1/chat/completions",
            "https://integrate.api.nvidia.com/v1/chat/completions",
        ),
    ],
)
def test_base_url_forms_resolve_to_the_chat_completions_url(given: str, expected: str) -> None:
    assert chat_completions_url(given) == expected


def test_generation_carries_content_usage_latency_and_request_fields() -> None:
    with (
        LoopbackOpenAI(_echo) as server,
        OpenAICompatBackend(server.base_url, "small-model", api_key=SECRET) as backend,
    ):
        [gen] = backend.generate([_request("hello", max_tokens=16, stop=["\n\n"])])
    assert gen.error is None
    assert gen.content == "echo: hello"
    assert (gen.prompt_tokens, gen.completion_tokens) == (11, 7)
    assert gen.latency_s > 0
    body = server.bodies[0]
    assert body["model"] == "small-model"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["max_tokens"] == 16
    assert body["stop"] == ["\n\n"]
    assert body["temperature"] == 0.0
    assert "tools" not in body
    assert server.headers[0]["authorization"] == f"Bearer {SECRET}"


def test_results_come_back_in_request_order_under_concurrency_limit() -> None:
    def slow_echo(body: dict[str, Any], call: int) -> Reply:
        return Reply(body=chat_completion(last_user_text(body)), delay_s=0.05)

    with (
        LoopbackOpenAI(slow_echo) as server,
        OpenAICompatBackend(server.base_url, "m", max_concurrency=2) as backend,
    ):
        gens = backend.generate([_request(f"p{i}") for i in range(8)])
    assert [g.content for g in gens] == [f"p{i}" for i in range(8)]
    assert len(server.bodies) == 8
    assert 1 <= server.max_in_flight <= 2


def test_tools_pass_through_and_tool_calls_come_back_in_openai_shape() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]

    def tool_reply(body: dict[str, Any], call: int) -> Reply:
        calls = [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            # some servers send arguments as an object; the backend re-encodes it as a JSON string
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Rome"}},
            },
        ]
        return Reply(body=chat_completion(None, tool_calls=calls))

    history = [
        {"role": "user", "content": "weather?"},
        # logged eval records keep arguments as objects; the wire format needs strings
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
            ],
        },
        {"role": "tool", "content": "sunny"},
        {"role": "user", "content": "and Paris and Rome?"},
    ]
    with LoopbackOpenAI(tool_reply) as server, OpenAICompatBackend(server.base_url, "m") as backend:
        [gen] = backend.generate([ChatRequest(messages=history, tools=tools)])
    assert gen.error is None
    assert gen.content is None
    assert gen.tool_calls == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
        },
    ]
    assert gen.to_message()["tool_calls"] == gen.tool_calls
    sent = server.bodies[0]
    assert sent["tools"] == tools
    sent_args = sent["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(sent_args, str) and json.loads(sent_args) == {"city": "Oslo"}


def test_429_with_retry_after_is_retried_after_the_advertised_delay() -> None:
    def limited(body: dict[str, Any], call: int) -> Reply:
        if call == 1:
            return Reply(429, {"error": {"message": "rate limited"}}, headers={"Retry-After": "2"})
        return Reply(body=chat_completion("ok"))

    sleeps = _Sleeps()
    with (
        LoopbackOpenAI(limited) as server,
        OpenAICompatBackend(server.base_url, "m", sleep=sleeps) as backend,
    ):
        [gen] = backend.generate([_request("x")])
    assert gen.error is None and gen.content == "ok"
    assert len(server.bodies) == 2
    assert sleeps.delays == [2.0]


def test_5xx_is_retried_with_exponential_backoff_until_success() -> None:
    def flaky(body: dict[str, Any], call: int) -> Reply:
        return Reply(503, "upstream down") if call <= 2 else Reply(body=chat_completion("finally"))

    sleeps = _Sleeps()
    with (
        LoopbackOpenAI(flaky) as server,
        OpenAICompatBackend(server.base_url, "m", backoff_s=1.0, sleep=sleeps) as backend,
    ):
        [gen] = backend.generate([_request("x")])
    assert gen.content == "finally"
    assert len(server.bodies) == 3
    # jittered exponential: first wait in [0.5, 1], second in [1, 2]
    assert 0.5 <= sleeps.delays[0] <= 1.0
    assert 1.0 <= sleeps.delays[1] <= 2.0


def test_a_request_that_keeps_failing_becomes_an_error_generation_and_spares_the_batch() -> None:
    def broken_for_one(body: dict[str, Any], call: int) -> Reply:
        if last_user_text(body) == "poison":
            return Reply(500, {"error": {"message": "internal"}})
        return Reply(body=chat_completion("fine"))

    with (
        LoopbackOpenAI(broken_for_one) as server,
        OpenAICompatBackend(server.base_url, "m", max_retries=2, sleep=_Sleeps()) as backend,
    ):
        gens = backend.generate([_request("a"), _request("poison"), _request("b")])
    assert [g.content for g in gens] == ["fine", None, "fine"]
    assert gens[1].error is not None
    assert "HTTP 500" in gens[1].error and "after 3 attempts" in gens[1].error
    assert sum(1 for b in server.bodies if last_user_text(b) == "poison") == 3


def test_client_errors_are_not_retried() -> None:
    with (
        LoopbackOpenAI(lambda body, call: Reply(400, {"error": {"message": "bad model"}})) as server,
        OpenAICompatBackend(server.base_url, "m", sleep=_Sleeps()) as backend,
    ):
        [gen] = backend.generate([_request("x")])
    assert len(server.bodies) == 1
    assert gen.error is not None and "HTTP 400" in gen.error and "bad model" in gen.error


def test_a_slow_server_times_out_into_an_error_after_the_retries() -> None:
    with (
        LoopbackOpenAI(lambda body, call: Reply(body=chat_completion("late"), delay_s=5.0)) as server,
        OpenAICompatBackend(server.base_url, "m", timeout_s=0.2, max_retries=1, sleep=_Sleeps()) as backend,
    ):
        [gen] = backend.generate([_request("x")])
    assert gen.content is None
    assert gen.error is not None and "timed out" in gen.error
    assert len(server.bodies) == 2


def test_an_unreachable_server_is_an_error_not_an_exception() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with OpenAICompatBackend(f"http://127.0.0.1:{port}", "m", max_retries=1, sleep=_Sleeps()) as backend:
        [gen] = backend.generate([_request("x")])
    assert gen.error is not None and "connection failed" in gen.error


def test_a_malformed_success_body_is_an_error_generation() -> None:
    with (
        LoopbackOpenAI(lambda body, call: Reply(body={"unexpected": True})) as server,
        OpenAICompatBackend(server.base_url, "m") as backend,
    ):
        [gen] = backend.generate([_request("x")])
    assert gen.error is not None and "unreadable response" in gen.error


def test_the_api_key_never_appears_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    def fail(body: dict[str, Any], call: int) -> Reply:
        return Reply(503, "busy") if call == 1 else Reply(401, {"error": {"message": "denied"}})

    caplog.set_level(logging.DEBUG)
    with (
        LoopbackOpenAI(fail) as server,
        OpenAICompatBackend(server.base_url, "m", api_key=SECRET, sleep=_Sleeps()) as backend,
    ):
        [gen] = backend.generate([_request("x")])
        text = repr(backend)
    assert gen.error is not None and "HTTP 401" in gen.error
    assert SECRET not in text
    assert SECRET not in gen.error
    assert caplog.records, "the retry should have been logged"
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_a_password_in_the_base_url_never_appears_in_repr_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(body: dict[str, Any], call: int) -> Reply:
        return Reply(503, "busy") if call == 1 else Reply(401, {"error": {"message": "denied"}})

    caplog.set_level(logging.DEBUG)
    with LoopbackOpenAI(fail) as server:
        host = server.base_url.split("://", 1)[1]
        url = f"http://user:{SECRET}@{host}"
        with OpenAICompatBackend(url, "m", sleep=_Sleeps()) as backend:
            [gen] = backend.generate([_request("x")])
            text = repr(backend)
    assert gen.error is not None
    assert SECRET not in text and SECRET not in gen.error
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)


def test_tool_choice_is_sent_only_with_tools() -> None:
    tools = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    ]
    with (
        LoopbackOpenAI(_echo) as server,
        OpenAICompatBackend(server.base_url, "m", tool_choice="required") as backend,
    ):
        backend.generate([_request("with tools", tools=tools)])
        backend.generate([_request("no tools")])
    assert server.bodies[0]["tool_choice"] == "required"
    assert "tool_choice" not in server.bodies[1]
