"""Builders of realistic log records for tests (blueprint schema)."""

from __future__ import annotations

import json
from typing import Any


def chat_record(
    user: str = "What is the capital of France?",
    answer: str | None = "Paris.",
    *,
    workload_id: str = "wl",
    client_id: str = "client",
    timestamp: Any = 1_760_000_000,
    tool_calls: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A blueprint log record with one system and one user message."""
    request: dict[str, Any] = {
        "model": "meta/llama-3.3-70b-instruct",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": user}],
    }
    if tools:
        request["tools"] = tools
    message: dict[str, Any] = {"role": "assistant", "content": answer}
    if tool_calls:
        message["tool_calls"] = tool_calls
    record: dict[str, Any] = {
        "workload_id": workload_id,
        "client_id": client_id,
        "request": request,
        "response": {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "meta/llama-3.3-70b-instruct",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23},
        },
        **extra,
    }
    if timestamp is not None:
        record["timestamp"] = timestamp
    return record


def tool_call(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
