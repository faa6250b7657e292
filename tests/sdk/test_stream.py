"""Reassembling streamed chunks into one ChatCompletion: the cases a single-choice OpenAI stream does not show."""

from __future__ import annotations

from typing import Any

from flywheel.sdk import StreamAccumulator


def chunk(*choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": list(choices),
        **extra,
    }


def test_choices_of_an_n_greater_than_one_stream_are_kept_apart() -> None:
    acc = StreamAccumulator()
    acc.add(chunk({"index": 1, "delta": {"role": "assistant", "content": "B"}}))
    acc.add(chunk({"index": 0, "delta": {"role": "assistant", "content": "A"}}))
    acc.add(chunk({"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}))
    assert not acc.complete
    acc.add(chunk({"index": 1, "delta": {"content": "b"}, "finish_reason": "length"}))
    assert acc.complete

    choices = acc.completion()["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "Aa", "stop"),
        (1, "Bb", "length"),
    ]


def test_tool_calls_without_an_index_are_told_apart_by_id() -> None:
    acc = StreamAccumulator()
    acc.add(chunk({"delta": {"tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{"}}]}}))
    acc.add(chunk({"delta": {"tool_calls": [{"function": {"arguments": "}"}}]}}))
    acc.add(chunk({"delta": {"tool_calls": [{"id": "y", "function": {"name": "g", "arguments": "[]"}}]}}))
    acc.add(chunk({"delta": {}, "finish_reason": "tool_calls"}))

    message = acc.completion()["choices"][0]["message"]
    assert message["content"] is None and message["role"] == "assistant"
    assert [(c["id"], c["type"], c["function"]) for c in message["tool_calls"]] == [
        ("x", "function", {"name": "f", "arguments": "{}"}),
        ("y", "function", {"name": "g", "arguments": "[]"}),
    ]


def test_provider_text_fields_logprobs_and_usage_are_merged() -> None:
    acc = StreamAccumulator()
    token = {"token": "a", "logprob": -0.1, "bytes": None, "top_logprobs": []}
    acc.add(chunk({"index": 0, "delta": {"role": "assistant", "reasoning_content": "think "}}))
    acc.add(
        chunk(
            {
                "index": 0,
                "delta": {"reasoning_content": "hard", "content": "a"},
                "logprobs": {"content": [token]},
            }
        )
    )
    acc.add(
        chunk(
            {"index": 0, "delta": {"content": "b"}, "logprobs": {"content": [token]}, "finish_reason": "stop"}
        )
    )
    acc.add(
        chunk(usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, system_fingerprint="fp")
    )

    completion = acc.completion()
    (choice,) = completion["choices"]
    assert choice["message"] == {"role": "assistant", "content": "ab", "reasoning_content": "think hard"}
    assert choice["logprobs"] == {"content": [token, token]}
    assert completion["usage"]["total_tokens"] == 3
    assert (completion["object"], completion["system_fingerprint"]) == ("chat.completion", "fp")
    assert acc.completion() == completion  # building the result does not consume the state


def test_an_empty_stream_is_not_complete() -> None:
    acc = StreamAccumulator()
    assert not acc.complete
    assert acc.completion()["choices"] == []
