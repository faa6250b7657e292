"""The record view: every part of a log record read from one place, never raising on odd shapes."""

from __future__ import annotations

from typing import Any

import pytest

from factories import chat_record, tool_call
from flywheel.pipeline.records import RecordView, content_text, response_message, with_choices, with_messages

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def test_a_logged_record_reads_prompt_answer_usage_and_models() -> None:
    call = tool_call("get_weather", {"city": "Oslo"})
    record = chat_record("Weather in Oslo?", None, tool_calls=[call], tools=[WEATHER_TOOL], record_id="r7")
    view = RecordView(record)
    assert view.messages is record["request"]["messages"]  # the record's own list: nothing is copied
    assert [m["role"] for m in view.messages] == ["system", "user"]
    assert view.tools == [WEATHER_TOOL]
    assert view.teacher_message is record["response"]["choices"][0]["message"]
    assert view.teacher_content is None
    assert view.teacher_tool_calls == [call]
    assert view.teacher_tool_name == "get_weather"
    assert (view.prompt_tokens, view.completion_tokens) == (20, 3)
    assert view.model == view.request_model == view.response_model == "meta/llama-3.3-70b-instruct"
    assert (view.workload_id, view.client_id, view.record_id) == ("wl", "client", "r7")


def test_a_plain_answer_has_content_and_no_tool_calls() -> None:
    view = RecordView(chat_record("Capital of France?", "[[geography]] Paris."))
    assert view.teacher_content == "[[geography]] Paris."
    assert view.teacher_tool_calls == []
    assert view.teacher_tool_name is None
    assert view.tools == []


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"request": "not an object", "response": []},
        {"request": {"messages": "hi", "tools": {"x": 1}}, "response": {"choices": {}}},
        {"response": {"choices": []}},
        {"response": {"choices": ["not an object"]}},
        {"response": {"choices": [{"message": "text"}], "usage": "lots"}},
        {"response": {"choices": [{"message": {"tool_calls": "f()"}}]}},
        {"response": {"choices": [{"message": {"tool_calls": [{"function": {"name": 7}}]}}]}},
        {"response": {"choices": [{"message": {"tool_calls": ["call"]}}]}},
    ],
)
def test_missing_or_malformed_parts_read_as_empty(record: dict[str, Any]) -> None:
    view = RecordView(record)
    assert view.messages == [] and view.tools == []
    assert view.teacher_content is None and view.teacher_tool_name is None
    assert view.usage == {} and view.prompt_tokens is None and view.completion_tokens is None
    assert view.model is None and view.record_id is None and view.workload_id is None


def test_the_response_model_names_the_teacher_when_the_request_does_not() -> None:
    record = chat_record()
    del record["request"]["model"]
    record["response"]["model"] = "big-70b"
    assert RecordView(record).model == "big-70b"
    record["request"]["model"] = ""
    assert RecordView(record).model == "big-70b"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 12.0, "completion_tokens": 3}, (12, 3)),
        ({"prompt_tokens": True, "completion_tokens": "3"}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_token_counts_are_numbers_or_none(usage: dict[str, Any], expected: tuple[int | None, ...]) -> None:
    record = chat_record()
    record["response"]["usage"] = usage
    view = RecordView(record)
    assert (view.prompt_tokens, view.completion_tokens) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"record_id": "a", "id": "b"}, "a"), ({"id": 3}, "3"), ({"_id": "x"}, "x"), ({"id": True}, None)],
)
def test_the_record_id_is_the_first_id_field_present(fields: dict[str, Any], expected: str | None) -> None:
    assert RecordView(chat_record(**fields)).record_id == expected


def test_response_message_reads_any_chat_completion() -> None:
    message = {"role": "assistant", "content": "hi"}
    assert response_message({"choices": [{"message": message}, {"message": {}}]}) is message
    assert response_message(None) == {}
    assert response_message({"choices": [{}]}) == {}


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("plain", "plain"),
        ([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}], "a b"),
        (None, ""),
        (7, ""),
    ],
)
def test_content_text_joins_the_text_parts(content: Any, text: str) -> None:
    assert content_text(content) == text


def test_writers_replace_one_part_and_leave_the_record_untouched() -> None:
    record = chat_record("question")
    new_messages = [{"role": "user", "content": "masked"}]
    changed = with_messages(record, new_messages)
    assert RecordView(changed).messages is new_messages
    assert RecordView(record).messages[1]["content"] == "question"
    assert changed["request"]["model"] == record["request"]["model"]
    new_choices = [{"index": 0, "message": {"role": "assistant", "content": "other"}}]
    answered = with_choices(record, new_choices)
    assert RecordView(answered).teacher_content == "other"
    assert RecordView(record).teacher_content == "Paris."
    assert answered["response"]["usage"] == record["response"]["usage"]
