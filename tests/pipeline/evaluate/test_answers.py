"""The teacher's answer, prompt, usage and id read off eval records, which were never validated: odd shapes give
empty answers, not exceptions."""

from __future__ import annotations

from typing import Any

import pytest

from factories import chat_record, tool_call
from flywheel.pipeline.evaluate import Answer, answer_from_response, candidate_requests, teacher_answer
from flywheel.pipeline.evaluate._answers import prompt_messages, record_id, teacher_usage

ODD_RECORDS: list[dict[str, Any]] = [
    {},
    {"request": "hi", "response": "there"},
    {"request": {"messages": "hi"}, "response": {"choices": []}},
    {"response": {"choices": [None], "usage": [1]}},
    {"response": {"choices": [{"message": ["x"]}]}},
]


def test_a_logged_record_gives_the_teachers_answer_prompt_and_usage() -> None:
    call = tool_call("get_weather", {"city": "Oslo"})
    record = chat_record("Weather?", None, tool_calls=[call])
    assert teacher_answer(record) == Answer(content=None, tool_calls=[call])
    messages = prompt_messages(record)
    assert messages == record["request"]["messages"] and messages is not record["request"]["messages"]
    assert teacher_usage(record) == (20, 3)


def test_multimodal_answer_content_keeps_its_text_parts() -> None:
    record = chat_record()
    record["response"]["choices"][0]["message"]["content"] = [
        {"type": "text", "text": "[[a]]"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": " b"},
    ]
    assert teacher_answer(record).content == "[[a]] b"


@pytest.mark.parametrize("record", ODD_RECORDS)
def test_odd_records_read_as_empty(record: dict[str, Any]) -> None:
    assert teacher_answer(record) == Answer()
    assert prompt_messages(record) == []
    assert teacher_usage(record) == (None, None)
    (request,) = candidate_requests([record])
    assert request.messages == [] and request.tools is None


def test_record_ids_prefer_the_records_own_then_hash_the_request() -> None:
    assert record_id(chat_record(record_id="r1"), 0) == "r1"
    assert record_id({"id": 5}, 0) == "5"
    same_prompt = record_id(chat_record("q", "a1"), 0)
    assert same_prompt.startswith("req:") and same_prompt == record_id(chat_record("q", "a2"), 9)
    assert record_id({"request": "not an object"}, 3).startswith("req:")
    assert record_id({}, 3) == "#3"


def test_a_prediction_reads_like_a_logged_response() -> None:
    response = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    assert answer_from_response(response) == Answer(content="hi")
    assert answer_from_response({"choices": "x"}) == Answer()


def test_candidate_requests_offer_the_logged_tools_only_when_there_are_some() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    with_tools, without = candidate_requests([chat_record(tools=tools), chat_record()])
    assert with_tools.tools == tools and without.tools is None
