"""OpenAI protocol fakes for tests (the SDK wrapper, the gateway): server-sent chat-completion chunks — a text answer
in pieces and two parallel tool calls whose arguments arrive interleaved, split mid-token — and a minimal upstream
that echoes the last user message."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request  # at module level: FastAPI resolves the handler's annotations here

CREATED = 1_700_000_000
TEXT_PIECES = ["Bon", "jour", ", ", "monde", "!"]
USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def chunk(
    delta: dict[str, Any] | None, finish: str | None = None, *, model: str = "fake-model", **extra: Any
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta=None`` makes the choice-less usage chunk."""
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return {
        "id": "chatcmpl-stream",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
        **extra,
    }


def text_stream(*, include_usage: bool = True, model: str = "fake-model") -> list[dict[str, Any]]:
    """``TEXT_PIECES`` streamed, then the finish chunk, then (with ``include_usage``) the usage chunk."""
    chunks = [chunk({"role": "assistant", "content": ""}, model=model)]
    chunks += [chunk({"content": piece}, model=model) for piece in TEXT_PIECES]
    chunks.append(chunk({}, "stop", model=model))
    if include_usage:
        chunks.append(chunk(None, model=model, usage=USAGE))
    return chunks


def tool_stream(*, model: str = "fake-model") -> list[dict[str, Any]]:
    """Two parallel tool calls (get_weather, get_time) whose arguments arrive interleaved, split mid-token."""

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": index, **fields}]}, model=model)

    return [
        chunk({"role": "assistant", "content": None}, model=model),
        call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"ci'}),
        call(1, id="call_b", type="function", function={"name": "get_time", "arguments": '{"tz": '}),
        call(0, function={"arguments": 'ty": "Paris"}'}),
        call(1, function={"arguments": '"CET"}'}),
        chunk({}, "tool_calls", model=model),
    ]


def echo_upstream() -> FastAPI:
    """A FastAPI app answering ``POST /v1/chat/completions`` with ``echo: <last message's content>``."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        message = {"role": "assistant", "content": f"echo: {body['messages'][-1]['content']}"}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }

    return app
