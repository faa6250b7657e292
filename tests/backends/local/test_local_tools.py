"""Tool calling: parsing model answers into OpenAI tool_calls, prompting, and one real generation with tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flywheel.backends import ChatRequest
from flywheel.backends.local import parse_tool_calls
from flywheel.backends.local._chat import normalise_messages

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _assert_openai_shape(calls: list[dict[str, Any]]) -> None:
    for index, call in enumerate(calls):
        assert set(call) == {"id", "type", "function"} and call["type"] == "function"
        assert call["id"] == f"call_{index}"
        assert set(call["function"]) == {"name", "arguments"}
        assert isinstance(call["function"]["arguments"], str)  # OpenAI sends arguments JSON-encoded


def test_tool_call_tags_become_openai_tool_calls_and_text_outside_stays_content() -> None:
    text = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}</tool_call>'
    )
    content, calls = parse_tool_calls(text, [WEATHER])
    assert content == "Let me check."
    assert calls is not None and len(calls) == 2
    _assert_openai_shape(calls)
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]


def test_an_unterminated_tag_at_max_tokens_still_parses() -> None:
    _, calls = parse_tool_calls(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}', [WEATHER]
    )
    assert calls is not None and json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}


@pytest.mark.parametrize(
    "text",
    [
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Lima"}}]',  # Mistral template
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Lima"}}',  # Llama 3.1 JSON
        '<function=get_weather>{"city": "Lima"}</function>',  # Llama 3.1 custom format
    ],
)
def test_template_formats_parse_to_the_same_call(text: str) -> None:
    content, calls = parse_tool_calls(text, [WEATHER])
    assert content is None and calls is not None
    _assert_openai_shape(calls)
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Lima"}


def test_bare_json_is_a_call_only_when_it_names_an_offered_tool() -> None:
    content, calls = parse_tool_calls(
        '```json\n{"name": "get_weather", "arguments": {"city": "Cairo"}}\n```', [WEATHER]
    )
    assert content is None and calls is not None and calls[0]["function"]["name"] == "get_weather"
    answer = '{"name": "Alice", "age": 3}'
    assert parse_tool_calls(answer, [WEATHER]) == (answer, None)
    assert parse_tool_calls('{"name": "get_weather", "arguments": {}}', None)[1] is None


@pytest.mark.parametrize(
    "garbage", ["", "   ", "It is sunny.", "<tool_call>not json</tool_call>", "{broken", "[1, 2]"]
)
def test_garbage_is_content_not_a_call(garbage: str) -> None:
    content, calls = parse_tool_calls(garbage, [WEATHER])
    assert calls is None
    assert content == (garbage if garbage.strip() else None)


def test_round_trip_through_an_openai_assistant_message() -> None:
    from flywheel.backends import Generation

    content, calls = parse_tool_calls(
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Kyiv"}}</tool_call>'
    )
    message = Generation(content=content, tool_calls=calls).to_message()
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Kyiv"}'},
            }
        ],
    }


class _PlainTemplateTokenizer:
    chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def test_tools_go_into_the_system_message_when_the_template_ignores_them() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ]},
    ]  # fmt: skip
    out, template_tools = normalise_messages(_PlainTemplateTokenizer(), messages, [WEATHER])
    assert template_tools is None
    assert out[0]["role"] == "system" and '"name": "get_weather"' in out[0]["content"]
    assert "<tool_call>" in out[2]["content"] and "tool_calls" not in out[2]
    assert parse_tool_calls(out[2]["content"], [WEATHER])[1] is not None  # what we write is what we parse


@pytest.mark.slow
def test_real_generation_with_tools_returns_an_openai_tool_call(model_cache: Path) -> None:
    from flywheel.backends.local import LocalInferenceBackend

    # One worked example in the conversation: the 135M model follows the <tool_call> convention from it.
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ]},
        {"role": "tool", "tool_call_id": "call_0", "content": "18 C, sunny"},
        {"role": "assistant", "content": "It is 18 C and sunny in Paris."},
        {"role": "user", "content": "What is the weather in Berlin?"},
    ]  # fmt: skip
    backend = LocalInferenceBackend(cache_dir=model_cache)
    with_tools, without = backend.generate(
        [
            ChatRequest(messages=messages, tools=[WEATHER], max_tokens=40),
            ChatRequest(messages=messages, max_tokens=40),
        ]
    )
    backend.close()
    assert with_tools.error is None
    assert with_tools.prompt_tokens > without.prompt_tokens  # the tool schema reached the prompt
    assert with_tools.tool_calls is not None, with_tools.raw_text
    _assert_openai_shape(with_tools.tool_calls)
    assert with_tools.tool_calls[0]["function"]["name"] == "get_weather"
    assert json.loads(with_tools.tool_calls[0]["function"]["arguments"]) == {"city": "Berlin"}
    assert with_tools.to_message()["tool_calls"] == with_tools.tool_calls
